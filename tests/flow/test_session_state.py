"""The session state machine: guarded transitions, one session per flow run, settling from Prefect's states.

The tests of the same code that need no Prefect server are in tests/unit/test_session_state.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.states import Cancelled, Crashed, Failed, Scheduled

from flows.agent_task import agent_task
from tasks_lib.domain.request import TaskRequest
from tasks_lib.domain.session import SessionStatus as S
from tasks_lib.session.lifecycle import move
from tasks_lib.session.reconcile import settle_from_prefect
from tasks_lib.store import Store
from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.helpers import MODEL, Background, decide, wait_for_review
from tests.polling import wait_until

FINISH = calls(tool("finish", summary="done"))
# Runs an existing flow run in this process, as a worker's `prefect flow-run execute` does.
EXECUTE = (
    "import sys\n"
    "from prefect.client.orchestration import get_client\n"
    "from prefect.flow_engine import run_flow\n"
    "from flows.agent_task import agent_task\n"
    "with get_client(sync_client=True) as client:\n"
    "    run = client.read_flow_run(sys.argv[1])\n"
    "run_flow(agent_task, flow_run=run, parameters=run.parameters)\n"
)


def _flow_run(repo: Path, instructions: str, **fields) -> str:
    request = TaskRequest(repository=str(repo), instructions=instructions, model=MODEL, review=False, **fields)
    with get_client(sync_client=True) as client:
        return str(client.create_flow_run(agent_task, parameters={"request": request.model_dump(mode="json")}).id)


def _execute(run_id: str, wait: bool = True) -> subprocess.Popen:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    proc = subprocess.Popen(
        [sys.executable, "-c", EXECUTE, run_id], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if wait:
        proc.output = proc.communicate(timeout=240)[0]  # type: ignore[attr-defined]
    return proc


def _reschedule(run_id: str) -> None:
    """What a worker or the UI does to run a flow run again: put it back in Scheduled."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(run_id), Scheduled(), force=True)


def _killed_after_first_step(store: Store, run_id: str) -> str:
    """Run the flow run in a process, kill -9 it once its session has recorded a step; the session's id."""
    first = _execute(run_id, wait=False)
    try:
        return wait_until(
            lambda: next((r.id for r in _sessions_of(store, run_id) if r.steps_used >= 1), None), 120, "step 1"
        )
    finally:
        first.kill()
        first.wait(30)


def _sessions_of(store: Store, run_id: str):
    return [r for r in store.list_sessions(limit=500) if r.flow_run_id == run_id]


def test_a_restarted_flow_run_continues_its_own_session_from_the_last_step(repo, scripted, store):
    server = scripted(
        [
            calls(tool("write_file", path="a.txt", content="before the kill\n")),
            calls(tool("finish", summary="never reached"), delay=60),  # the process dies while the model "thinks"
            calls(tool("write_file", path="b.txt", content="after the restart\n")),
            FINISH,
        ]
    )
    run_id = _flow_run(repo, "Write a and b")
    sid = _killed_after_first_step(store, run_id)
    assert store.get_session(sid).status == "running"
    _reschedule(run_id)
    second = _execute(run_id)
    assert second.returncode == 0, second.output[-3000:]

    sessions = _sessions_of(store, run_id)
    assert [s.id for s in sessions] == [sid], "one session per flow run"
    row = store.get_session(sid)
    assert row.status == "completed", row.status_reason
    assert sorted(f["path"] for f in store.latest_diff(sid).files) == ["a.txt", "b.txt"]
    after_restart = server.agent_requests()[2]["messages"]
    contents = [str(m.get("content") or "") for m in after_restart]
    assert any("has been restarted" in c for c in contents)
    assert any(
        c.get("function", {}).get("name") == "write_file" for m in after_restart for c in m.get("tool_calls") or []
    )
    assert [(t.from_status, t.to_status) for t in store.transitions(sid)][-2:] == [
        ("running", "running"),
        ("running", "completed"),
    ]
    assert "continued after a restart" in store.transitions(sid)[-2].reason
    assert [s.index for s in store.steps(sid)] == [1, 2, 3]  # the step cut off by the kill was never recorded


