"""`agent-tasks config`: the settings in force, where each came from, and what each does (secrets masked)."""

from __future__ import annotations

import json

import typer

from tasks_lib.cli.common import CliError, wide


def config(as_json: bool = typer.Option(False, "--json", help="Print the settings as JSON.")) -> None:
    """Show every AGENT_TASKS_* setting: its value in force (secrets masked), where it came from, what it does."""
    from rich.table import Table

    from tasks_lib.config import SettingsError, settings_in_force

    try:
        lines = settings_in_force()
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    if as_json:
        print(json.dumps([line.model_dump() for line in lines], indent=2))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("VARIABLE", "VALUE", "FROM", "WHAT IT DOES"):
        table.add_column(column, overflow="fold")
    for line in lines:
        table.add_row(line.variable, line.value or "-", line.source, line.description)
    wide.print(table)
