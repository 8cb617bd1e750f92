"""Escalation (`models: [small, large]`): the first model fails the check (or breaks down), the next one goes on from
the same workspace with a hand-over, inside the session's budget; each step records its model and the summary says
which model did what. The model server is scripted; each request names the model it is for."""

from __future__ import annotations

from pathlib import Path

from tasks_lib.testing.scripted_server import calls, tool
from tests.helpers import run_task, write_agent

CHECK = "grep -q Hi src/app.py"


def _agent(tmp_path, extra: str = ""):
    front = (
        "name: ladder\nmodels:\n  - openai/small-model\n  - model: openai/large-model\n    temperature: 0.8\n"
        f"check_command: {CHECK}\nfix_until_green: 0\nloop: tools\n{extra}"
    )
    return str(write_agent(tmp_path / "ladder.md", front))


def _by_model(server):
    return [(r["model"], r) for r in server.agent_requests()]


def test_a_failing_check_hands_the_workspace_to_the_next_model_which_fixes_it(repo, scripted, store, tmp_path):
    server = scripted(
        [
            calls(tool("edit_file", path="src/app.py", old="'Hello ' + name", new="'Hey ' + name")),
            calls(tool("finish", summary="Changed the greeting.")),
            calls(tool("edit_file", path="src/app.py", old="'Hey ' + name", new="'Hi ' + name")),
            calls(tool("finish", summary="Greets with Hi now.")),
        ]
    )
    result = run_task(repo, "Greet with Hi in src/app.py", agent=_agent(tmp_path), model=None)
    assert result.status.value == "completed", result.reason
    asked = _by_model(server)
    assert [m for m, _ in asked] == ["small-model", "small-model", "large-model", "large-model"]
    small_body, large_body = asked[0][1], asked[2][1]
    assert "temperature" not in small_body and large_body["temperature"] == 0.8
    handed = large_body["messages"][-1]["content"]
    assert "Another model (openai/small-model)" in handed and "check" in handed.lower()
    assert not any(m.get("role") == "tool" for m in large_body["messages"]), "the transcript is not handed on"
    steps = store.steps(result.session_id)
    large = "openai/large-model at temperature 0.8"  # steps name the rung: a ladder may hold one model twice
    assert [s.model for s in steps] == ["openai/small-model"] * 2 + [large] * 2
    assert [s.index for s in steps] == [1, 2, 3, 4]
    first, second = store.checks(result.session_id)
    assert not first.passed and second.passed
    assert store.get_session(result.session_id).model == "openai/large-model"
    summary = store.latest_summary(result.session_id)
    assert [m["model"] for m in summary.facts["models"]] == ["openai/small-model", large]
    assert [m["steps"] for m in summary.facts["models"]] == [2, 2]
    assert "Models, in turn:" in summary.markdown and f"{large}: 2 steps" in summary.markdown
    diff = store.latest_diff(result.session_id)
    assert b"+    return 'Hi ' + name" in diff.patch


def test_no_escalation_once_the_budget_is_spent(repo, scripted, store, tmp_path):
    server = scripted(
        [
            calls(tool("edit_file", path="src/app.py", old="'Hello ' + name", new="'Hey ' + name")),
            calls(tool("finish", summary="Changed the greeting.")),
        ]
    )
    result = run_task(repo, "Greet with Hi in src/app.py", agent=_agent(tmp_path, "max_steps: 2\n"), model=None)
    assert {m for m, _ in _by_model(server)} == {"small-model"}
    assert {s.model for s in store.steps(result.session_id)} == {"openai/small-model"}
    assert store.get_session(result.session_id).model == "openai/small-model"
    (check,) = store.checks(result.session_id)
    assert not check.passed


def test_a_model_that_breaks_down_is_followed_by_the_next_from_the_request(repo, scripted, store):
    server = scripted(
        [
            {"status": 400, "message": "this model cannot take tools"},
            calls(tool("edit_file", path="src/app.py", old="'Hello ' + name", new="'Hi ' + name")),
            calls(tool("finish", summary="Greets with Hi.")),
        ]
    )
    result = run_task(
        repo, "Greet with Hi in src/app.py", model=None, models=["openai/small-model", "openai/large-model"]
    )
    assert result.status.value == "completed", result.reason
    assert [m for m, _ in _by_model(server)] == ["small-model", "large-model", "large-model"]
    handed = _by_model(server)[1][1]["messages"][-1]["content"]
    assert "model_error" in handed and "cannot take tools" in handed
    assert b"'Hi ' + name" in store.latest_diff(result.session_id).patch


def test_a_single_model_request_overrides_the_agents_ladder(repo, scripted, store, tmp_path):
    server = scripted(
        [
            calls(tool("edit_file", path="src/app.py", old="'Hello ' + name", new="'Hey ' + name")),
            calls(tool("finish", summary="Changed the greeting.")),
        ]
    )
    result = run_task(repo, "Greet with Hi in src/app.py", agent=_agent(tmp_path), model="openai/only-model")
    assert {m for m, _ in _by_model(server)} == {"only-model"}
    assert store.get_session(result.session_id).model == "openai/only-model"


