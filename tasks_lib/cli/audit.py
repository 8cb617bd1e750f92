"""`agent-tasks audit`: who started which session, who decided what, which decisions were refused (who tried, how,
why) and who changed the people, oldest first."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import typer

from tasks_lib.cli.common import CliError, cli_store, out

UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION = re.compile(r"^(\d+(?:\.\d+)?)([mhdw])$")


def since_time(text: str, now: datetime | None = None) -> datetime:
    """The moment ``text`` names: a duration back from now (30m, 12h, 7d, 2w) or a date/time (2025-01-02,
    2025-01-02T10:00, UTC unless it says otherwise); CliError when it is neither."""
    now = now or datetime.now(timezone.utc)
    found = DURATION.match(text.strip())
    if found:
        return now - timedelta(seconds=float(found.group(1)) * UNITS[found.group(2)])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"--since {text!r}: give a duration (30m, 12h, 7d, 2w) or a date (2025-01-02)") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def audit(
    since: str | None = typer.Option(None, "--since", help="Only events after: a duration (7d, 12h) or a date."),
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON, one object per event (refused: true marks refusals)."
    ),
) -> None:
    """Sessions started (by whom), review decisions (who, how they were known, what, the commit), decisions refused
    (who tried or unknown, through the CLI, the page or the Prefect form, why) and changes to the people, oldest
    first."""
    from tasks_lib.store.queries import audit_events

    events = audit_events(cli_store(), since_time(since) if since else None)
    if as_json:
        print(json.dumps([e.model_dump(mode="json") for e in events], indent=2))
        return
    if not events:
        out.print("no events" + (f" since {since}" if since else ""))
    for event in events:
        out.print(event.line())
