"""The direct-edit loop (`loop: edit`): whole files from the reply, written confined to the workspace; replies with
no file, or files that change nothing, are answered with the expected shape and end the loop when repeated."""

from __future__ import annotations

import pytest

from tasks_lib.agent.edit_loop import file_blocks, run_edit_loop
from tasks_lib.agent.loop import Limits
from tasks_lib.agent.prompt import initial_messages
from tasks_lib.domain.records import EndReason
from tasks_lib.testing.list_model import ListModel

NEW_APP = "def greet(name):\n    return 'Hi ' + name\n"


def run(repo, replies, files=(("src/app.py", "def greet(name):\n    return 'Hello ' + name\n"),)):
    model = ListModel(replies)
    messages = initial_messages("system", "Greet with Hi in src/app.py", list(files), "Answer with whole files.")
    return run_edit_loop(model, repo, messages, Limits(max_steps=10)), model


def test_a_whole_file_in_the_reply_is_written_and_the_loop_ends(repo):
    result, _ = run(repo, [f"Here it is.\n\nsrc/app.py\n```python\n{NEW_APP}```\n"])
    assert result.end_reason == EndReason.finished and (repo / "src" / "app.py").read_text() == NEW_APP
    (write,) = result.steps[0].tool_calls
    assert write.name == "write_file" and write.ok and write.arguments == {"path": "src/app.py"}
    assert result.finish_summary.startswith("Here it is.")


def test_the_ways_small_models_name_their_files_are_read():
    body = "x = 1\n"
    assert file_blocks(f"**calc.py**\n```python\n{body}```", []) == [("calc.py", body)]
    assert file_blocks(f"```python calc.py\n{body}```", []) == [("calc.py", body)]
    assert file_blocks(f"### File: `pkg/calc.py`\n```\n{body}```", []) == [("pkg/calc.py", body)]
    assert file_blocks(f"Sure!\n```python\n{body}```", ["calc.py"]) == [("calc.py", body)]  # the only file shown
    assert file_blocks(f"```python\n{body}```", ["a.py", "b.py"]) == []  # which one? not guessed


def test_a_reply_without_a_file_is_answered_with_the_expected_shape_then_ends_as_malformed(repo):
    result, model = run(repo, ["I would change the greeting.", "Change 'Hello' to 'Hi'."])
    assert result.end_reason == EndReason.malformed and len(result.steps) == 2
    told = model.asked[1][-1]["content"]
    assert "held no file" in told and "src/app.py\n```" in told


def test_a_path_outside_the_workspace_is_refused_and_nothing_is_written_there(repo, tmp_path):
    outside = repo.parent / "escaped.py"
    result, _ = run(repo, ["../escaped.py\n```\nx = 1\n```\n", "../escaped.py\n```\nx = 2\n```\n"])
    assert not outside.exists()
    assert all(not c.ok and "'..' is not allowed" in c.result for s in result.steps for c in s.tool_calls)
    assert result.end_reason == EndReason.gave_up


def test_files_repeated_as_they_are_end_the_loop_at_once_as_gave_up(repo):
    same = f"src/app.py\n```python\n{(repo / 'src' / 'app.py').read_text()}```\n"
    result, model = run(repo, [same, f"src/app.py\n```python\n{NEW_APP}```\n"])
    assert result.end_reason == EndReason.gave_up and result.end_reason.ended_early
    assert len(model.asked) == 1 and len(result.steps) == 1  # not asked again: a repeat is not followed by a change
    assert "repeated the files as they are" in result.detail
    assert (repo / "src" / "app.py").read_text() != NEW_APP


def test_a_refused_write_beside_a_repeated_file_is_answered_once_more(repo, tmp_path):
    same = f"src/app.py\n```python\n{(repo / 'src' / 'app.py').read_text()}```\n"
    refused = "../escaped.py\n```\nx = 1\n```\n"
    result, model = run(repo, [same + refused, f"src/app.py\n```python\n{NEW_APP}```\n"])
    assert (
        "Nothing was changed" in model.asked[1][-1]["content"]
        and "'..' is not allowed" in model.asked[1][-1]["content"]
    )
    assert result.end_reason == EndReason.finished and (repo / "src" / "app.py").read_text() == NEW_APP


def test_an_edit_loop_agent_cannot_be_read_only():
    from tasks_lib.agent.spec import AgentSpec

    assert not AgentSpec(name="a", loop="edit").read_only_workspace
    with pytest.raises(ValueError, match="loop: edit writes files"):
        AgentSpec(name="a", loop="edit", workspace="read-only")


def test_edit_format_whole_offers_write_file_instead_of_edit_file_and_says_so(tmp_path):
    from tasks_lib.agent.prompt import build_system_prompt
    from tasks_lib.agent.spec import AgentSpec

    whole = AgentSpec(name="w", edit_format="whole")
    assert "edit_file" not in whole.tool_names and "write_file" in whole.tool_names
    assert "writing it whole with write_file" in build_system_prompt(whole, tmp_path)[0]
    replace = AgentSpec(name="r")
    assert "edit_file" in replace.tool_names and "writing it whole" not in build_system_prompt(replace, tmp_path)[0]
    reader = AgentSpec(name="x", edit_format="whole", workspace="read-only")
    assert "write_file" not in reader.tool_names and "writing it whole" not in build_system_prompt(reader, tmp_path)[0]
