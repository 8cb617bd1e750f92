"""Which Prefect API a command talks to: the configured one, a local `agent-tasks up` server, or a temporary one.

Decided before Prefect reads its settings, so the choice holds for the whole process.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import MutableMapping
from pathlib import Path

from tasks_lib.config import load_settings
from tasks_lib.security.cookies import keep_secret

EPHEMERAL_STARTUP_TIMEOUT_S = 120  # Prefect's default (20 s) is too short on a busy 2-core machine
AUTH_FILE = "prefect-api-auth"  # in the home, mode 0600: the Prefect API's basic-auth string in team mode
EPHEMERAL_FAILURE = (
    "Timed out while attempting to connect to ephemeral Prefect API server",
    "ephemeral Prefect API server",
)


def find_local_api(environ: MutableMapping[str, str] | None = None) -> str | None:
    """The Prefect API this process uses: PREFECT_API_URL, else the server of a running `agent-tasks up` when it
    answers (then PREFECT_API_URL is set to it, so links and Prefect calls go there); None when neither.

    The running `up` is the one the home's up.json announces, or, without that file, the one at
    AGENT_TASKS_LOCAL_API (http://127.0.0.1:4200/api).
    """
    import httpx

    environ = os.environ if environ is None else environ
    settings = load_settings(environ)
    local = up_api(settings.home) or settings.local_api.rstrip("/")
    if environ.get("PREFECT_API_URL"):
        if environ["PREFECT_API_URL"].rstrip("/") == local:
            adopt_auth(environ, settings.home)
        return environ["PREFECT_API_URL"]
    try:
        if httpx.get(f"{local}/health", timeout=1.5).status_code == 200:
            environ["PREFECT_API_URL"] = local
            adopt_auth(environ, settings.home)
            return local
    except httpx.HTTPError:
        pass
    return None


def up_api(home: Path) -> str | None:
    """The Prefect API the running `agent-tasks up` of ``home`` announces (no trailing slash); None without one."""
    from tasks_lib.ops.up_state import read_up_state

    state = read_up_state(home)
    return state.prefect_api.rstrip("/") if state else None


def api_auth_string(home: Path) -> str:
    """The basic-auth string (``agent-tasks:<random>``) `agent-tasks up` puts its Prefect server behind in team mode,
    kept in the home (mode 0600) and made on first use."""
    return keep_secret(home / AUTH_FILE, lambda: f"agent-tasks:{secrets.token_urlsafe(24)}")


def adopt_auth(environ: MutableMapping[str, str], home: Path) -> bool:
    """Give this process the local `up` server's auth string (PREFECT_API_AUTH_STRING), unless it has one; whether
    it was given. Needs reading the home's file: whoever may read the home may use the API."""
    path = home / AUTH_FILE
    if environ.get("PREFECT_API_AUTH_STRING") or not path.exists():
        return False
    environ["PREFECT_API_AUTH_STRING"] = path.read_text().strip()
    return True


def choose_api(environ: MutableMapping[str, str] | None = None) -> str:
    """Point this process at a Prefect API (unless PREFECT_API_URL already does); returns a line saying which."""
    environ = os.environ if environ is None else environ
    if environ.get("PREFECT_API_URL"):
        return f"Prefect API {environ['PREFECT_API_URL']}"
    local = find_local_api(environ)
    if local:
        return f"using the local Prefect server at {local} (agent-tasks up): the run shows in its UI"
    environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_TIMEOUT_S))
    return (
        "no Prefect server configured: using a temporary one for this run "
        "(start `agent-tasks up` to keep runs, see them in the UI and review them from elsewhere)"
    )


def ephemeral_failure(exc: BaseException) -> str | None:
    """A one-line explanation when ``exc`` is Prefect's temporary server failing to start, else None."""
    if not any(marker in str(exc) for marker in EPHEMERAL_FAILURE):
        return None
    return (
        "Prefect's temporary server did not start in time (is the machine busy?): start `agent-tasks up` in "
        "another terminal, or set PREFECT_API_URL to a Prefect server, and run again"
    )
