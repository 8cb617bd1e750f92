"""End to end with a real model: Qwen2.5-Coder-1.5B under llama.cpp's server, at temperature 0.

The model and server are prepared by tests/local_model.py (pinned, checked, cached; `.ci/run` prepares
them before the suite). This is the product as a user runs it: `agent-tasks run`, a review, an accept,
and the fix on the work branch of the source repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import git

ROOT = Path(__file__).resolve().parents[2]
MODEL = "openai/qwen2.5-coder-1.5b"
TASK = "add() in calc.py returns a - b but must return a + b. Fix calc.py."


@pytest.fixture(scope="module")
def local_model():
    """The real model served on 127.0.0.1 for this module's tests."""
    from tests.local_model import serving

    with serving() as base:
        yield base


def cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tasks_lib.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def test_a_real_model_fixes_a_bug_and_the_accepted_fix_lands_on_the_work_branch(local_model, prefect_server, tmp_path):
    repo = tmp_path / "calc"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n\n\ndef multiply(a, b):\n    return a * b\n")
    (repo / "test_calc.py").write_text(
        "import unittest\n\nfrom calc import add\n\n\nclass AddTest(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "calc with a bug")
    env = {"PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": local_model, "OPENAI_API_KEY": "sk-local-model"}

    run = cli("run", str(repo), "--task", TASK, "--model", MODEL, "--temperature", "0", env=env)
    from tasks_lib.store import open_store

    store = open_store()
    deadline = time.monotonic() + 900
    row = None
    while time.monotonic() < deadline and run.poll() is None:
        row = next(
            (r for r in store.list_sessions(limit=20) if r.instructions == TASK and r.repository == str(repo)), None
        )
        if row is not None and row.status in ("awaiting_review", "failed", "stopped", "completed"):
            break
        time.sleep(1)
    assert row is not None and row.status == "awaiting_review", (row and row.status_reason, run.poll())
    diff = store.latest_diff(row.id).patch.decode()
    assert "-    return a - b" in diff and "+    return a + b" in diff, diff
    summary = store.latest_summary(row.id)
    assert summary.facts["files"][0]["path"] == "calc.py" and not summary.facts["summary_files_not_in_diff"]

    decided = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "review", row.id, "accept"],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert decided.returncode == 0, decided.stderr
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0 and "Traceback" not in stderr, stderr[-2000:]
    row = store.get_session(row.id)
    assert row.status == "accepted"
    fixed = git(repo, "show", f"{row.work_branch}:calc.py")
    assert "return a + b" in fixed and "return a * b" in fixed
    git(repo, "checkout", "-q", row.work_branch)
    check = subprocess.run(
        [sys.executable, "-m", "unittest", "-q", "test_calc"], cwd=repo, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    steps = store.steps(row.id)
    assert all("Traceback" not in json.dumps(s.model_dump(mode="json")) for s in steps)
