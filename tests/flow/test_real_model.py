"""End to end with a real model: the embedded local model (Qwen2.5-Coder-1.5B under the portable llama-server build),
at temperature 0 (a small model's default), as a newcomer with no API key runs it.

The model and server are prepared by `agent-tasks models local prepare` (pinned, checked, cached; `.ci/run`
prepares them before the suite) and served as `models local serve` serves them. This is the product as a user runs
it: `agent-tasks run` with no model and no key, a review, an accept, and the fix on the work branch of the source
repository.
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
NOT_MINE = ("AGENT_TASKS_MODEL", "OPENAI_API_BASE", "OPENAI_API_KEY", "LLAMAFILE_API_BASE")
TASK = "add() in calc.py returns a - b but must return a + b. Fix calc.py."


@pytest.fixture(scope="module", autouse=True)
def real_model_cache():
    """This module uses the real cache of the local model (the suite's own is empty: see tests/conftest.py)."""
    from tests.conftest import REAL_MODEL_CACHE

    kept = os.environ["AGENT_TASKS_MODEL_CACHE"]
    os.environ["AGENT_TASKS_MODEL_CACHE"] = REAL_MODEL_CACHE
    yield
    os.environ["AGENT_TASKS_MODEL_CACHE"] = kept


@pytest.fixture(scope="module")
def local_model():
    """The real model served on 127.0.0.1 for this module's tests, announced as `models local serve` does."""
    from tasks_lib.ops.local_model import serving

    with serving(public=True) as base:
        yield base


def test_up_with_the_local_model_serves_it_for_the_runs_and_stops_it(tmp_path):
    """Runs first in this module, before its fixture serves the model: `up --local-model` starts it itself."""
    import signal
    import socket
    import threading

    import httpx

    from tasks_lib.agent.local_endpoint import served_base

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    assert served_base() is None, "nothing serves the local model before the test"
    ports = {name: free_port() for name in ("--port", "--relay-port", "--review-port", "--local-model-port")}
    env = {k: v for k, v in os.environ.items() if k not in (*NOT_MINE, "PREFECT_API_URL", "AGENT_TASKS_REVIEW_URL")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), AGENT_TASKS_HOME=str(tmp_path / "home"))
    args = [a for name, port in ports.items() for a in (name, str(port))]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tasks_lib.cli", "up", "--local-model", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{ports['--local-model-port']}/v1"
    printed: list[str] = []
    reader = threading.Thread(target=lambda: printed.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and not any(p.startswith("Model ") for p in printed):
            time.sleep(0.5)
        assert served_base() == base
        status = subprocess.run(
            [sys.executable, "-m", "tasks_lib.cli", "models", "local", "status", "--json"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert json.loads(status.stdout)["serving"] == base
    finally:
        proc.send_signal(signal.SIGINT)
        stderr = proc.stderr.read()
        proc.wait(120)
        reader.join(10)
    stdout = "".join(printed)
    assert f"Model          llamafile/qwen2.5-coder-1.5b at {base}" in stdout, (stdout, stderr[-2000:])
    assert "Traceback" not in stderr, stderr[-2000:]
    assert served_base() is None, "the announcement is withdrawn when the stack stops"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{base.removesuffix('/v1')}/health", timeout=2)


def cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tasks_lib.cli", *args],
        env={**{k: v for k, v in os.environ.items() if k not in NOT_MINE}, **env},
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
    env = {"PREFECT_API_URL": prefect_server}  # no model, no key: the local model this machine serves

    run = cli("run", str(repo), "--task", TASK, env=env)  # no --temperature: a small model's default is greedy
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
    assert row.model == "llamafile/qwen2.5-coder-1.5b"
    spec = store.get_session(row.id).agent_spec
    assert spec["loop"] == "edit", "auto: a small model, a named file: edit loop"
    assert spec["temperature"] == 0, "a small model on a single attempt answers greedily"
    diff = store.latest_diff(row.id).patch.decode()
    assert "-    return a - b" in diff and "+    return a + b" in diff, diff
    summary = store.latest_summary(row.id)
    assert summary.facts["files"][0]["path"] == "calc.py" and not summary.facts["summary_files_not_in_diff"]

    decided = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "review", row.id, "accept"],
        env={**{k: v for k, v in os.environ.items() if k not in NOT_MINE}, **env},
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


def test_the_portable_server_build_holds_no_instruction_past_avx2(local_model):
    """A build for the building machine's own CPU holds AVX-512 (and AMX where the CPU has it) and dies with a
    general protection fault elsewhere; the portable one must hold neither in any of its binaries."""
    from tasks_lib.ops.local_model import server_binary

    folder = server_binary().parent
    binaries = [p for p in folder.iterdir() if p.is_file() and not p.is_symlink() and p.read_bytes()[:4] == b"\x7fELF"]
    assert any(p.name.startswith("libggml-cpu") for p in binaries), sorted(p.name for p in binaries)
    beyond = {}
    for path in binaries:
        listing = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", str(path)], capture_output=True, text=True, check=True
        ).stdout
        found = sum(1 for line in listing.splitlines() if "%zmm" in line or "%k1" in line or "tdpb" in line)
        if found:
            beyond[path.name] = found
    avx2 = sum(
        1
        for line in subprocess.run(
            ["objdump", "-d", str(next(p for p in binaries if p.name.startswith("libggml-cpu")))],
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        if "%ymm" in line
    )
    assert not beyond, f"AVX-512/AMX instructions in the portable build: {beyond}"
    assert avx2 > 1000, "the CPU backend is vectorised (AVX2) all the same"
