"""`agent-tasks run --no-wait`: the same run in a process of its own, its session id and review link printed once it
has one; the run goes on (and waits for its review) after the command returns."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tasks_lib.cli.common import CliError
from tasks_lib.cli.spinner import Spinner

ANNOUNCE_OPTION = "--announce-file"  # the hidden option that tells a background run where to write its session id
START_TIMEOUT_S = 180
REVIEW_PORT = 8766  # where `agent-tasks up` serves the review pages by default (without its up.json, looked for there)


def announce_to(path: str):
    """A progress listener that writes the session id to ``path`` once, when the run has one."""

    def listener(event: str, data: dict) -> None:
        if data.get("session_id") and not os.path.exists(path):
            Path(f"{path}.part").write_text(str(data["session_id"]))
            os.replace(f"{path}.part", path)  # whole or not at all

    return listener


def start_in_background(argv: list[str], logs_dir: Path, spinner: Spinner) -> tuple[str, Path]:
    """Start ``agent-tasks run`` with ``argv`` (no --no-wait) detached from this terminal; returns (its session id,
    its log file) once the session exists. CliError with the log's last line when it ends before that."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = logs_dir / f"run-{stamp}-{os.getpid()}.log"
    announce = logs_dir / f".run-{stamp}-{os.getpid()}.id"
    with open(log, "wb") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "tasks_lib.cli", "run", *argv, ANNOUNCE_OPTION, str(announce)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C or closing this terminal does not stop it
        )
    spinner.say("starting the run in the background")
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if announce.exists() and announce.read_text().strip():
                return announce.read_text().strip(), log
            if child.poll() is not None:
                lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
                last = lines[-1].removeprefix("error: ") if lines else f"exit code {child.returncode}"
                raise CliError(f"the background run ended before it started a session: {last} (log: {log})")
            time.sleep(0.2)
    finally:
        spinner.stop()
        announce.unlink(missing_ok=True)
    raise CliError(f"the background run has not started a session after {START_TIMEOUT_S} s; its log: {log}")


def review_pages_link(session_id: str) -> str | None:
    """The session's review page: at AGENT_TASKS_REVIEW_URL, else at the pages a running `agent-tasks up` announces
    in the home (up.json), else at 127.0.0.1:8766 when pages answer there; None when no pages are known."""
    import httpx

    from tasks_lib.config import load_settings
    from tasks_lib.ops.up_state import read_up_state

    settings = load_settings()
    if settings.review_url:
        return settings.review_page(session_id)
    up = read_up_state(settings.home)
    if up is not None:
        return f"{up.review_pages}/sessions/{session_id}"
    local = f"http://127.0.0.1:{REVIEW_PORT}"
    try:
        if httpx.get(f"{local}/sessions", timeout=1).status_code == 200:
            return f"{local}/sessions/{session_id}"
    except httpx.HTTPError:
        pass
    return None


def background_argv(argv: list[str]) -> list[str]:
    """The command line of the background run: this one without --no-wait."""
    return [a for a in argv if a != "--no-wait"]


def noted(log: Path) -> str:
    """The log file as people should see it (under ~ when it is)."""
    home = str(Path.home())
    return str(log).replace(home, "~", 1) if str(log).startswith(home) else str(log)
