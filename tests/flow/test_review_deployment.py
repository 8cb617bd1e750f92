"""A deployment run suspends for review instead of holding its worker, and resumes anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.helpers import MODEL, decide, wait_for_review

FINISH = calls(tool("finish", summary="done"))


@pytest.fixture
def served(prefect_server, tmp_path):
    """`agent_task.serve()` in its own process, as `agent-tasks up` or a worker would run it."""
    procs = []

    def start(env: dict[str, str]) -> None:
        code = "from flows.agent_task import agent_task; agent_task.serve(name='review-test', print_starting_message=False)"
        log = open(tmp_path / "serve.log", "w")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={
                    **os.environ,
                    "AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS": "1",
                    **env,
                    "PREFECT_API_URL": prefect_server,
                    "PREFECT_RUNNER_POLL_FREQUENCY": "1",
                },
            )
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with get_client(sync_client=True) as client:
                try:
                    client.read_deployment_by_name("agent-task/review-test")
                    return
                except Exception:
                    time.sleep(0.5)
        raise AssertionError("the deployment was not served: " + (tmp_path / "serve.log").read_text()[-2000:])

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_suspended_run_rebuilds_a_deleted_workspace_and_lands_the_right_commit(repo, scripted, store, served, tmp_path):
    server = scripted(
        [
            calls(
                tool("write_file", path="first.txt", content="first\n"), tool("run_command", command="rm obsolete.txt")
            ),
            FINISH,
            calls(tool("edit_file", path="first.txt", old="first", new="first, improved")),
            FINISH,
        ]
    )
    served({"OPENAI_API_BASE": server.api_base})
    from datetime import datetime, timezone

    started = datetime.now(timezone.utc)
    run = run_deployment(
        "agent-task/review-test",
        timeout=0,
        parameters={
            "request": {"repository": str(repo), "instructions": "Suspend me", "model": MODEL, "reviewer": "carol"}
        },
    )

    first = wait_for_review(store, "Suspend me", timeout=180, since=started)
    assert first.flow_run_id == str(run.id)
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 60
        while (state := client.read_flow_run(run.id).state).name != "Suspended" and time.monotonic() < deadline:
            time.sleep(0.5)
    assert state.name == "Suspended" and state.state_details.pause_reschedule, "a deployment run must suspend"

    # The workspace and even the mirror are gone, as on another worker.
    shutil.rmtree(first.workspace)
    shutil.rmtree(Path(first.workspace).parent.parent / "mirrors")
    decide(first, "request_changes", feedback="Improve first.txt")
    second = wait_for_review(store, "Suspend me", after_key=first.review_key, timeout=180, since=started)
    assert second.iteration == 2
    feedback_request = server.agent_requests()[2]["messages"]
    assert feedback_request[-1]["content"].startswith("The reviewer asked for changes:\n\nImprove first.txt")
    assert any(m.get("tool_calls") for m in feedback_request), "the earlier conversation came back from the store"
    assert sorted(f["path"] for f in store.latest_diff(second.id).files) == ["first.txt", "obsolete.txt"]

    shutil.rmtree(second.workspace)
    decide(second, "accept")
    deadline = time.monotonic() + 180
    while store.get_session(second.id).status != "accepted" and time.monotonic() < deadline:
        time.sleep(0.5)
    done = store.get_session(second.id)
    assert done.status == "accepted", done.status_reason
    assert git(repo, "show", f"{done.work_branch}:first.txt") == "first, improved"
    assert "obsolete.txt" not in git(repo, "ls-tree", "--name-only", done.work_branch)
    assert git(repo, "rev-parse", f"{done.work_branch}~1") == done.base_commit
    assert git(repo, "rev-parse", "main") == done.base_commit
    assert [r.decision for r in store.reviews(done.id)] == ["request_changes", "accept"]
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 60
        while not (final := client.read_flow_run(run.id).state).is_final() and time.monotonic() < deadline:
            time.sleep(0.5)
    assert final.is_completed()


def test_a_deployment_run_refuses_a_machine_local_sqlite_store_in_one_line(repo, store, served):
    served({"AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS": ""})
    before = len(store.list_sessions(limit=1000))
    run = run_deployment(
        "agent-task/review-test",
        timeout=180,
        parameters={"request": {"repository": str(repo), "instructions": "Refuse my store", "model": MODEL}},
    )
    assert run.state.is_failed()
    assert "SQLite file only this machine sees" in run.state.message and "AGENT_TASKS_DB_URL" in run.state.message
    assert len(store.list_sessions(limit=1000)) == before, "no session is recorded in a store nobody else sees"
