"""Sessions on a Prefect Docker work pool, end to end on a real Docker engine (.ci/run starts dockerd).

`prefect server start` on PostgreSQL, the store on PostgreSQL, the worker image built with no registry
(`agent-tasks image build`), the pool and its deployment (`agent-tasks pool docker`), and `prefect worker start
--type docker` processes: each flow run is a container. A review suspends the run with no container waiting, and
the decision from the CLI resumes it in a new container; a container killed mid-session settles its session with
the diff kept; a worker stopped while runs queue is replaced and every run still runs once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from tasks_lib.store import Store
from tasks_lib.testing.scripted_server import DEFAULT_SUMMARY, calls, tool
from tests.helpers import MODEL, wait_for_review
from tests.topology import PREFECT, ROOT, create_database, free_port, spawn, stop, wait_until

POOL = "agent-docker"
DEPLOYMENT = "agent-task/agent-task-docker"
AGENT_TASKS = str(Path(sys.executable).parent / "agent-tasks")
KEY = "sk-docker-pool-key-0123456789abcdef"


class Model:
    """Scripted replies per task (by a marker in its instructions), counting the replies served."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.served: dict[str, int] = {}

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("tools"):
            return {"content": DEFAULT_SUMMARY}
        asked = next((str(m.get("content")) for m in body.get("messages", []) if m.get("role") == "user"), "")
        for marker, replies in self.scripts.items():
            if marker in asked:
                self.served[marker] = self.served.get(marker, 0) + 1
                return replies.pop(0) if replies else {"content": "(script exhausted)"}
        return {"content": "(no script for this task)"}


class DockerPool:
    """The server, the store, the pool with its deployment, and the Docker workers."""

    def __init__(self, pg: str, base: Path, repo_root: Path):
        from tasks_lib.testing.scripted_server import ScriptedServer

        self.base, self.model = base, Model()
        self.api = f"http://127.0.0.1:{free_port()}/api"
        self.store_url = f"postgresql+psycopg://{pg}/{create_database(pg)}"
        self.home = base / "docker-home"
        self.home.mkdir()
        self.procs: list[subprocess.Popen] = []
        self.workers: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "PREFECT_API_URL": self.api,
            "PREFECT_HOME": str(base / "user-prefect"),
            "AGENT_TASKS_DB_URL": self.store_url,
            "AGENT_TASKS_HOME": str(self.home),
        }
        self.scripted = ScriptedServer(responder=self.model).__enter__()
        server_env = {**self.env, "PREFECT_HOME": str(base / "server-prefect")}
        server_env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"postgresql+asyncpg://{pg}/{create_database(pg)}"
        port = self.api.split(":")[2].split("/")[0]
        self.procs.append(
            spawn(
                base,
                "server",
                [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port, "--no-ui"],
                server_env,
            )
        )
        wait_until("the Prefect server", lambda: httpx.get(f"{self.api}/health", timeout=2).status_code == 200, 180)
        self.store = Store(self.store_url)
        done = subprocess.run(
            [
                AGENT_TASKS, "pool", "docker", "--pool", POOL, "--home", str(self.home),
                "--env", f"OPENAI_API_BASE={self.scripted.api_base}", "--secret", f"OPENAI_API_KEY={KEY}", "--mount", f"{repo_root}:{repo_root}",
            ],
            env=self.env, capture_output=True, text=True, timeout=300, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        self.setup_output = done.stdout

    def start_worker(self, name: str) -> None:
        """A Docker worker for the pool, as `agent-tasks pool docker` says to start it."""
        env = {
            **self.env,
            "PREFECT_HOME": str(self.base / f"worker-{name}-prefect"),
            "PREFECT_WORKER_QUERY_SECONDS": "1",
        }
        command = [AGENT_TASKS, "pool", "worker", "--pool", POOL, "--name", f"docker-{name}"]
        self.workers[name] = spawn(self.base, f"worker-{name}", command, env)
        wait_until(
            f"worker {name} online", lambda: f"docker-{name}" in self.online(), 120, lambda: self.log(f"worker-{name}")
        )

    def online(self) -> list[str]:
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api}), get_client(sync_client=True) as client:
            return [w.name for w in client.read_workers_for_work_pool(POOL) if w.status == "ONLINE"]

    def submit(self, repo: Path, instructions: str, review: bool = True) -> UUID:
        """An on-demand task sent to the pool with `agent-tasks run --pool`; its flow run id."""
        args = [AGENT_TASKS, "run", str(repo), "--task", instructions, "--model", MODEL, "--pool", POOL]
        args += [] if review else ["--no-review"]
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert done.returncode == 0, done.stdout + done.stderr
        line = next(x for x in done.stdout.splitlines() if x.startswith("flow run "))
        return UUID(line.split()[2])

    def containers(self, flow_run_id: UUID, every: bool = True) -> list[str]:
        """The containers of a flow run (running ones, or every one still on the engine)."""
        args = ["docker", "ps", "-q", "--filter", f"label=io.prefect.flow-run-id={flow_run_id}"]
        return subprocess.run(args + (["-a"] if every else []), capture_output=True, text=True).stdout.split()

    def log(self, name: str, tail: int | None = 4000) -> str:
        path = self.base / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text[-tail:] if tail else text

    def close(self) -> None:
        for proc in [*self.workers.values(), *self.procs]:
            stop(proc)
        self.scripted.__exit__(None, None, None)


@pytest.fixture(scope="module")
def worker_image() -> str:
    """The worker image, built from this checkout with no registry (base and wheels cached)."""
    from tasks_lib.environments.docker import DockerUnavailable, docker_version
    from tasks_lib.ops.image import build

    try:
        docker_version()
    except DockerUnavailable as exc:
        pytest.fail(f"these tests need a Docker engine ({exc}); .ci/run installs docker.io and starts dockerd")
    return build(say=lambda line: None).image


@pytest.fixture(scope="module")
def pool(postgres_server, tmp_path_factory, worker_image):
    base = tmp_path_factory.mktemp("docker-pool")
    top = DockerPool(postgres_server, base, Path(tmp_path_factory.getbasetemp()))
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
