"""Scale-out on one machine standing in for several hosts.

`prefect server start` on PostgreSQL, the session store on PostgreSQL, a `process` work pool with a
concurrency limit, the agent-task deployment from the repository's prefect.yaml (`prefect deploy`), and
three `prefect worker start` processes, each with its own AGENT_TASKS_HOME (no shared disk). A review
suspended on one worker is resumed on another after the first is gone; the pool limit holds.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from tasks_lib.store import Store
from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.helpers import MODEL, decide, wait_for_review
from tests.topology import DEPLOYMENT, POOL, ScriptedTasks, Topology, wait_until

POOL_LIMIT = 2
WORKERS = ("a", "b", "c")
SLOW_REPLY_S = 8


@pytest.fixture(scope="module")
def topology(postgres_server, tmp_path_factory):
    model = ScriptedTasks()
    with Topology(postgres_server, tmp_path_factory.mktemp("scale-out"), model, WORKERS, POOL_LIMIT) as top:
        top.model = model
        yield top


def running_intervals(client, run_ids: list[UUID]) -> list[tuple[datetime, datetime]]:
    """For each run, when it entered Running and when it left it (from the server's state history)."""
    spans = []
    for run_id in run_ids:
        states = sorted(client.read_flow_run_states(run_id), key=lambda s: s.timestamp)
        for state, after in zip(states, states[1:] + [None]):
            if state.is_running():
                spans.append((state.timestamp, after.timestamp if after else datetime.now(timezone.utc)))
    return spans


def most_at_once(spans: list[tuple[datetime, datetime]]) -> int:
    """The largest number of intervals open at the same moment."""
    points = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    open_now = peak = 0
    for _, step in points:
        open_now += step
        peak = max(peak, open_now)
    return peak


def test_a_shared_concurrency_key_caps_agents_at_work_across_workers(topology, repo):
    """Prefect's pool limit is checked when a worker polls, without a lock: workers polling at the same moment
    can start more runs than the limit together (seen here: 3 running with a limit of 2). A concurrency key is
    a Prefect global concurrency limit with leases, so it is the hard cap: at most N agents work at once."""
    with get_client(sync_client=True) as client:
        assert client.read_work_pool(POOL).concurrency_limit == POOL_LIMIT
    store = Store(topology.store_url)
    topology.model.scripts["Slow task"] = [
        calls(tool("finish", summary="nothing to do"), delay=SLOW_REPLY_S) for _ in range(POOL_LIMIT + 1)
    ]
    runs = [
        run_deployment(
            DEPLOYMENT,
            timeout=0,
            parameters={
                "request": {
                    "repository": str(repo),
                    "instructions": f"Slow task {i}",
                    "model": MODEL,
                    "review": False,
                    "concurrency_key": "every-agent",
                    "concurrency_limit": POOL_LIMIT,
                }
            },
        )
        for i in range(POOL_LIMIT + 1)
    ]
    ids = [run.id for run in runs]

    def all_final():
        with get_client(sync_client=True) as client:
            states = [client.read_flow_run(i).state for i in ids]
        return all(s and s.is_final() for s in states) and states

    states = wait_until(
        "the slow runs to end", all_final, 150, lambda: "\n".join(topology.log(f"worker-{n}") for n in WORKERS)
    )
    assert all(s.is_completed() for s in states), [s.message for s in states]
    with get_client(sync_client=True) as client:
        assert len(running_intervals(client, ids)) == POOL_LIMIT + 1
    working = []  # when each session's agent worked: its first step's start to its last step's end
    for run_id in ids:
        steps = store.steps(store.session_for_flow_run(str(run_id)).id)
        working.append((steps[0].started_at, steps[-1].started_at + timedelta(seconds=steps[-1].duration_s)))
    assert most_at_once(working) == POOL_LIMIT, working  # never more than the key's limit, and the limit is used


def test_a_review_suspended_on_one_worker_is_resumed_on_another(topology, repo):
    store = Store(topology.store_url)
    topology.model.scripts["Move me"] = [
        calls(tool("write_file", path="first.txt", content="first\n"), tool("run_command", command="rm obsolete.txt")),
        calls(tool("finish", summary="done")),
        calls(tool("edit_file", path="first.txt", old="first", new="first, improved")),
        calls(tool("finish", summary="improved")),
    ]
    started = datetime.now(timezone.utc)
    run = run_deployment(
        DEPLOYMENT,
        timeout=0,
        parameters={
            "request": {"repository": str(repo), "instructions": "Move me", "model": MODEL, "reviewer": "carol"}
        },
    )

    first = wait_for_review(store, "Move me", timeout=150, since=started)
    assert first.flow_run_id == str(run.id)
    with get_client(sync_client=True) as client:
        state = wait_until(
            "the run to suspend", lambda: (s := client.read_flow_run(run.id).state).name == "Suspended" and s, 60
        )
    assert state.state_details.pause_reschedule
    ran_on = [name for name, home in topology.homes.items() if Path(first.workspace).is_relative_to(home)]
    assert len(ran_on) == 1, f"workspace {first.workspace} is in no worker's home"
    gone = ran_on[0]
    assert Path(first.workspace).is_dir()

    # Its host goes away, disk and all; the other hosts never had a copy.
    topology.stop_worker(gone)
    shutil.rmtree(topology.homes[gone])
    assert not any((home / "workspaces" / first.id).exists() for home in topology.homes.values())

    marks = topology.log_marks()
    decide(first, "request_changes", feedback="Improve first.txt")
    second = wait_for_review(store, "Move me", after_key=first.review_key, timeout=150, since=started)
    assert second.iteration == 2 and second.flow_run_id == str(run.id)
    picked_up = topology.submitted(run.id, marks)
    assert len(picked_up) == 1 and picked_up[0] != gone, picked_up
    assert Path(second.workspace).is_relative_to(topology.homes[picked_up[0]]), (
        f"worker-{picked_up[0]} resumed the run but works in {second.workspace}, not in its own AGENT_TASKS_HOME "
        f"{topology.homes[picked_up[0]]}"
    )
    assert not topology.homes[gone].exists(), "the resumed run wrote into the stopped worker's home"
    assert sorted(f["path"] for f in store.latest_diff(second.id).files) == ["first.txt", "obsolete.txt"]
    assert (Path(second.workspace) / "first.txt").read_text() == "first, improved\n"

    decide(second, "accept")
    done = wait_until(
        "the session to be accepted",
        lambda: (r := store.get_session(second.id)).status == "accepted" and r,
        150,
        lambda: store.get_session(second.id).status_reason or "",
    )
    assert git(repo, "show", f"{done.work_branch}:first.txt") == "first, improved"
    assert "obsolete.txt" not in git(repo, "ls-tree", "--name-only", done.work_branch)
    assert git(repo, "rev-parse", f"{done.work_branch}~1") == done.base_commit
    assert [r.decision for r in store.reviews(done.id)] == ["request_changes", "accept"]
    with get_client(sync_client=True) as client:
        final = wait_until(
            "the flow run to end", lambda: (s := client.read_flow_run(run.id).state).is_final() and s, 60
        )
    assert final.is_completed()
