"""The local stack behind `agent-tasks up`: Prefect server + UI, served workflows, webhook relay, review pages.

Once all parts answer, the stack announces its addresses in the home (`up.json`, see tasks_lib/ops/up_state.py) and
withdraws them when it stops.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tasks_lib.config import load_settings
from tasks_lib.errors import AgentTasksError


class StackError(AgentTasksError, RuntimeError):
    """A part of the stack did not start or stopped by itself."""


class Stack:
    """Starts the four processes, watches them, and stops them in reverse order.

    The review pages run as their own process beside the relay, never on it: the relay may be exposed to
    GitHub, and the review pages can accept and push code.
    """

    def __init__(
        self, host: str, port: int, relay_port: int, review_port: int = 8766, local_model_port: int | None = None
    ):
        self.host, self.port, self.relay_port, self.review_port = host, port, relay_port, review_port
        self.local_model_port = local_model_port  # serve the embedded local model there, as the runs' default
        self.local_model: str | None = None  # its address, once it answers
        self.api_url = f"http://{host}:{port}/api"
        self.review_url = load_settings().review_url or f"http://{host}:{review_port}"
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.logs: dict[str, Path] = {}  # where quiet parts write
        self.env = {
            **os.environ,
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
            # one machine: its served runs and its reviews share the local store
            "AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS": os.environ.get("AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS", "1"),
            # served runs report heartbeats, so a run whose process vanished is marked Crashed (see settle-sessions)
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": os.environ.get("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "60"),
            # forms and notifications of served runs link to the review pages
            "AGENT_TASKS_REVIEW_URL": self.review_url,
        }
        self.auth_file: Path | None = None  # team mode: where the Prefect API's auth string is kept
        if _team_mode():
            from tasks_lib.ops.prefect_api import AUTH_FILE, api_auth_string

            home = load_settings().home
            auth = api_auth_string(home)
            # the server asks every client for it; the stack's own processes (and `up`'s) send it
            self.env["PREFECT_SERVER_API_AUTH_STRING"] = self.env["PREFECT_API_AUTH_STRING"] = auth
            self.auth_file = home / AUTH_FILE

    def _spawn(self, name: str, args: list[str], quiet: bool = False) -> None:
        """Start a part in its own session (Ctrl-C reaches only `up`, which then stops the parts in order); a quiet
        part writes to its log file in the home's logs/ instead of this terminal (Prefect's banner, llama.cpp)."""
        output = None
        if quiet:
            logs = load_settings().home / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            self.logs[name] = logs / f"{name.replace(' ', '-')}.log"
            output = open(self.logs[name], "wb")  # noqa: SIM115  (the child holds it; closed below)
        try:
            proc = subprocess.Popen(
                [sys.executable, *args], env=self.env, start_new_session=True, stdout=output, stderr=output
            )
        finally:
            if output is not None:
                output.close()
        self.procs.append((name, proc))

    def _wait_http(self, name: str, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise StackError(f"{name} did not answer on {url} within {timeout:.0f}s{self._last_words(name)}")

    def start(self, console) -> None:
        """Start the server, then the workflows, the relay and the review pages; returns when all answer."""
        signal.signal(signal.SIGTERM, _raise_interrupt)
        self._ports_free()
        if self.local_model_port:
            self._start_local_model(console)
        console.print(f"starting Prefect server on {self.host}:{self.port} …")
        self._spawn(
            "prefect server",
            ["-m", "prefect", "server", "start", "--host", self.host, "--port", str(self.port)],
            quiet=True,
        )
        self._wait_http("prefect server", f"{self.api_url}/health", 180)
        if self.auth_file:
            console.print(
                f"team mode: the Prefect API asks for the auth string kept in {self.auth_file} (the UI asks once; "
                "agent-tasks commands on this machine read it there)"
            )
        console.print("serving workflows …")
        self._spawn("workflows", ["-m", "deployments.serve"])
        console.print(f"starting webhook relay on {self.host}:{self.relay_port} …")
        self._spawn(
            "relay",
            [
                "-m",
                "uvicorn",
                "deployments.relay:app",
                "--host",
                self.host,
                "--port",
                str(self.relay_port),
                "--log-level",
                "warning",
            ],
        )
        self._wait_http("webhook relay", f"http://{self.host}:{self.relay_port}/healthz", 60)
        console.print(f"starting review pages on {self.host}:{self.review_port} …")
        self._spawn("review pages", ["-m", "tasks_lib.web", "--host", self.host, "--port", str(self.review_port)])
        self._wait_http("review pages", f"http://{self.host}:{self.review_port}/healthz", 60)
        self.announce()

    def announce(self) -> None:
        """Tell the commands of this home where the stack serves (its Prefect API and review pages), in up.json."""
        from tasks_lib.ops.up_state import write_up_state

        write_up_state(load_settings().home, self.api_url, self.review_url)

    def _ports_free(self) -> None:
        """Raise StackError naming the first port something already listens on (another `up`, most often), before
        anything starts: a part that cannot bind would otherwise find the other stack answering in its place."""
        ports = {"--port": self.port, "--relay-port": self.relay_port, "--review-port": self.review_port}
        if self.local_model_port:
            from tasks_lib.agent.local_endpoint import served_base

            if served_base() is None:  # one already served is used as it is
                ports["--local-model-port"] = self.local_model_port
        for option, port in ports.items():
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closing connection is no listener
                try:
                    sock.bind((self.host, port))
                except OSError:
                    raise StackError(
                        f"port {port} on {self.host} is in use (is `agent-tasks up` already running?); stop what "
                        f"holds it or choose another with {option}"
                    ) from None

    def _start_local_model(self, console) -> None:
        """Serve the embedded local model (or use the one this machine already serves) and make it the default
        model of the runs this stack serves."""
        from tasks_lib.agent.local_endpoint import LOCAL_MODEL, served_base

        base = served_base()
        if base is None:
            console.print(f"starting the local model on 127.0.0.1:{self.local_model_port} …")
            port = str(self.local_model_port)
            self._spawn("local model", ["-m", "tasks_lib.cli", "models", "local", "serve", "--port", port], quiet=True)
            base = f"http://127.0.0.1:{port}/v1"
            self._wait_http("local model", f"http://127.0.0.1:{port}/health", 240)
        self.local_model = base
        self.env["AGENT_TASKS_MODEL"] = LOCAL_MODEL
        self.env["LLAMAFILE_API_BASE"] = base

    def check(self) -> None:
        """Raise StackError when a part has exited."""
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise StackError(f"{name} exited with code {proc.returncode}{self._last_words(name)}")

    def _last_words(self, name: str) -> str:
        """The last line a quiet part wrote, and where its log is; empty for a part that writes here."""
        log = self.logs.get(name)
        if log is None:
            return ""
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.exists() else []
        return (f": {lines[-1].strip()[:300]}" if lines else "") + f" (log: {log})"

    def wait(self) -> None:
        """Block until interrupted or until a part stops by itself."""
        while True:
            self.check()
            time.sleep(1)

    def stop(self) -> None:
        """Withdraw the stack's announcement, then stop the parts in reverse order: SIGINT, then SIGTERM, then SIGKILL."""
        from tasks_lib.ops.up_state import remove_up_state

        remove_up_state(load_settings().home)
        for _name, proc in reversed(self.procs):
            for sig, grace in ((signal.SIGINT, 15), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                if proc.poll() is not None:
                    break
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    continue
        self.procs.clear()


def _team_mode() -> bool:
    """Whether the configured store has people (then `up` puts the Prefect API behind an auth string)."""
    from tasks_lib.store import open_store
    from tasks_lib.store.people import team_mode

    return team_mode(open_store())


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
