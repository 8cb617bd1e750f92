"""What a running `agent-tasks up` announces to the commands of its home: `<home>/up.json` names its Prefect API and
review pages, its pid and when it started.

`up` writes the file once its parts answer and removes it when it stops; a file whose process is gone (an `up` that
was killed) counts as no file. Readers then fall back to the usual addresses.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

STATE_FILE = "up.json"  # in the agent-tasks home


@dataclass(frozen=True)
class UpState:
    """Where a running `agent-tasks up` serves: its Prefect API and review pages, and which process it is."""

    prefect_api: str  # e.g. http://127.0.0.1:4200/api
    review_pages: str  # base address, e.g. http://127.0.0.1:8766 (the inbox is at /sessions)
    pid: int
    started_at: str  # ISO 8601, UTC


def state_path(home: Path) -> Path:
    """The file a running `up` announces itself in, in the home ``home``."""
    return home / STATE_FILE


def write_up_state(home: Path, prefect_api: str, review_pages: str, pid: int | None = None) -> UpState:
    """Announce that process ``pid`` (default: this one) serves ``prefect_api`` and ``review_pages`` for ``home``;
    the file is replaced whole, never seen half-written. Returns what was written."""
    state = UpState(
        prefect_api=prefect_api.rstrip("/"),
        review_pages=review_pages.rstrip("/"),
        pid=os.getpid() if pid is None else pid,
        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    path = state_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{STATE_FILE}.{os.getpid()}.part")
    part.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(part, path)
    return state


def read_up_state(home: Path) -> UpState | None:
    """What the running `up` of ``home`` announced; None when there is no file, it cannot be read, or its process
    is gone (a stale file is left as it is: reading changes nothing)."""
    try:
        data = json.loads(state_path(home).read_text())
        state = UpState(
            prefect_api=str(data["prefect_api"]),
            review_pages=str(data["review_pages"]),
            pid=int(data["pid"]),
            started_at=str(data["started_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if pid_alive(state.pid) else None


def remove_up_state(home: Path, pid: int | None = None) -> bool:
    """Withdraw the announcement of process ``pid`` (default: this one), leaving another `up`'s alone; whether a
    file was removed."""
    pid = os.getpid() if pid is None else pid
    try:
        data = json.loads(state_path(home).read_text())
        if int(data["pid"]) != pid:
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    state_path(home).unlink(missing_ok=True)
    return True


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