def test_a_restarted_run_whose_workspace_is_gone_starts_its_iteration_over(repo, scripted, store):
    server = scripted(
        [
            calls(tool("write_file", path="lost.txt", content="on the dead worker\n")),
            calls(tool("finish", summary="never reached"), delay=60),
            calls(tool("write_file", path="redo.txt", content="done again\n")),
            FINISH,
        ]
    )
    run_id = _flow_run(repo, "Redo after a lost worker")
    sid = _killed_after_first_step(store, run_id)
    shutil.rmtree(store.get_session(sid).workspace)  # the worker's disk is gone with it
    _reschedule(run_id)
    second = _execute(run_id)
    assert second.returncode == 0, second.output[-3000:]
    row = store.get_session(sid)
    assert row.status == "completed" and [s.id for s in _sessions_of(store, run_id)] == [sid]
    assert [f["path"] for f in store.latest_diff(sid).files] == ["redo.txt"]
    restarted = server.agent_requests()[2]["messages"]
    assert len(restarted) == 2, "the iteration starts over from its first messages"


def test_rerunning_a_failed_flow_run_fails_loudly_instead_of_completing_silently(tmp_path, store):
    run_id = _flow_run(tmp_path / "no-such-repo", "Anything")
    first = _execute(run_id)
    sid = _sessions_of(store, run_id)[0].id
    assert store.get_session(sid).status == "failed" and first.returncode != 0
    _reschedule(run_id)  # the UI's Retry
    second = _execute(run_id)
    assert second.returncode != 0 and "already ended failed" in second.output
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(run_id)).state
    assert state.is_failed() and "start a new run" in (state.message or "")
    assert [s.id for s in _sessions_of(store, run_id)] == [sid]


def test_sessions_follow_their_flow_runs_cancelled_crashed_and_failed_states(repo, store, tmp_path):
    with get_client(sync_client=True) as client:

        def make(status: S, state) -> tuple[str, str]:
            run_id = str(client.create_flow_run(agent_task, parameters={"request": {}}).id)
            sid = store.create_session(TaskRequest(repository=str(repo), instructions="x"), flow_run_id=run_id)
            move(store, sid, S.running, "working")
            if status is S.awaiting_review:
                move(store, sid, S.awaiting_review, "waiting")
            client.set_flow_run_state(UUID(run_id), state, force=True)
            return run_id, sid

        workspace = tmp_path / "ws"
        shutil.copytree(repo, workspace)
        (workspace / "made.txt").write_text("work in progress\n")
        _, cancelled = make(S.running, Cancelled(message="cancelled by ann"))
        store.update_session(cancelled, workspace=str(workspace), base_commit=git(repo, "rev-parse", "HEAD"))
        _, crashed = make(S.awaiting_review, Crashed(message="worker lost"))
        _, expired = make(S.awaiting_review, Failed(message="The flow was failed and never resumed."))
        _, untouched = make(S.awaiting_review, Scheduled())
    changed = settle_from_prefect(store)
    assert sorted(changed) == sorted([cancelled, crashed, expired])
    row = store.get_session(cancelled)
    assert (
        row.status == "cancelled"
        and "cancelled by ann" in row.status_reason
        and "kept (1 file changed" in row.status_reason
    )
    assert [f["path"] for f in store.latest_diff(cancelled).files] == ["made.txt"]
    assert store.get_session(crashed).status == "crashed"
    assert store.get_session(expired).status == "expired"
    assert store.get_session(untouched).status == "awaiting_review"
    assert store.transitions(cancelled)[-1].by == "prefect"
    assert settle_from_prefect(store) == []  # terminal stays terminal


