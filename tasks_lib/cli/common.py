"""What the `agent-tasks` commands share: consoles, the one-line error, the store, small formatters."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from rich.console import Console

from tasks_lib.errors import AgentTasksError

if TYPE_CHECKING:
    from tasks_lib.store import SessionRow, Store

AMBIGUOUS_SHOWN = 5  # candidates an ambiguous id prefix lists

# Stored text (reasons, summaries, the model's words) may hold brackets: never read as Rich markup.
# Styling is done with rich.text.Text, not markup strings.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
# Tables piped to another program are not cut to 80 columns.
wide = Console(highlight=False, width=None if sys.stdout.isatty() else 400, markup=False)


class CliError(AgentTasksError):
    """An error shown to the user as one line on stderr."""


def age(when: datetime | None) -> str:
    """A short age like '5m', '3h', '2d'."""
    if when is None:
        return "-"
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    seconds = max(0, int((datetime.now(timezone.utc) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class NoStore(CliError):
    """The configured SQLite store does not exist yet: no session has run with this home."""


def missing_store() -> str | None:
    """A line saying where the store was looked for, when it is a SQLite file that does not exist; else None."""
    from tasks_lib.config import load_settings

    settings = load_settings()
    if not settings.db_url.startswith("sqlite:///"):
        return None
    path = settings.db_url.removeprefix("sqlite:///")
    if os.path.exists(path):
        return None
    return (
        f"no sessions yet: no store at {path} (AGENT_TASKS_HOME={settings.home}); "
        "a first run creates it: agent-tasks run REPO --task TEXT"
    )


def cli_store(refresh: bool = False) -> Store:
    """The configured store, never created by reading it (NoStore); with refresh, sessions that ended outside
    their flow are settled first, asking the Prefect server of `agent-tasks up` when it runs."""
    from tasks_lib.store import open_store

    problem = missing_store()
    if problem:
        raise NoStore(problem)
    store = open_store()
    if refresh:
        from tasks_lib.ops.prefect_api import find_local_api
        from tasks_lib.session.reconcile import refresh as settle

        settle(store, ask_prefect=bool(find_local_api()))
    return store


def find_session(store: Store, prefix: str) -> SessionRow:
    """The session an id or a unique prefix of one names. CliError when none does (the store's words), or when the
    prefix names several: then the line lists them (id, status, age) and asks for more of the id."""
    from tasks_lib.store import SessionNotFound

    try:
        return store.get_session(prefix)
    except SessionNotFound as exc:
        matches = session_candidates(store, prefix) if prefix else []
        if len(matches) < 2:
            raise CliError(str(exc)) from None
    width = distinct_width([row.id for row in matches])
    listed = ", ".join(f"{row.id[:width]} ({row.status}, {age(row.created_at)})" for row in matches[:AMBIGUOUS_SHOWN])
    more = f" and {len(matches) - AMBIGUOUS_SHOWN} more" if len(matches) > AMBIGUOUS_SHOWN else ""
    raise CliError(f"{prefix!r} matches {len(matches)} sessions: {listed}{more}; give more of the id")


def session_candidates(store: Store, prefix: str, page: int = 500) -> list[SessionRow]:
    """Every session whose id starts with ``prefix``, newest first (read a page of sessions at a time)."""
    found: list[SessionRow] = []
    offset = 0
    while True:
        rows = store.list_sessions(limit=page, offset=offset)
        found += [row for row in rows if row.id.startswith(prefix)]
        if len(rows) < page:
            return found
        offset += page


def distinct_width(ids: list[str], least: int = 8) -> int:
    """How many leading characters tell these ids apart (at least ``least``, at most the longest id)."""
    longest = max((len(i) for i in ids), default=least)
    for width in range(least, longest + 1):
        if len({i[:width] for i in ids}) == len(set(ids)):
            return width
    return longest
