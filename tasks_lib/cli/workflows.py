"""`agent-tasks workflows list|render|check`: the workflows and the prefect.yaml made from them."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from tasks_lib.cli.common import CliError, cli_store, missing_store, out, wide

if TYPE_CHECKING:
    from deployments.workflows import Workflow
    from tasks_lib.store import Store

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


def reviewer_problems(workflows: list[Workflow], store: Store) -> list[str]:
    """One line per workflow whose ``reviewer:`` is neither a person nor a group of the store (team mode only)."""
    from tasks_lib.domain.people import PeopleError
    from tasks_lib.store.people import check_reviewer

    problems = []
    for workflow in workflows:
        reviewer = workflow.request.get("reviewer")
        if not isinstance(reviewer, str) or "{{" in reviewer:  # a template is filled in per run
            continue
        try:
            check_reviewer(store, reviewer)
        except PeopleError as exc:
            problems.append(f"workflow {workflow.name}: {exc}")
    return problems


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
    workflows = load_or_fail()
    if current != render_prefect_yaml(workflows):
        raise CliError(f"{file} is out of date with the workflows; run: agent-tasks workflows render -o {file}")
    if missing_store() is None:  # a team's store: each reviewer must be one of its people or groups
        problems = reviewer_problems(workflows, cli_store())
        if problems:
            raise CliError("; ".join(problems))
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
