"""Sessions left waiting for review by the release before the house moved (29b0868) are accepted by this code.

The old release runs from tests/fixtures/release-29b0868.tar.gz: one plain run pauses in its own process, one
deployment run suspends. Then the old deployment is stopped, this code serves it, and `agent-tasks review … accept`
(this code) decides both: the paused run's old process delivers, the suspended run re-enters in this code.
The store is the old release's too (at the newest revision it knows), brought to this code's schema by the first
open of this code while both sessions wait.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from sqlalchemy import create_engine, text

from tasks_lib.store import Store, migrations
from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.helpers import MODEL, wait_for_review

ROOT = Path(__file__).resolve().parents[2]
OLD_RELEASE = ROOT / "tests" / "fixtures" / "release-29b0868.tar.gz"
DEPLOYMENT = "before-the-move"


def old_tree(tmp_path: Path) -> Path:
    """The old release's flows, tasks_lib and deployments, unpacked."""
    where = tmp_path / "release-29b0868"
    where.mkdir()
    with tarfile.open(OLD_RELEASE) as archive:
        archive.extractall(where, filter="data")
    assert (where / "tasks_lib" / "review_gate.py").exists(), "the fixture is the flat layout of the old release"
    return where


def python(cwd: Path, code: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """A Python process running ``code`` with the code found from ``cwd`` first."""
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=cwd,
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **env, "PYTHONPATH": str(cwd)},
    )


def serve(cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """`agent_task.serve()` of the code at ``cwd``, once its deployment is registered."""
    code = (
        f"from flows.agent_task import agent_task; agent_task.serve(name={DEPLOYMENT!r}, print_starting_message=False)"
    )
    started = time.time()
    proc = python(cwd, code, {**env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}, log)
    deadline = time.monotonic() + 90
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            try:
                found = client.read_deployment_by_name(f"agent-task/{DEPLOYMENT}")
                if found.updated and found.updated.timestamp() >= started - 1:
                    return proc
            except Exception:
                pass
            time.sleep(0.5)
    raise AssertionError("the deployment was not served: " + log.read_text()[-2000:])


def flow_run_processes(runner: subprocess.Popen) -> list[str]:
    """The runner's child processes that execute flow runs (multiprocessing spawns them; its resource tracker stays)."""
    tasks = Path(f"/proc/{runner.pid}/task")
    found = []
    for child in (c for task in tasks.iterdir() for c in (task / "children").read_text().split()):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except OSError:  # already gone
            continue
    return found


def stop(proc: subprocess.Popen) -> None:
    """End a process and wait for it."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def old_release_store(url: str, old: Path) -> None:
    """A new store at the newest schema revision the old release knows (it refuses a store made by a newer one)."""
    known = sorted(p.name[:4] for p in (old / "tasks_lib" / "migrations" / "versions").glob("[0-9]*_*.py"))
    engine = create_engine(url)
    with engine.begin() as db:
        migrations.upgrade(db, known[-1])
    engine.dispose()


def wait_for_old_sessions(url: str, instructions: list[str], timeout: float = 180) -> None:
    """Wait, reading the database without this code's store (which would migrate it), until the old release's
    sessions with these instructions wait for review."""
    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as db:
                rows = db.execute(text("SELECT instructions, status FROM sessions")).all()
            if {i for i, status in rows if status == "awaiting_review"} >= set(instructions):
                return
            time.sleep(0.5)
    finally:
        engine.dispose()
    raise AssertionError(f"the old release's sessions did not wait for review: {rows}")


def review(session_id: str, decision: str, api: str) -> subprocess.CompletedProcess:
    """`agent-tasks review ID DECISION` of this code, waiting until the session acted on it."""
    return subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "review", session_id[:8], decision, "--timeout", "180"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PREFECT_API_URL": api},
    )


def test_sessions_paused_and_suspended_before_the_move_are_accepted_after_it(
    repo, scripted, prefect_server, tmp_path, monkeypatch
):
    server = scripted(
        [
            calls(tool("write_file", path="notes.txt", content="from the old release\n")),
            calls(tool("finish", summary="Wrote notes.")),
        ]
        * 2
    )
    old = old_tree(tmp_path)
    url = f"sqlite:///{tmp_path / 'old-release.db'}"
    old_release_store(url, old)
    monkeypatch.setenv("AGENT_TASKS_DB_URL", url)  # for every process: the old release's, this code's, the CLI
    env = {
        "OPENAI_API_BASE": server.api_base,
        "PREFECT_API_URL": prefect_server,
        "AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS": "1",
    }
    since = datetime.now(timezone.utc)

    # The old release: a plain run pauses in its own process, a deployment run suspends.
    plain = python(
        old,
        "from flows.agent_task import agent_task\nfrom tasks_lib.models import TaskRequest\n"
        f"agent_task(TaskRequest(repository={str(repo)!r}, instructions='Paused before', "
        f"model={MODEL!r}))",
        env,
        tmp_path / "old-plain.log",
    )
    old_served = serve(old, env, tmp_path / "old-serve.log")
    try:
        run = run_deployment(
            f"agent-task/{DEPLOYMENT}",
            timeout=0,
            parameters={"request": {"repository": str(repo), "instructions": "Suspended before", "model": MODEL}},
        )
        wait_for_old_sessions(url, ["Paused before", "Suspended before"])
        store = Store(url)  # this code opens the old release's store: it is migrated while both sessions wait
        paused = wait_for_review(store, "Paused before", timeout=180, since=since)
        suspended = wait_for_review(store, "Suspended before", timeout=180, since=since)
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 60
            while (state := client.read_flow_run(run.id).state).name != "Suspended" and time.monotonic() < deadline:
                time.sleep(0.5)
        assert state.name == "Suspended", state.name
        deadline = time.monotonic() + 60  # the run's process ends after the state is set: a runner stopped before
        while flow_run_processes(old_served) and time.monotonic() < deadline:  # would cancel the run on its way out
            time.sleep(0.2)
        assert not flow_run_processes(old_served), "the suspended run's process did not end"
    finally:
        stop(old_served)

    # This code serves the deployment now (the old runner is gone, so the suspended run can only re-enter here)
    # and decides both sessions; the paused run's old process carries out its accept.
    new_served = serve(ROOT, env, tmp_path / "new-serve.log")
    try:
        for row in (paused, suspended):
            decided = review(row.id, "accept", prefect_server)
            assert decided.returncode == 0, decided.stdout + decided.stderr
            done = store.get_session(row.id)
            assert done.status == "accepted", done.status_reason
            assert git(repo, "show", f"{done.work_branch}:notes.txt") == "from the old release"
            assert git(repo, "rev-parse", f"{done.work_branch}~1") == done.base_commit
            assert [r.decision for r in store.reviews(done.id)] == ["accept"]
        plain.wait(60)
        assert plain.returncode == 0, (tmp_path / "old-plain.log").read_text()[-2000:]
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 60
            while not (final := client.read_flow_run(run.id).state).is_final() and time.monotonic() < deadline:
                time.sleep(0.5)
        assert final.is_completed(), final.message
        served_log = (tmp_path / "new-serve.log").read_text()
        assert f"session {suspended.id} (resumed for its review)" in served_log, served_log[-3000:]
    finally:
        stop(new_served)
        if plain.poll() is None:
            stop(plain)
