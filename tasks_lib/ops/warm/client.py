"""The warm client: the work pool's per-run command, which hands one flow run to the warm server and waits.

It sends the server its arguments, environment, working directory and stdin/stdout/stderr, forwards
SIGTERM/SIGINT to the child the server forked, and exits with that child's exit status. When no server
answers it execs ``python -m prefect.engine`` itself, as the worker would have.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from tasks_lib.ops.warm.protocol import FORWARDED, Lines, encode_request, send_line, send_request

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (milliseconds the client does not spend)
if TYPE_CHECKING:
    from types import FrameType
    from typing import NoReturn

    from tasks_lib.ops.warm.protocol import Message


def _engine_argv(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "prefect.engine", *argv]


def _fall_back(argv: list[str], why: str) -> NoReturn:
    """Become ``python -m prefect.engine`` in this process: what the worker would have run."""
    if os.environ.get("AGENT_TASKS_WARM_VERBOSE"):
        print(f"warm client: {why}; starting the engine cold", file=sys.stderr, flush=True)
    os.execv(sys.executable, _engine_argv(argv))


def _exit_like(code: int) -> int:
    """Exit with ``code``; a negative code (killed by a signal) is reproduced by the same signal."""
    if code >= 0:
        return code
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    return 128 - code


def client(argv: list[str], path: str) -> int:
    """Run one flow run through the warm server; the child's exit code (or exec the cold engine)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError as exc:
        conn.close()
        _fall_back(argv, f"no warm server at {path} ({exc.strerror or exc})")
    pending: list[int] = []
    child: Message = {}

    def forward(signum: int, _frame: FrameType | None) -> None:
        """Remember the signal; pass it on to the child once the server has started one."""
        pending.append(signum)
        if child:
            send_line(conn, {"signal": signum})

    for signum in FORWARDED:
        signal.signal(signum, forward)
    request = encode_request(argv, dict(os.environ), os.getcwd())
    try:
        send_request(conn, request)
        lines = Lines(conn)
        started = lines.next()
    except OSError as exc:
        started = None
        why = str(exc)
    else:
        why = "the warm server did not start the run"
    if not started or "pid" not in started:
        conn.close()
        if pending:
            return 128 + pending[0]
        _fall_back(argv, (started or {}).get("error") or why)
    child.update(started)
    for signum in pending:
        send_line(conn, {"signal": signum})
    ended = lines.next()
    if ended is None:
        print(f"warm client: the warm server went away while flow-run process {child['pid']} ran", file=sys.stderr)
        return 1
    return _exit_like(int(ended["exit"]))
