"""`agent-tasks workflows list|render|check`: the workflows and the prefect.yaml made from them."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from tasks_lib.cli.common import CliError, out, wide

if TYPE_CHECKING:
    from deployments.workflows import Workflow

workflows_app = typer.Typer(
    help="Workflows: agents on schedules and events (deployments/workflows.yaml).", no_args_is_help=True
)


def load_or_fail() -> list[Workflow]:
    """The workflows, or a CliError saying what is wrong with their file."""
    from deployments.workflows import WorkflowError, load_workflows

    try:
        return load_workflows()
    except WorkflowError as exc:
        raise CliError(str(exc)) from None


@workflows_app.command("list")
def workflows_list() -> None:
    """The workflows, with their agent and what starts them."""
    table = Table(box=None, pad_edge=False)
    for col in ("name", "agent", "starts on", "description"):
        table.add_column(col)
    for w in load_or_fail():
        if w.trigger:
            starts = f"event {w.trigger.event}" + "".join(f" [{k}={v}]" for k, v in w.trigger.match.items())
        elif w.schedule:
            s = w.schedule
            starts = (f"cron {s.cron}" if s.cron else f"every {s.interval}s" if s.interval else f"rrule {s.rrule}") + (
                "" if s.active else " (inactive)"
            )
        else:
            starts = "manual"
        table.add_row(w.name, w.agent, escape(starts), escape(w.description))
    wide.print(table)


@workflows_app.command("render")
def workflows_render(
    output: str | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
) -> None:
    """Print (or write) the prefect.yaml made from the workflows."""
    from deployments.workflows import render_prefect_yaml

    text = render_prefect_yaml(load_or_fail())
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
        out.print(f"wrote {output}")
    else:
        sys.stdout.write(text)


@workflows_app.command("check")
def workflows_check(file: str = typer.Option("prefect.yaml", "--file", help="The prefect.yaml to compare.")) -> None:
    """Fail when prefect.yaml differs from what the workflows make (they must never drift apart)."""
    from deployments.workflows import render_prefect_yaml

    try:
        current = open(file, encoding="utf-8").read()
    except OSError as exc:
        raise CliError(f"{file}: {exc.strerror}") from None
    if current != render_prefect_yaml(load_or_fail()):
        raise CliError(f"{file} is out of date with the workflows; run: agent-tasks workflows render -o {file}")
    out.print(f"{file} matches the workflows")


@workflows_app.command("notify")
def workflows_notify() -> None:
    """Make the Prefect server's notification automations match the workflows file's notify: entries.

    `agent-tasks up` does this when it starts; run it after `prefect deploy` when workers run the workflows.
    """
    from deployments.notify import notify_targets, sync_notifications
    from deployments.workflows import load_global_notify
    from tasks_lib.ops.prefect_api import choose_api

    workflows = load_or_fail()
    choose_api()
    report = sync_notifications(notify_targets(load_global_notify(), workflows))
    out.print(report.line())
    for name in report.skipped:
        out.print(f"  skipped (its url_env is not set): {escape(name)}")
