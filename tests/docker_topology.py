"""Sessions on a Prefect Docker work pool, as a reusable set of processes on one Docker engine.

`prefect server start` on PostgreSQL, the store on PostgreSQL, a scripted model server, the pool and its
deployment made by `agent-tasks pool docker`, and Docker workers started by `agent-tasks pool worker`: each
flow run is a container on the host network. Used by tests/flow/test_docker_pool.py and
bench/bench_docker_pool.py; like tests/topology.py it imports nothing from tests/conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from tests.helpers import MODEL
from tests.topology import PREFECT, ROOT, cli, create_database, free_port, spawn, stop, wait_until

POOL = "agent-docker"
DEPLOYMENT = "agent-task/agent-task-docker"
AGENT_TASKS = str(Path(sys.executable).parent / "agent-tasks")


def worker_image() -> str:
    """The worker image, built from this checkout with no registry (base and wheels cached); its tag.
    Raises DockerUnavailable when no engine answers."""
    from tasks_lib.environments.docker import docker_version
    from tasks_lib.ops.image import build

    docker_version()
    return build(say=lambda line: None).image


class DockerPool:
    """The server, the store, the pool with its deployment, and the Docker workers (``start_worker``).

    ``responder`` answers the model's calls (tests.topology.ScriptedTasks or a bench's model); ``secrets``
    become `--secret NAME=VALUE` of `agent-tasks pool docker`; ``mount`` is a host folder the containers see
    at the same path (where the test repositories live); ``pool_limit`` caps the pool's running flow runs.
    """

    def __init__(
        self,
        pg: str,
        base: Path,
        mount: Path,
        responder: Callable[[dict[str, Any]], dict[str, Any]],
        secrets: dict[str, str] | None = None,
        pool_limit: int | None = None,
    ):
        from tasks_lib.store import Store
        from tasks_lib.testing.scripted_server import ScriptedServer

        self.base, self.model = base, responder
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
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "AGENT_TASKS_DB_URL": self.store_url,
            "AGENT_TASKS_HOME": str(self.home),
        }
        self.scripted = ScriptedServer(responder=responder).__enter__()
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
        command = [AGENT_TASKS, "pool", "docker", "--pool", POOL, "--home", str(self.home)]
        command += ["--env", f"OPENAI_API_BASE={self.scripted.api_base}", "--mount", f"{mount}:{mount}"]
        for name, value in (secrets or {}).items():
            command += ["--secret", f"{name}={value}"]
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert done.returncode == 0, done.stdout + done.stderr
        self.setup_output = done.stdout
        if pool_limit:
            cli(self.env, "work-pool", "set-concurrency-limit", POOL, str(pool_limit))

    def start_worker(self, name: str) -> subprocess.Popen:
        """A Docker worker for the pool, as `agent-tasks pool docker` says to start it; waits until it is online."""
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
        return self.workers[name]

    def stop_worker(self, name: str) -> None:
        """Stop a worker (SIGTERM to its process group), as when its host is shut down; its containers are
        the engine's, not its children."""
        stop(self.workers.pop(name))

    def online(self) -> list[str]:
        """The names of the pool's workers the server sees online."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.api}), get_client(sync_client=True) as client:
            return [w.name for w in client.read_workers_for_work_pool(POOL) if w.status == "ONLINE"]

    def submit(self, repo: Path, instructions: str, review: bool = True, model: str = MODEL) -> UUID:
        """An on-demand task sent to the pool with `agent-tasks run --pool`; its flow run id."""
        args = [AGENT_TASKS, "run", str(repo), "--task", instructions, "--model", model, "--pool", POOL]
        args += [] if review else ["--no-review"]
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert done.returncode == 0, done.stdout + done.stderr
        line = next(x for x in done.stdout.splitlines() if x.startswith("flow run "))
        return UUID(line.split()[2])

    def took(self, name: str) -> list[str]:
        """The flow runs a worker's log says it submitted as containers (one entry per submission; runs it
        lost to another worker, logged as "Aborted submission", left out)."""
        import re

        text = self.log(f"worker-{name}", tail=None)
        aborted = re.findall(r"Aborted submission of flow run '([0-9a-f-]{36})'", text)
        took = re.findall(r"submitting flow run '([0-9a-f-]{36})'", text)
        for run in aborted:
            if run in took:
                took.remove(run)
        return took

    def containers(self, flow_run_id: UUID, every: bool = True) -> list[str]:
        """The containers of a flow run (running ones, or every one still on the engine)."""
        args = ["docker", "ps", "-q", "--filter", f"label=io.prefect.flow-run-id={flow_run_id}"]
        return subprocess.run(args + (["-a"] if every else []), capture_output=True, text=True).stdout.split()

    def log(self, name: str, tail: int | None = 4000) -> str:
        """The end of a process's log (the whole log with tail=None)."""
        path = self.base / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text[-tail:] if tail else text

    def close(self) -> None:
        """Stop the workers, the server and the model."""
        for proc in [*self.workers.values(), *self.procs]:
            stop(proc)
        self.scripted.__exit__(None, None, None)
