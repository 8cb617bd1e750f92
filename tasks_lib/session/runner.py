"""Which process is running a session, and whether that process is still alive.

A session records its runner as ``host:pid`` while a process is working on it (or blocking on its
review). If that process is killed outright (``kill -9``, a reboot), nothing in it can end the
session; readers of the store use this module to notice and end such orphans in a clear state.
"""

from __future__ import annotations

import os
import socket


def current_runner() -> str:
    """This process, as recorded in a session: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def runner_gone(runner: str | None) -> bool:
    """True when the runner is a process on this host that no longer exists.

    Runners on other hosts are never judged gone from here: their liveness cannot be seen.
    """
    if not runner or ":" not in runner:
        return False
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not _pid_alive(int(pid))
