"""The agent loop against what real models write: calls in text, batches, failures, circles, long contexts.

The loop gets its model handed in, so these tests use a deterministic model object (no HTTP, no
Prefect) and a real Toolbox on a real git repository.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tasks_lib.agent.edits import EditError, apply_edit
from tasks_lib.agent.loop import Limits, run_agent_loop
from tasks_lib.agent.model import ModelError, ModelReply, ToolCall
from tasks_lib.agent.prompt import initial_messages
from tasks_lib.agent.tool_calls import calls_in_text, read_calls
from tasks_lib.agent.tools import Toolbox
from tasks_lib.agent.turn import LoopOptions
from tasks_lib.domain.records import EndReason
from tasks_lib.testing.list_model import ListModel


def fenced(name: str, **arguments) -> str:
    return f"```json\n{json.dumps({'name': name, 'arguments': arguments})}\n```"


def loop(
    repo: Path,
    replies: list[Any],
    expects_changes: bool = True,
    protocol: str = "auto",
    max_steps: int = 20,
    context_tokens: int | None = None,
):
    model = ListModel(replies)
    result = run_agent_loop(
        model,
        Toolbox(repo, command_timeout_s=10),
        initial_messages("system", "Fix app.py"),
        Limits(max_steps=max_steps, context_tokens=context_tokens),
        options=LoopOptions(protocol=protocol, expects_changes=expects_changes),
    )
    return result, model


def test_calls_are_read_from_fences_tags_and_bare_objects():
    text = (
        'Let me look.\n```json\n{"name": "list_files", "arguments": {"path": "."}}\n```\n'
        '<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>\n'
        "```json\n[{\"name\": \"search\", \"parameters\": {\"pattern\": \"x\"}}, {'name': 'finish', 'arguments': {'summary': 'ok'}}]\n```"
    )
    calls, problems = calls_in_text(text)
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("read_file", {"path": "a.py"}),
        ("list_files", {"path": "."}),
        ("search", {"pattern": "x"}),
        ("finish", {"summary": "ok"}),
    ]
    assert problems == []
    bare, _ = calls_in_text('I will call {"name": "run_command", "arguments": {"command": "pytest -q"}} now.')
    assert [(c.name, c.arguments) for c in bare] == [("run_command", '{"command": "pytest -q"}')]
    broken, problems = calls_in_text('```json\n{"name": "edit_file", "arguments": {"path": "a.py", "old": "x"\n```')
    assert broken == [] and "could not read this as a tool call" in problems[0]
    assert calls_in_text("```python\nprint({'name': 'x'})\n```") == ([], []), "code is not a call"


def test_native_calls_win_and_the_protocol_decides_what_is_read():
    reply = ModelReply(
        text=fenced("list_files", path="."), tool_calls=[ToolCall(id="1", name="read_file", arguments="{}")]
    )
    assert [c.name for c in read_calls(reply, "auto").calls] == ["read_file"]
    assert [c.name for c in read_calls(reply, "text").calls] == ["list_files"]
    assert read_calls(ModelReply(text=fenced("list_files")), "native").calls == []
    tools = {
        "finish": (frozenset({"summary"}), frozenset({"summary"})),
        "read_file": (frozenset({"path"}), frozenset({"path", "start_line", "end_line"})),
        "list_files": (frozenset(), frozenset({"path"})),
    }
    unnamed = read_calls(ModelReply(text='```json\n{"summary": "Fixed add()"}\n```'), "auto", tools)
    assert [(c.name, json.loads(c.arguments)) for c in unnamed.calls] == [("finish", {"summary": "Fixed add()"})]
    ambiguous = read_calls(ModelReply(text='```json\n{"path": "a.py"}\n```'), "auto", tools)
    assert ambiguous.calls == [], "an object that fits two tools is not guessed"


def test_a_real_models_batch_runs_up_to_the_first_failure_and_finish_is_not_honoured(repo):
    batch = "\n".join(
        [
            fenced("list_files", path="."),
            fenced("edit_file", path=".", old="old", new="new"),
            fenced("run_command", command="touch ran.txt"),
            fenced("finish", summary="replaced old with new"),
        ]
    )
    result, model = loop(
        repo,
        [
            batch,
            fenced("edit_file", path="src/app.py", old="'Hello '", new="'Hi '"),
            fenced("finish", summary="greeting changed"),
        ],
    )
    first = result.steps[0].tool_calls
    assert [c.name for c in first] == ["list_files", "edit_file", "run_command", "finish"]
    assert first[0].ok and not first[1].ok and first[2].skipped and first[3].skipped
    assert "finish was not accepted: call 2, edit_file, failed" in first[3].result
    assert not (repo / "ran.txt").exists(), "nothing after a failed call runs"
    answer = model.asked[1][-1]["content"]
    assert answer.startswith("Results of your tool calls:") and "skipped: not run because" in answer
    assert result.end_reason == EndReason.finished and result.steps[0].calls_from_text
    assert "'Hi ' + name" in (repo / "src" / "app.py").read_text()


def test_native_calls_each_get_an_answer_even_when_skipped(repo):
    result, model = loop(
        repo,
        [
            ("", [("read_file", {"path": "nope.py"}), ("list_files", {"path": "."})]),
            ("", [("finish", {"summary": "nothing to do"})]),
            ("", [("finish", {"summary": "really"})]),
        ],
        expects_changes=True,
    )
    tool_messages = [m for m in model.asked[1] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["n0", "n1"] and tool_messages[1]["content"].startswith(
        "skipped"
    )
    # finish with nothing changed: one reminder; a second finish with still nothing changed is giving up
    reminder = result.steps[1].tool_calls[0]
    assert not reminder.ok and "no file has been changed yet" in reminder.result
    assert result.end_reason == EndReason.gave_up and result.finish_summary == "really"
    assert result.end_reason.ended_early and "without changing a file" in result.detail
    changed, _ = loop(
        repo,
        [
            ("", [("finish", {"summary": "nothing to do"})]),
            ("", [("write_file", {"path": "new.txt", "content": "x\n"})]),
            ("", [("finish", {"summary": "wrote it"})]),
        ],
    )
    assert changed.end_reason == EndReason.finished, "a finish after a change is a finish"
    reader, _ = loop(repo, [("", [("finish", {"summary": "looks fine"})])], expects_changes=False)
    assert reader.end_reason == EndReason.finished, "a read-only agent finishes without changes"


def test_a_silent_reply_with_nothing_done_gets_one_reminder(repo):
    result, model = loop(repo, ["I'm sorry, but I cannot perform the task.", "Still nothing."])
    assert result.end_reason == EndReason.no_tool_call and len(result.steps) == 2
    assert "You replied without calling a tool" in model.asked[1][-1]["content"]
    read_only, _ = loop(repo, ["Here is my review: looks fine."], expects_changes=False)
    assert read_only.end_reason == EndReason.no_tool_call and len(read_only.steps) == 1


def test_replies_without_a_usable_call_end_the_loop_after_three(repo):
    result, model = loop(
        repo,
        [
            fenced("delete_everything"),
            '```json\n{"name": "read_file", "arguments": {"path": \n```',
            fenced("read_file", start_line=1),
        ],
    )
    assert result.end_reason == EndReason.malformed and "last 3 replies held no usable tool call" in result.detail
    assert result.malformed_replies == 3
    told = [m["content"] for m in model.asked[-1] if m["role"] == "user"]
    assert any(
        "there is no tool 'delete_everything'" in t and "edit_file(path, old, new, replace_all?)" in t for t in told
    )
    assert any("Reply with one tool call as a fenced block" in t for t in told)
    assert "read_file expects read_file(path, start_line?, end_line?)" in result.steps[2].tool_calls[0].result


def test_a_tool_that_raises_is_an_observation_and_the_loop_goes_on(repo):
    result, _ = loop(
        repo,
        [
            ("", [("write_file", {"path": "bad.txt", "content": "lone \ud800 surrogate"})]),
            ("", [("write_file", {"path": "good.txt", "content": "fine\n"})]),
            ("", [("finish", {"summary": "wrote it"})]),
        ],
    )
    bad = result.steps[0].tool_calls[0]
    assert not bad.ok and "write_file failed: UnicodeEncodeError" in bad.result
    assert result.end_reason == EndReason.finished and (repo / "good.txt").read_text() == "fine\n"


def test_going_round_in_circles_is_nudged_once_then_stopped(repo):
    same = ("", [("read_file", {"path": "README.md"})])
    result, model = loop(repo, [same] * 10)
    assert result.end_reason == EndReason.stuck and "called 3 times with the same result" in result.detail
    assert len(result.steps) == 6 and result.stuck_events == 2
    assert any("going round in circles" in m["content"] for m in model.asked[3] if m["role"] == "user")
    a, b = ("", [("read_file", {"path": "README.md"})]), ("", [("list_files", {"path": "src"})])
    cycle, _ = loop(repo, [a, b, a, b, a, b, a, b, a, b])
    assert cycle.end_reason == EndReason.stuck and "alternate with the same results" in cycle.detail


def test_a_cycle_of_up_to_ten_different_calls_is_noticed_when_it_comes_round_again(repo):
    searches = [("", [("search", {"pattern": f"line {i}"})]) for i in range(7)]
    result, model = loop(repo, searches * 4, max_steps=40)
    assert result.end_reason == EndReason.stuck, result.detail
    assert "the same 7 calls" in result.detail and len(result.steps) == 28  # nudged after 14, stopped after 28
    assert any("going round in circles" in m["content"] for m in model.asked[14] if m["role"] == "user")
    varied = [("", [("search", {"pattern": f"term {i}"})]) for i in range(12)]
    moving, _ = loop(repo, [*varied, ("", [("finish", {"summary": "searched"})])], expects_changes=False)
    assert moving.end_reason == EndReason.finished and moving.stuck_events == 0, "different calls are not a circle"


def test_an_edit_or_write_that_changes_nothing_is_reported_as_one(repo):
    before = (repo / "src" / "app.py").read_text()
    result, _ = loop(
        repo,
        [
            (
                "",
                [
                    (
                        "edit_file",
                        {"path": "src/app.py", "old": "return 'Hello ' + name", "new": "return 'Hello ' + name"},
                    )
                ],
            ),
            ("", [("write_file", {"path": "README.md", "content": (repo / "README.md").read_text()})]),
            ("", [("finish", {"summary": "done"})]),
            ("", [("finish", {"summary": "done"})]),
        ],
    )
    edit, write = result.steps[0].tool_calls[0], result.steps[1].tool_calls[0]
    assert not edit.ok and "no change" in edit.result and "edited" not in edit.result
    assert not write.ok and "no change" in write.result and "already holds exactly this content" in write.result
    assert (repo / "src" / "app.py").read_text() == before and result.end_reason == EndReason.gave_up


def test_compaction_follows_the_providers_count_and_a_context_error_is_retried_once(repo):
    (repo / "big.txt").write_text("x" * 3000 + "\n")
    big = ModelReply(
        tool_calls=[ToolCall(id="b", name="read_file", arguments='{"path": "big.txt"}')], prompt_tokens=9000
    )
    more = [
        ModelReply(
            tool_calls=[ToolCall(id=f"r{i}", name="list_files", arguments=json.dumps({"path": p}))], prompt_tokens=9000
        )
        for i, p in enumerate([".", "src"])
    ]
    # The conversation holds ~1k characters per output, far under the budget by characters/4, but the
    # provider counts 9000 tokens: old outputs are shortened.
    result, model = loop(
        repo, [big, *more, ("", [("finish", {"summary": "done"})])], expects_changes=False, context_tokens=5000
    )
    assert sum(s.compacted for s in result.steps) >= 1
    assert "older tool output shortened" in json.dumps(model.asked[-1])

    too_long = ModelError(
        "ContextWindowExceededError: the request exceeds the available context size",
        permanent=True,
        context_exceeded=True,
    )
    retried, model = loop(repo, [big, *more, too_long, ("", [("finish", {"summary": "done"})])], expects_changes=False)
    assert retried.end_reason == EndReason.finished
    assert any("context was too long" in n for s in retried.steps for n in s.notes)
    twice, _ = loop(repo, [big, *more, too_long, too_long], expects_changes=False)
    assert twice.end_reason == EndReason.model_error and "context size" in twice.detail


@pytest.mark.parametrize(
    "old, new, replace_all, expected, how",
    [
        ("return a - b", "return a + b", False, "def add(a, b):\n    return a + b\n", "exact"),
        ("    return a - b   ", "    return a + b", False, "def add(a, b):\n    return a + b\n", "whitespace"),
        ("return a - b\n", "return a + b\n", False, "def add(a, b):\n    return a + b\n", "exact"),
        (
            "def add(a, b):\n  return a - b",
            "def add(a, b):\n  return a + b",
            False,
            "def add(a, b):\n    return a + b\n",
            "indentation",
        ),
    ],
)
def test_edit_file_matches_tolerantly_only_when_unique(old, new, replace_all, expected, how):
    edit = apply_edit("def add(a, b):\n    return a - b\n", old, new, replace_all)
    assert edit.text == expected and edit.how == how


def test_edit_file_failures_say_where_and_what_is_close():
    text = "x = 1\ny = 2\nx = 1\n"
    with pytest.raises(EditError, match=r"occurs 2 times \(at lines 1, 3\).*replace_all"):
        apply_edit(text, "x = 1", "x = 3")
    assert apply_edit(text, "x = 1", "x = 3", replace_all=True).text == "x = 3\ny = 2\nx = 3\n"
    with pytest.raises(
        EditError, match=r"not found.*The file holds \(copy `old` from here exactly\):\n     1\tx = 1\n     2\ty = 2"
    ):
        apply_edit(text, "y = 3", "y = 4")
    quoted = apply_edit(
        'def get(settings):\n    return int(settings["port"])\n', "settings['port']", "settings.get('port', 80)"
    )
    assert quoted.how == "quotes" and quoted.text == "def get(settings):\n    return int(settings.get('port', 80))\n"
    with pytest.raises(EditError, match="not found"):
        apply_edit("a = 'x'\nb = \"x\"\n", "c = 'x'", "y")
    long = "".join(f"value_{i} = {i}\n" for i in range(100))
    with pytest.raises(EditError, match=r"closest lines in the file:\n    43\tvalue_42 = 42$"):
        apply_edit(long, "value_42 == 42", "value_42 = 0")
    with pytest.raises(EditError, match="ignoring indentation it matches 2 places"):
        apply_edit("if a:\n    go(1)\nif b:\n        go(1)\n", "\tgo(1)", "stop()")


def test_edit_file_takes_the_argument_names_models_use(repo):
    box = Toolbox(repo)
    outcome = box.execute("edit_file", {"path": "src/app.py", "old_str": "'Hello '", "new_str": "'Hey '"})
    assert outcome.ok and "now lines 2-2:" in outcome.output and "     2\t    return 'Hey ' + name" in outcome.output
    other = box.execute("edit_file", {"path": "src/app.py", "old_string": "'Hey '", "new_string": "'Yo '"})
    assert other.ok and "'Yo ' + name" in (repo / "src" / "app.py").read_text()


def test_files_the_task_names_come_with_it_read_confined(repo, tmp_path):
    from tasks_lib.agent.prompt import named_files

    (tmp_path / "secret.py").write_text("SECRET = 1\n")
    (repo / "link.py").symlink_to(tmp_path / "secret.py")
    files = named_files(repo, "Fix src/app.py (see README.md, link.py, ../secret.py and missing.py)")
    assert [rel for rel, _ in files] == ["src/app.py", "README.md"]
    message = initial_messages("system", "Fix src/app.py", files)[1]["content"]
    assert "## src/app.py (as it is now)\n```\ndef greet(name):" in message and "SECRET" not in message


def test_a_command_never_runs_past_the_loops_time_budget(repo):
    model = ListModel(
        [("", [("run_command", {"command": "sleep 30", "timeout": 600})]), ("", [("finish", {"summary": "x"})])]
    )
    result = run_agent_loop(
        model,
        Toolbox(repo),
        initial_messages("system", "Wait"),
        Limits(max_steps=5, wall_time_s=3),
        options=LoopOptions(expects_changes=False),
    )
    call = result.steps[0].tool_calls[0]
    assert "timed out after" in call.result and call.duration_s < 10
    assert result.end_reason == EndReason.wall_time
