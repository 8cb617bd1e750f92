"""Scale-out on one machine standing in for several hosts, as a reusable set of processes.

`prefect server start` on PostgreSQL, the session store on PostgreSQL (or a given URL), a `process` work
pool with a concurrency limit, the agent-task deployment from the repository's prefect.yaml (`prefect
deploy`), a scripted model server, and N `prefect worker start` processes, each with its own
AGENT_TASKS_HOME (no shared disk). Used by tests/flow/test_scale_out.py and bench/bench_scale.py.

This module imports nothing from tests/conftest.py (which rewrites the environment when imported), so
the benchmark can use it outside pytest; `postgres()` is the fixture `postgres_server` as a context manager.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

ROOT = Path(__file__).resolve().parents[1]
PREFECT = str(Path(sys.executable).parent / "prefect")
POOL = "local-process"  # the pool prefect.yaml names
DEPLOYMENT = "agent-task/agent-task"


class ScriptedTasks:
    """A scripted model for several concurrent sessions: each task's replies, chosen by a marker in its
    instructions; counts the replies served per marker. The summary call (no tools) gets the default summary."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[dict[str, Any]]] = {}
        self.served: dict[str, int] = {}

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        from tasks_lib.testing.scripted_server import DEFAULT_SUMMARY

        if not body.get("tools"):
            return {"content": DEFAULT_SUMMARY}
        asked = next((str(m.get("content")) for m in body.get("messages", []) if m.get("role") == "user"), "")
        for marker, replies in self.scripts.items():
            if marker in asked:
                self.served[marker] = self.served.get(marker, 0) + 1
                return replies.pop(0) if replies else {"content": "(script exhausted)"}
        return {"content": "(no script for this task)"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server (initdb in a temp dir): its base URL, without a database."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
    initdb = found[-1]
    if not initdb or not os.path.exists(initdb):
        raise RuntimeError("PostgreSQL server binaries are needed: apt-get install postgresql")
    bindir = Path(initdb).parent
    base = Path(tempfile.mkdtemp(prefix="agent-tasks-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        shutil.chown(base, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = base / "data"
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "agent"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *run_as,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "log"),
            "-w",
            "start",
            "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c max_connections=300",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"agent@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


def create_database(server: str) -> str:
    """A new, empty database on a PostgreSQL server; its name."""
    import psycopg

    name = f"db_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"postgresql://{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def spawn(base: Path, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A long-running process in its own process group, its output in <base>/<name>.log."""
    log = open(base / f"{name}.log", "w")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a process group; kill it when it does not end within 20 s."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except ProcessLookupError:
            proc.wait(10)
    else:  # the leader is gone (killed); what it started may still run in its group
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cli(env: dict[str, str], *args: str) -> str:
    """Run the prefect CLI in the project directory, as a user would; its output."""
    done = subprocess.run([PREFECT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def wait_until(
    what: str, check: Callable[[], Any], timeout: float, diagnose: Callable[[], str] = lambda: "", every: float = 0.5
) -> Any:
    """The first truthy value of check() within timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}\n{diagnose()}")


class Topology:
    """The running processes and where each host keeps its files.

    ``start()`` brings up the Prefect server (PostgreSQL), the store, the scripted model (``responder``),
    the pool with its limit, the deployment and the workers, and waits until every worker is online;
    ``close()`` stops all of them. Use it as a context manager. PREFECT_API_URL is set in this process
    while it runs (so run_deployment and get_client reach the server).
    """

    def __init__(
        self,
        pg: str,
        base: Path,
        responder: Callable[[dict[str, Any]], dict[str, Any]],
        workers: tuple[str, ...] = ("a", "b", "c"),
        pool_limit: int = 2,
        store_url: str | None = None,
        worker_env: dict[str, str] | None = None,
    ):
        self.pg, self.base, self.responder = pg, Path(base), responder
        self.names, self.pool_limit, self.worker_env = tuple(workers), pool_limit, dict(worker_env or {})
        self.api = f"http://127.0.0.1:{free_port()}/api"
        self.store_url = store_url or f"postgresql+psycopg://{pg}/{create_database(pg)}"
        self.homes: dict[str, Path] = {}
        self.workers: dict[str, subprocess.Popen] = {}  # the running ones
        self.started: dict[str, subprocess.Popen] = {}  # every worker ever started
        self.procs: list[subprocess.Popen] = []
        self.scripted = None
        self.common = {
            **os.environ,
            "PREFECT_API_URL": self.api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
        self._settings_ctx = None

    # --- life ------------------------------------------------------------------------------------

    def __enter__(self) -> Topology:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        from tasks_lib.store import Store
        from tasks_lib.testing.scripted_server import ScriptedServer

        self.base.mkdir(parents=True, exist_ok=True)
        server_env = {
            **self.common,
            "PREFECT_HOME": str(self.base / "server-prefect"),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"postgresql+asyncpg://{self.pg}/{create_database(self.pg)}",
        }
        port = self.api.split(":")[2].split("/")[0]
        self.scripted = ScriptedServer(responder=self.responder).__enter__()
        self.procs.append(
            spawn(
                self.base,
                "server",
                [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port, "--no-ui"],
                server_env,
            )
        )
        wait_until(
            "the Prefect server on PostgreSQL",
            lambda: httpx.get(f"{self.api}/health", timeout=2).status_code == 200,
            180,
            lambda: self.log("server"),
        )
        Store(self.store_url)  # the schema exists before any worker writes

        user = {**self.common, "PREFECT_HOME": str(self.base / "user-prefect"), "AGENT_TASKS_PROJECT_DIR": str(ROOT)}
        cli(user, "work-pool", "create", POOL, "--type", "process")
        cli(user, "work-pool", "set-concurrency-limit", POOL, str(self.pool_limit))
        cli(user, "--no-prompt", "deploy", "--name", "agent-task")

        for name in self.names:
            self.start_worker(name)
        self._settings_ctx = temporary_settings({PREFECT_API_URL: self.api})
        self._settings_ctx.__enter__()
        wait_until(
            f"{len(self.names)} online workers",
            lambda: self.online() == len(self.names),
            120,
            lambda: "\n".join(self.log(f"worker-{n}") for n in self.names),
        )

    def start_worker(self, name: str) -> subprocess.Popen:
        """Start one worker with its own home (a host of its own)."""
        home = self.base / f"host-{name}"
        self.homes[name] = home / "agent-tasks"
        env = {
            **self.common,
            "PREFECT_HOME": str(home / "prefect"),
            "AGENT_TASKS_HOME": str(self.homes[name]),
            "AGENT_TASKS_DB_URL": self.store_url,
            "AGENT_TASKS_PROJECT_DIR": str(ROOT),
            "OPENAI_API_BASE": self.scripted.api_base,
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            **self.worker_env,
        }
        proc = spawn(
            self.base, f"worker-{name}", [PREFECT, "worker", "start", "--pool", POOL, "--name", f"worker-{name}"], env
        )
        self.workers[name] = self.started[name] = proc
        return proc

    def online(self) -> int:
        """How many of the pool's workers the server sees online."""
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            workers = client.read_workers_for_work_pool(POOL)
        return sum(w.status == "ONLINE" for w in workers)

    def close(self) -> None:
        for proc in [*self.started.values(), *self.procs]:
            stop(proc)
        if self.scripted is not None:
            self.scripted.__exit__(None, None, None)
            self.scripted = None
        if self._settings_ctx is not None:
            self._settings_ctx.__exit__(None, None, None)
            self._settings_ctx = None

    # --- observing and disturbing ----------------------------------------------------------------

    def log(self, name: str, tail: int = 3000) -> str:
        path = self.base / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def log_marks(self) -> dict[str, int]:
        """How far each running worker's log has got."""
        return {name: (self.base / f"worker-{name}.log").stat().st_size for name in self.workers}

    def submitted(self, run_id: UUID, since: dict[str, int]) -> list[str]:
        """The running workers that took this flow run since the marks (workers race for a run; the
        losers log "Aborted submission")."""
        took = []
        for name in self.workers:
            with open(self.base / f"worker-{name}.log") as log:
                log.seek(since.get(name, 0))
                text = log.read()
            if text.count(f"submitting flow run '{run_id}'") > text.count(f"Aborted submission of flow run '{run_id}'"):
                took.append(name)
        return took

    def stop_worker(self, name: str) -> None:
        """Stop a worker and everything it started, as when its host goes away."""
        stop(self.workers.pop(name))

    def kill_worker(self, name: str, group: bool = False) -> int:
        """SIGKILL a worker: its process only (``kill -9 <pid>``: the flow runs it started are left to themselves),
        or its whole process group (the host dies with every run on it); the worker's pid."""
        proc = self.workers.pop(name)
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return proc.pid