def test_budgets_and_retries_are_capped_for_the_whole_session(repo, scripted, store, tmp_path, monkeypatch):
    monkeypatch.setenv("AGENT_TASKS_MAX_RETRY_ROUNDS", "1")
    agent = tmp_path / "small.md"
    agent.write_text("---\nname: small\nmax_steps: 3\n---\nYou are a test agent.\n")
    server = scripted(
        [
            calls(tool("write_file", path="a.txt", content="1\n")),
            FINISH,
            calls(tool("write_file", path="b.txt", content="2\n")),  # one step left of three: the loop stops after it
        ]
    )
    run = Background(repo, "Budgeted", agent=str(agent))
    first = wait_for_review(store, "Budgeted", since=run.started)
    decide(first, "retry", instructions="Budgeted, again")
    second = wait_for_review(store, "Budgeted", after_key=first.review_key, since=run.started)
    assert second.steps_used == 3
    decide(second, "retry", instructions="Once more")
    third = wait_for_review(store, "Budgeted", after_key=second.review_key, since=run.started)
    assert "no retries left (1 of 1 used)" in third.status_reason
    decide(third, "request_changes", feedback="more")
    fourth = wait_for_review(store, "Budgeted", after_key=third.review_key, since=run.started)
    assert "budget is used up (steps 3/3" in fourth.status_reason
    decide(fourth, "reject")
    result = run.join()
    assert result.status is S.rejected
    assert len(server.agent_requests()) == 3, "no model call beyond the session's 3 steps"


def test_cancelling_a_suspended_run_in_prefect_ends_its_session_without_anyone_running_the_cli(
    repo, scripted, store, prefect_server, tmp_path
):
    """Prefect's Cancelled event triggers the served settle-sessions flow, which ends the session (diff kept)."""
    from prefect.deployments import run_deployment

    server = scripted([calls(tool("write_file", path="c.txt", content="c\n")), FINISH])
    code = (
        "from prefect import serve\nfrom flows.agent_task import agent_task\nfrom flows.settle import settle_deployment\n"
        "serve(agent_task.to_deployment(name='settle-test'), settle_deployment(), print_starting_message=False)"
    )
    log = open(tmp_path / "serve.log", "w")
    served = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "PREFECT_API_URL": prefect_server,
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS": "1",
            "OPENAI_API_BASE": server.api_base,
        },
    )
    try:
        with get_client(sync_client=True) as client:
            wait_until(
                lambda: (
                    _deployment(client, "settle-sessions/settle-sessions")
                    and _deployment(client, "agent-task/settle-test")
                ),
                120,
                "both deployments served",
            )
        from datetime import datetime, timezone

        started = datetime.now(timezone.utc)
        run = run_deployment(
            "agent-task/settle-test",
            timeout=0,
            parameters={"request": {"repository": str(repo), "instructions": "Cancel me while I wait", "model": MODEL}},
        )
        waiting = wait_for_review(store, "Cancel me while I wait", timeout=180, since=started)
        with get_client(sync_client=True) as client:
            wait_until(lambda: client.read_flow_run(run.id).state.name == "Suspended", 60, "the run suspended")
            client.set_flow_run_state(run.id, Cancelled(message="cancelled from the UI"), force=True)
        row = wait_until(
            lambda: (r := store.get_session(waiting.id)).status != "awaiting_review" and r, 120, "the session settled"
        )
    finally:
        served.terminate()
        served.wait(30)
    assert row.status == "cancelled", (tmp_path / "serve.log").read_text()[-2000:]
    assert (
        "cancelled in Prefect (cancelled from the UI)" in row.status_reason
        and "diff and work branch kept" in row.status_reason
    )
    assert store.transitions(row.id)[-1].by == "prefect"
    assert [f["path"] for f in store.latest_diff(row.id).files] == ["c.txt"]


