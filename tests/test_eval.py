"""The eval harness: suites load as they are, the judge trusts only withheld tests, and `agent-tasks eval` reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks_lib.evals.run import run_check, task_repository
from tasks_lib.evals.suite import (
    SuiteError,
    copy_agent_files,
    load_suite,
    put_reference_solution,
    restore_withheld,
)
from tasks_lib.testing.scripted_server import calls, tool

ROOT = Path(__file__).resolve().parents[1]


def eval_data() -> Path | None:
    """The Exercism exercises (../shared/eval-data, read by path, never copied into the repository)."""
    for base in (os.environ.get("AGENT_TASKS_EVAL_DATA"), ROOT.parent / "shared" / "eval-data", "/work/shared/eval-data"):
        if base and (Path(base) / "exercism-python").is_dir():
            return Path(base) / "exercism-python"
    return None


def judged(task, tmp_path: Path, reference: bool) -> tuple[bool, str]:
    tree = tmp_path / task.name
    tree.mkdir(parents=True)
    copy_agent_files(task, tree)
    if reference:
        put_reference_solution(task, tree)
    restore_withheld(task, tree)
    return run_check(task, tree, tmp_path / f"{task.name}-tmp")


def test_every_bugfix_task_fails_as_shipped_and_passes_with_its_reference_fix(tmp_path):
    tasks = load_suite("bugfix")
    assert len(tasks) >= 5
    for task in tasks:
        assert not judged(task, tmp_path / "before", reference=False)[0], f"{task.name}: the withheld test passes unfixed"
        passed, output = judged(task, tmp_path / "after", reference=True)
        assert passed, f"{task.name}: {output}"


def test_every_exercism_exercise_passes_with_its_example_solution(tmp_path):
    data = eval_data()
    if data is None:
        pytest.skip("the Exercism eval data (../shared/eval-data) is not on this machine")
    tasks = load_suite(str(data))
    assert len(tasks) == 24
    failing = [t.name for t in tasks if not judged(t, tmp_path, reference=True)[0]]
    assert failing == []
    stub = next(t for t in tasks if t.name == "wordy")
    assert not judged(stub, tmp_path / "stub", reference=False)[0], "the stub must not pass"


def test_the_agent_sees_no_tests_no_meta_and_no_docs(tmp_path):
    task = next(t for t in load_suite("bugfix") if t.name == "calc-add")
    repo = task_repository(task, tmp_path)
    files = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts)
    assert files == ["calc.py"]
    assert "add() in calc.py returns a - b" in task.prompt() and "unit tests that you cannot see" in task.prompt()
    with pytest.raises(SuiteError, match="unknown task"):
        load_suite("bugfix", ["nope"])
    with pytest.raises(SuiteError, match="no such suite"):
        load_suite(str(tmp_path / "missing"))


def solver(body):
    """A scripted model that fixes calc-add by editing it, and only tampers with the tests elsewhere."""
    if not body.get("tools"):
        return {"content": "### What was done\nEdited the code."}
    task = body["messages"][1]["content"]
    done = sum(1 for m in body["messages"] if m["role"] == "assistant")
    if "calc.py" in task:
        script = [calls(tool("edit_file", path="calc.py", old="return a - b", new="return a + b")),
                  calls(tool("finish", summary="fixed add"))]
    else:  # writes a test of its own that passes; the withheld test still fails
        script = [calls(tool("write_file", path="words_test.py", content="import unittest\n")),
                  calls(tool("finish", summary="done"))]
    return script[min(done, len(script) - 1)]


def test_eval_runs_tasks_through_the_flow_and_reports(scripted, prefect_server, tmp_path):
    server = scripted(responder=solver)
    out = tmp_path / "report.json"
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": server.api_base}
    proc = subprocess.run([sys.executable, "-m", "tasks_lib.cli", "eval", "bugfix", "--tasks", "calc-add,word-count",
                           "--model", "openai/scripted-model", "--attempts", "2", "--jobs", "2", "--temperature", "0", "--json", str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "solved 1 of 2 tasks (4 attempts)" in proc.stdout and "Traceback" not in proc.stderr
    report = json.loads(out.read_text())
    by_task = {(o["task"], o["attempt"]): o for o in report["outcomes"]}
    assert by_task[("calc-add", 1)]["solved"] and by_task[("calc-add", 2)]["solved"]
    assert not by_task[("word-count", 1)]["solved"], "a test written by the agent cannot pass the task"
    assert by_task[("calc-add", 1)]["files_changed"] == ["calc.py"] and by_task[("calc-add", 1)]["steps"] == 2
    assert report["summary"]["solve_rate"] == 0.5 and report["summary"]["crashed"] == 0
    assert all(r.get("temperature") == 0 for r in server.agent_requests())
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        tables = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["agent-eval-bugfix"])))
    assert tables and "calc-add" in str(tables[-1].data) and "word-count" in str(tables[-1].data)
