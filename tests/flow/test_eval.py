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
        tables = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["agent-eval-bugfix"]))
        )
    assert tables and "calc-add" in str(tables[-1].data) and "word-count" in str(tables[-1].data)
