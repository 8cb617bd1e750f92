"""Sessions on a Prefect Docker work pool, end to end on a real Docker engine (.ci/run starts dockerd).

`prefect server start` on PostgreSQL, the store on PostgreSQL, the worker image built with no registry
(`agent-tasks image build`), the pool and its deployment (`agent-tasks pool docker`), and `prefect worker start
--type docker` processes: each flow run is a container. A review suspends the run with no container waiting, and
the decision from the CLI resumes it in a new container; a container killed mid-session settles its session with
the diff kept; a worker stopped while runs queue is replaced and every run still runs once.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tasks_lib.testing.scripted_server import calls, tool
from tests.docker_topology import AGENT_TASKS, DEPLOYMENT, DockerPool, worker_image
from tests.helpers import wait_for_review
from tests.topology import ROOT, ScriptedTasks, wait_until

KEY = "sk-docker-pool-key-0123456789abcdef"


@pytest.fixture(scope="module")
def image() -> str:
    """The worker image, built from this checkout with no registry (base and wheels cached)."""
    from tasks_lib.environments.docker import DockerUnavailable

    try:
        return worker_image()
    except DockerUnavailable as exc:
        pytest.fail(f"these tests need a Docker engine ({exc}); .ci/run installs docker.io and starts dockerd")


@pytest.fixture(scope="module")
def pool(postgres_server, tmp_path_factory, image):
    base = tmp_path_factory.mktemp("docker-pool")
    mount = Path(tmp_path_factory.getbasetemp())
    top = DockerPool(postgres_server, base, mount, ScriptedTasks(), secrets={"OPENAI_API_KEY": KEY})
    try:
        top.start_worker("a")
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: top.api}):
            yield top
    finally:
        top.close()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "safe.directory=*", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def test_a_task_on_the_docker_pool_is_reviewed_from_the_cli_and_resumed_in_a_new_container(pool, repo):
    from prefect.client.orchestration import get_client

    assert "agent-tasks pool worker --pool agent-docker" in pool.setup_output
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(DEPLOYMENT)
    shown = json.dumps(deployment.job_variables)
    assert KEY not in shown and pool.store_url not in shown, "keys and the store's URL stay in Secret blocks"
    assert deployment.job_variables["env"]["OPENAI_API_KEY"] == "{{ prefect.blocks.secret.agent-tasks-openai-api-key }}"
    pool.model.scripts["DOCKER-ACCEPT"] = [
        calls(tool("run_command", command="echo inside > where.txt")),
        calls(tool("finish", summary="wrote where.txt")),
    ]
    run_id = pool.submit(repo, "DOCKER-ACCEPT: write where.txt")
    row = wait_for_review(pool.store, "DOCKER-ACCEPT: write where.txt", timeout=300)
    assert row.flow_run_id == str(run_id)
    wait_until("the first container to be gone", lambda: not pool.containers(run_id, every=False), 60)
    workspace = Path(row.workspace)
    assert workspace.is_relative_to(pool.home) and (workspace / "where.txt").read_text() == "inside\n"

    done = subprocess.run(
        [AGENT_TASKS, "review", row.id[:8], "accept"],
        env=pool.env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ended = wait_until(
        "the session to end",
        lambda: (r := pool.store.get_session(row.id)).status in ("accepted", "failed", "crashed") and r,
        300,
        lambda: pool.log("worker-a"),
    )
    assert ended.status == "accepted", ended.status_reason
    assert git(repo, "show", f"{ended.work_branch}:where.txt") == "inside\n"
    assert git(repo, "rev-parse", "main").strip() == row.base_commit, "the base branch is untouched"
    log = pool.log("worker-a", tail=None)
    assert log.count(f"submitting flow run '{run_id}'") == 2, "resumed in a second container"
    assert log.count("has status 'running'") >= 2 and "Running 1 deployment pull step" in log
    wait_until("no container left", lambda: not pool.containers(run_id), 60)


def test_a_container_killed_mid_session_settles_the_session_with_its_diff_kept(pool, repo):
    pool.model.scripts["DOCKER-KILL"] = [
        calls(tool("write_file", path="half.txt", content="half done\n")),
        calls(tool("run_command", command="sleep 600")),
    ]
    run_id = pool.submit(repo, "DOCKER-KILL: a long task", review=False)
    wait_until("the agent's long command", lambda: pool.model.served.get("DOCKER-KILL") == 2, 300)
    time.sleep(2)  # the reply is on its way to the container, and `sleep 600` starts
    (container,) = pool.containers(run_id, every=False)
    subprocess.run(["docker", "kill", container], check=True, capture_output=True)
    row = next(r for r in pool.store.list_sessions(limit=10) if r.flow_run_id == str(run_id))

    def show() -> subprocess.CompletedProcess:  # the CLI settles what Prefect says ended
        args = [AGENT_TASKS, "show", row.id[:8]]
        return subprocess.run(args, env=pool.env, capture_output=True, text=True, timeout=120, cwd=ROOT)

    ended = wait_until(
        "the session to settle",
        lambda: show() and (r := pool.store.get_session(row.id)).status in ("crashed", "failed") and r,
        180,
        lambda: pool.log("worker-a"),
        every=3,
    )
    assert "the changes made so far are kept (1 file changed" in ended.status_reason
    assert ended.files_changed == 1
    kept = pool.store.latest_diff(row.id)
    assert kept is not None and b"half done" in kept.patch


def test_a_stopped_worker_is_replaced_and_every_queued_run_runs_once(pool, repo):
    from prefect.client.orchestration import get_client

    pool.model.scripts["DOCKER-LONG"] = [
        calls(tool("write_file", path="long.txt", content="outlived its worker\n"), delay=20),
        calls(tool("finish", summary="wrote long.txt")),
    ]
    for i in range(3):
        pool.model.scripts[f"DOCKER-QUEUED-{i}"] = [
            calls(tool("write_file", path=f"queued-{i}.txt", content=f"{i}\n")),
            calls(tool("finish", summary=f"wrote queued-{i}.txt")),
        ]
    long = pool.submit(repo, "DOCKER-LONG: write long.txt", review=False)
    wait_until("the long run's first model call", lambda: pool.model.served.get("DOCKER-LONG") == 1, 300)
    (container,) = pool.containers(long, every=False)
    pool.stop_worker("a")
    assert pool.containers(long, every=False) == [container], "the running container outlives its stopped worker"
    queued = [pool.submit(repo, f"DOCKER-QUEUED-{i}: write queued-{i}.txt", review=False) for i in range(3)]
    time.sleep(6)
    with get_client(sync_client=True) as client:
        states = [client.read_flow_run(run).state.type.value for run in queued]
    assert states == ["SCHEDULED"] * 3, "no worker, no container: the runs wait (Scheduled or Late)"
    assert not any(pool.containers(run) for run in queued)

    pool.start_worker("b")

    def sessions() -> dict[str, list]:
        rows = pool.store.list_sessions(limit=50)
        return {str(run): [r for r in rows if r.flow_run_id == str(run)] for run in [long, *queued]}

    ended = wait_until(
        "every run's session to end",
        lambda: (
            all(rows and rows[0].status in ("completed", "failed", "crashed") for rows in sessions().values())
            and sessions()
        ),
        300,
        lambda: pool.log("worker-b"),
        every=2,
    )
    assert {run: [r.status for r in rows] for run, rows in ended.items()} == {
        str(run): ["completed"] for run in [long, *queued]
    }, "every run ran, and once"
    ours = {str(run) for run in [long, *queued]}
    assert [r for r in pool.took("a") if r in ours] == [str(long)], "the stopped worker started only the long run"
    assert sorted(pool.took("b")) == sorted(str(run) for run in queued), "its successor started each queued run once"
    assert pool.model.served["DOCKER-LONG"] == 2 and all(pool.model.served[f"DOCKER-QUEUED-{i}"] == 2 for i in range(3))
    for run, rows in ended.items():
        assert rows[0].files_changed == 1, (run, rows[0].status_reason)
    wait_until("no container left", lambda: not any(pool.containers(run) for run in [long, *queued]), 60)