def test_steps_are_numbered_on_through_fix_rounds_of_both_models(repo, scripted, store, tmp_path):
    def edit(old, new):
        return calls(tool("edit_file", path="src/app.py", old=f"'{old} ' + name", new=f"'{new} ' + name"))

    done = calls(tool("finish", summary="Changed the greeting."))
    scripted([edit("Hello", "Hey"), done, edit("Hey", "Ho"), done, edit("Ho", "Hu"), done, edit("Hu", "Hi"), done])
    agent_file = Path(_agent(tmp_path))
    agent_file.write_text(agent_file.read_text().replace("fix_until_green: 0", "fix_until_green: 1"))
    result = run_task(repo, "Greet with Hi in src/app.py", agent=str(agent_file), model=None)
    assert result.status.value == "completed", result.reason
    steps = store.steps(result.session_id)
    assert [s.index for s in steps] == list(range(1, 9))
    assert [s.model for s in steps] == ["openai/small-model"] * 4 + ["openai/large-model at temperature 0.8"] * 4
    assert [c.passed for c in store.checks(result.session_id)] == [False, False, False, True]


# A check that reports how many of its two tests fail, as test runners do: "Hi" is there, "Hello" is gone.
COUNTING_CHECK = (
    'n=0; grep -q Hi src/app.py || n=$((n+1)); grep -q Hello src/app.py && n=$((n+1)); echo "$n failed"; test $n = 0'
)


def _fresh_agent(tmp_path):
    front = (
        "name: ladder\nmodels:\n  - openai/small-model\n  - model: openai/large-model\n    start: fresh\n"
        f"check_command: '{COUNTING_CHECK}'\nfix_until_green: 0\nloop: tools\n"
    )
    return str(write_agent(tmp_path / "fresh.md", front))


def test_a_fresh_rung_starts_from_the_files_as_they_were_and_keeps_the_first_attempt_aside(
    repo, scripted, store, tmp_path
):
    server = scripted(
        [
            calls(tool("edit_file", path="src/app.py", old="'Hello ' + name", new="'Hey ' + name")),
            calls(tool("finish", summary="Changed the greeting.")),
            # only a workspace put back as it was still holds 'Hello ' + name for this edit to match
            calls(tool("edit_file", path="src/app.py", old="'Hello ' + name", new="'Hi ' + name")),
            calls(tool("finish", summary="Greets with Hi now.")),
        ]
    )
    result = run_task(repo, "Greet with Hi in src/app.py", agent=_fresh_agent(tmp_path), model=None)
    assert result.status.value == "completed", result.reason
    asked = _by_model(server)
    assert [m for m, _ in asked] == ["small-model", "small-model", "large-model", "large-model"]
    handed = asked[2][1]["messages"][-1]["content"]
    assert "set aside" in handed and "1 failed" in handed  # told what the check said, not shown the attempt
    assert "'Hey ' + name" not in str(asked[2][1]["messages"])
    diff = store.latest_diff(result.session_id)
    assert b"+    return 'Hi ' + name" in diff.patch and b"Hey" not in diff.patch
    aside = store.latest_diff(result.session_id, scope="rung-1")
    assert aside is not None and b"+    return 'Hey ' + name" in aside.patch
    assert [c.passed for c in store.checks(result.session_id)] == [False, True]


def test_a_fresh_attempt_that_does_worse_gives_the_workspace_back_to_the_one_before(repo, scripted, store, tmp_path):
    scripted(
        [
            calls(tool("edit_file", path="src/app.py", old="'Hello ' + name", new="'Hey ' + name")),  # 1 failed
            calls(tool("finish", summary="Changed the greeting.")),
            # a change of its own that still greets with Hello and lacks Hi: 2 failed
            calls(tool("edit_file", path="src/app.py", old="'Hello ' + name", new="'Hello, ' + name")),
            calls(tool("finish", summary="Added a comma.")),
        ]
    )
    result = run_task(repo, "Greet with Hi in src/app.py", agent=_fresh_agent(tmp_path), model=None)
    first, second = store.checks(result.session_id)
    assert not first.passed and not second.passed and "2 failed" in second.output_tail
    diff = store.latest_diff(result.session_id)
    assert b"+    return 'Hey ' + name" in diff.patch, "the better, earlier attempt is what the session leaves"
    assert "'Hey ' + name" in (Path(result.workspace) / "src" / "app.py").read_text()
    assert "ranked below it and was set aside" in result.reason
    fresh = store.latest_diff(result.session_id, scope="rung-2")
    assert fresh is not None and b"+    return 'Hello, ' + name" in fresh.patch, (
        "the fresh attempt's change is kept too"
    )
