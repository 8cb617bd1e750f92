"""The eval harness: suites load as they are, the judge trusts only withheld tests, and `agent-tasks eval` reports.

The tests of the same code that need no Prefect server are in tests/unit/test_eval.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tasks_lib.testing.scripted_server import calls, tool

ROOT = Path(__file__).resolve().parents[2]


def solver(body):
    """A scripted model that fixes calc-add by editing it, and only tampers with the tests elsewhere."""
    if not body.get("tools"):
        return {"content": "### What was done\nEdited the code."}
    task = body["messages"][1]["content"]
    done = sum(1 for m in body["messages"] if m["role"] == "assistant")
    if "calc.py" in task:
        script = [
            calls(tool("edit_file", path="calc.py", old="return a - b", new="return a + b")),
            calls(tool("finish", summary="fixed add")),
        ]
    else:  # writes a test of its own that passes; the withheld test still fails
        script = [
            calls(tool("write_file", path="words_test.py", content="import unittest\n")),
            calls(tool("finish", summary="done")),
        ]
    return script[min(done, len(script) - 1)]


def test_eval_runs_tasks_through_the_flow_and_reports(scripted, prefect_server, tmp_path):
    server = scripted(responder=solver)
    out = tmp_path / "report.json"
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": server.api_base}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tasks_lib.cli",
            "eval",
            "bugfix",
            "--tasks",
            "calc-add,word-count",
            "--model",
            "openai/scripted-model",
            "--attempts",
            "2",
            "--jobs",
            "2",
            "--temperature",
            "0",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "solved 1 of 2 tasks after the fix rounds, 1 at the first round (4 attempts)" in proc.stdout
    assert "Traceback" not in proc.stderr
    report = json.loads(out.read_text())
    by_task = {(o["task"], o["attempt"]): o for o in report["outcomes"]}
    assert by_task[("calc-add", 1)]["solved"] and by_task[("calc-add", 2)]["solved"]
    assert not by_task[("word-count", 1)]["solved"], "a test written by the agent cannot pass the task"
    assert by_task[("word-count", 1)]["fix_rounds_used"] == 1 and not by_task[("word-count", 1)]["solved_first_round"]
    assert by_task[("calc-add", 1)]["files_changed"] == ["calc.py"] and by_task[("calc-add", 1)]["steps"] == 2
    assert report["summary"]["solve_rate"] == 0.5 and report["summary"]["crashed"] == 0
    assert all(r.get("temperature") == 0 for r in server.agent_requests())
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        tables = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["agent-eval-bugfix"]))
        )
    assert tables and "calc-add" in str(tables[-1].data) and "word-count" in str(tables[-1].data)


def slow_solver(body):
    """A scripted model that gets calc-add wrong first and right once the withheld tests' output comes back."""
    if not body.get("tools"):
        return {"content": "### What was done\nEdited the code."}
    told = any("The check" in str(m.get("content")) for m in body["messages"] if m["role"] == "user")
    done = sum(1 for m in body["messages"] if m["role"] == "assistant")
    if not told:
        script = [
            calls(tool("edit_file", path="calc.py", old="return a - b", new="return b - a")),
            calls(tool("finish", summary="fixed")),
        ]
        return script[min(done, 1)]
    last = body["messages"][-1]["content"]
    if "edited" in str(last):
        return calls(tool("finish", summary="fixed for real"))
    return calls(tool("edit_file", path="calc.py", old="return b - a", new="return a + b"))


def test_a_fix_round_hands_the_withheld_tests_output_back_and_both_pass_rates_are_reported(
    scripted, prefect_server, tmp_path
):
    server = scripted(responder=slow_solver)
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": server.api_base}
    args = [sys.executable, "-m", "tasks_lib.cli", "eval", "bugfix", "--tasks", "calc-add", "--model"]
    reports = {}
    for rounds in ("0", "1"):
        out = tmp_path / f"report-{rounds}.json"
        proc = subprocess.run(
            [*args, "openai/scripted-model", "--fix-rounds", rounds, "--json", str(out)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        reports[rounds] = json.loads(out.read_text())
    assert reports["0"]["summary"]["solved"] == 0 and reports["0"]["summary"]["solved_first_round"] == 0
    assert reports["1"]["summary"]["solved"] == 1 and reports["1"]["summary"]["solved_first_round"] == 0
    (outcome,) = reports["1"]["outcomes"]
    assert outcome["fix_rounds_used"] == 1 and outcome["edits"] == 2
    told = [m for r in server.agent_requests() for m in r["messages"] if "The check" in str(m.get("content"))]
    assert told and "calc_test" in str(told[-1]["content"]), "the failing tests' output went back to the agent"