def _deployment(client, name: str):
    try:
        return client.read_deployment_by_name(name)
    except Exception:
        return None


def test_runs_with_the_same_concurrency_key_take_turns(repo, scripted, store):
    def slow(body):  # each session writes its own file, then finishes; every reply takes a second
        if not body.get("tools"):
            return {"content": "### What was done\nkeyed"}
        name = "a.txt" if "Keyed A" in str(body["messages"][1]["content"]) else "b.txt"
        done = sum(1 for m in body["messages"] if m["role"] == "assistant")
        return {**(calls(tool("write_file", path=name, content="x\n")) if done == 0 else FINISH), "delay": 1.0}

    scripted(responder=slow)
    runs = [Background(repo, f"Keyed {n}", review=False, concurrency_key="acme/widgets#7") for n in "AB"]
    results = [run.join(240) for run in runs]
    spans = []
    for result in results:
        assert result.status is S.completed, result.reason
        steps = store.steps(result.session_id)
        spans.append((steps[0].started_at, steps[-1].started_at.timestamp() + steps[-1].duration_s))
    (first_start, first_end), (second_start, second_end) = sorted(spans)
    assert second_start.timestamp() >= first_end - 0.05, "the second run worked while the first held the key's slot"


def test_a_run_whose_process_is_stopped_ends_crashed_with_its_work_kept(repo, scripted, store, tmp_path):
    """SIGTERM to the flow-run process, as a worker that stops or dies does: crashed, not failed; the diff is kept."""
    import signal

    from prefect.settings import PREFECT_API_URL

    scripted(
        [
            calls(tool("write_file", path="t.txt", content="before the signal\n")),
            calls(tool("finish", summary="never reached"), delay=60),
        ]
    )
    deployment_id = agent_task.to_deployment(name="sigterm-test").apply()
    request = TaskRequest(repository=str(repo), instructions="Stopped by its worker", model=MODEL, review=False)
    with get_client(sync_client=True) as client:
        run_id = str(
            client.create_flow_run_from_deployment(
                deployment_id, parameters={"request": request.model_dump(mode="json")}
            ).id
        )
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT__FLOW_RUN_ID": run_id,
        "AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect.engine"],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        try:
            sid = wait_until(
                lambda: next((r.id for r in _sessions_of(store, run_id) if r.steps_used >= 1), None), 120, "step 1"
            )
        except AssertionError:
            proc.kill()
            raise AssertionError(proc.communicate()[0][-3000:]) from None
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    row = store.get_session(sid)
    assert row.status == "crashed", (row.status, row.status_reason, output[-2000:])
    assert "its process was stopped" in row.status_reason
    assert [f["path"] for f in store.latest_diff(sid).files] == ["t.txt"]
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(UUID(run_id)).state.type.value in ("CRASHED", "CANCELLED", "FAILED")


def test_runs_lost_while_starting_are_rescheduled_and_started_ones_are_not(store):
    from datetime import timedelta

    from prefect.states import Pending, Running

    from tasks_lib.session.reconcile import reschedule_lost_starts

    with get_client(sync_client=True) as client:

        def run_in(state) -> str:
            run_id = str(client.create_flow_run(agent_task, parameters={"request": {}}).id)
            client.set_flow_run_state(UUID(run_id), state, force=True)
            return run_id

        lost, started, running = run_in(Pending()), run_in(Pending()), run_in(Running())
        store.create_session(TaskRequest(repository="/r", instructions="x"), flow_run_id=started)
        assert reschedule_lost_starts(store, older_than=timedelta(hours=1)) == [], "not yet long enough"
        moved = reschedule_lost_starts(store, older_than=timedelta(0))
        assert lost in moved and started not in moved and running not in moved
        state = client.read_flow_run(UUID(lost)).state
        assert state.type.value == "SCHEDULED" and "its worker died while starting it" in state.message
        assert client.read_flow_run(UUID(started)).state.type.value == "PENDING"
