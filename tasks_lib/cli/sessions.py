"""`agent-tasks inbox|show|usage`: read the stored sessions and print them (one session, a list, the usage totals)."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING

import typer
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from tasks_lib.cli.common import CliError, NoStore, age, cli_store, find_session, out, wide
from tasks_lib.domain.words import counted, literal_names, status_line
from tasks_lib.session.data import session_json, session_line, ui_url

if TYPE_CHECKING:
    from tasks_lib.store import Store


def print_session(session_id: str, summary: bool) -> None:
    """Print one session: status, branch, trigger, usage, check, attempts, diffstat; with summary, its summary too."""
    store = cli_store()
    row = store.get_session(session_id)
    out.print(Text.assemble(("session", "bold"), f" {row.id}"))
    out.print(f"status   {status_line(row.status, row.status_reason)}")
    if row.work_branch:
        out.print(f"branch   {row.work_branch} (from {row.branch}@{(row.base_commit or '')[:10]})")
    if row.workspace:
        out.print(f"workspace {row.workspace}")
    trigger = (row.request or {}).get("trigger")
    if trigger:
        from tasks_lib.domain.request import trigger_line

        out.print(f"started  by {trigger_line(trigger)}" + (f" (workflow {row.workflow})" if row.workflow else ""))
    if row.delivered_to:
        out.print(f"delivered {row.delivered_commit[:10] if row.delivered_commit else ''} → {row.delivered_to}")
    if row.iteration > 1:
        out.print(f"iteration {row.iteration} ({counted(row.change_rounds, 'change round')})")
    cost = f"${row.cost_usd:.4f}" if row.cost_usd is not None else "cost unknown"
    out.print(
        f"usage    {counted(row.steps_used, 'step')}, {row.prompt_tokens:,} prompt + {row.completion_tokens:,} completion tokens"
        f" ({row.cached_tokens} cached), {cost}"
    )
    checks = store.checks(session_id)
    if checks:
        last = checks[-1]
        out.print(
            f"check    {last.command}: {'passed' if last.passed else f'failed (exit {last.exit_code})'}"
            f" in {last.duration_s:.1f}s"
        )
    found = row.candidates or {}
    if found.get("iteration") == row.iteration:
        out.print(
            f"attempts {len(found['ranked'])}, ranked (attempt {found['chosen']} is in the workspace; "
            "accept another with --candidate N):"
        )
        for c in found["ranked"]:
            out.print(f"  #{c['rank']} attempt {c['attempt']}: {c['why']}")
    if summary:
        summary_row = store.latest_summary(session_id)
        if summary_row:
            out.print(Markdown(literal_names(summary_row.markdown)))
    diff = store.latest_diff(session_id, with_patch=False)
    if diff is not None:
        out.print(f"diffstat {counted(len(diff.files), 'file')} changed, +{diff.added} -{diff.removed}")
        for f in diff.files:
            out.print(f"  {f['kind']:<9} {f['path']}  +{f['added']} -{f['removed']}")
    from tasks_lib.cli.getting_out import getting_out_hint

    hint = getting_out_hint(row)
    if hint:
        out.print(Text(hint, style="yellow"))


def print_log(store: Store, session_id: str) -> None:
    """Print every step of a session by iteration: the model's text, each tool call and its (cut) result, errors."""
    iteration = 0
    for step in store.steps(session_id):
        if step.iteration != iteration:
            iteration = step.iteration
            out.print(Text(f"iteration {iteration}", style="bold underline"))
        usage = f"{step.prompt_tokens}+{step.completion_tokens} tok, {step.duration_s:.2f}s"
        out.print(Text.assemble((f"step {step.index}", "bold"), " ", (f"{step.started_at:%H:%M:%S} {usage}", "dim")))
        if step.text:
            out.print(Text(f"  {step.text}", style="italic"))
        for call in step.tool_calls:
            args = json.dumps(call.arguments) if not isinstance(call.arguments, str) else call.arguments
            out.print(f"  → {call.name} {args[:500]}")
            mark = "  ✓ " if call.ok else "  ✗ "
            result = call.result if len(call.result) < 2000 else call.result[:2000] + " [...]"
            out.print(mark + result.replace("\n", "\n    "))
        if step.error:
            out.print(Text(f"  error: {step.error}", style="red"))


def inbox(
    status: str | None = typer.Option(None, "--status", help="Only sessions with this status (e.g. awaiting_review)."),
    reviewer: str | None = typer.Option(None, "--reviewer", help="Only sessions assigned to this reviewer."),
    repo: str | None = typer.Option(None, "--repo", help="Only repositories whose address contains this text."),
    limit: int = typer.Option(30, "--limit", "-n", help="How many sessions to list."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List sessions: what runs, what waits for review, what ended."""
    from tasks_lib.domain.session import SessionStatus

    if status is not None and status not in {s.value for s in SessionStatus}:
        raise CliError(f"unknown status {status!r}; statuses: {', '.join(s.value for s in SessionStatus)}")
    try:
        store = cli_store(refresh=True)
    except NoStore as exc:
        if as_json:
            out.print_json(data=[])
        else:
            out.print(str(exc))
        return
    rows = store.list_sessions(limit=limit, status=status, reviewer=reviewer, repository=repo)
    if as_json:
        out.print_json(data=[session_line(r) for r in rows])
        return
    if not rows:
        out.print("no sessions")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("id", "status", "agent", "repo@branch", "reviewer", "iter", "+/-", "cost", "age", "prefect"):
        table.add_column(col, overflow="fold")
    for r in rows:
        name = os.path.basename(r.repository.rstrip("/")) or r.repository
        cost = f"${r.cost_usd:.4f}" if r.cost_usd is not None else "-"
        table.add_row(
            r.id[:8],
            r.status,
            r.agent,
            f"{name}@{r.branch or '?'}",
            r.reviewer or "-",
            str(r.iteration),
            f"+{r.lines_added} -{r.lines_removed}",
            cost,
            age(r.created_at),
            ui_url(r.flow_run_id),
        )
    wide.print(table)


def show(
    session_id: str = typer.Argument(..., help="Session id or a unique prefix of it."),
    diff: bool = typer.Option(False, "--diff", help="Print the full diff."),
    log: bool = typer.Option(False, "--log", help="Print every step: reasoning, tool calls and results."),
    as_json: bool = typer.Option(False, "--json", help="Print the session as JSON."),
    side_by_side: bool = typer.Option(False, "--side-by-side", "-s", help="Print the diff in two columns."),
    html_file: str | None = typer.Option(None, "--html", help="Write a self-contained review page to this file."),
) -> None:
    """Show one session: status, summary, diffstat, and optionally the diff and the step log."""
    store = cli_store(refresh=True)
    row = find_session(store, session_id)
    if as_json:
        out.print_json(data=session_json(store, row), indent=2)
        return
    if html_file:
        from tasks_lib.review.render import review_page

        with open(html_file, "w", encoding="utf-8") as handle:
            handle.write(review_page(session_json(store, row)))
        out.print(f"wrote {html_file}")
        return
    print_session(row.id, summary=not (diff or log or side_by_side))
    if side_by_side:
        from tasks_lib.review.render import render_terminal
        from tasks_lib.review.render import side_by_side as sbs

        d = store.latest_diff(row.id)
        render_terminal(sbs(d.patch) if d else [], out)
    if log:
        print_log(store, row.id)
    if diff:
        d = store.latest_diff(row.id)
        sys.stdout.write((d.patch.decode("utf-8", errors="replace") if d else "") or "(no changes)\n")


def usage(
    by: str = typer.Option("agent", "--by", help="Group by agent, workflow or day."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Tokens and cost summed over sessions, by agent, workflow or day."""
    from tasks_lib.store import usage_by

    if by not in ("agent", "workflow", "day"):
        raise CliError(f"--by must be agent, workflow or day, not {by!r}")
    groups = usage_by(cli_store(), by)
    if as_json:
        out.print_json(data=groups)
        return
    table = Table(box=None, pad_edge=False)
    for col in (by, "sessions", "steps", "prompt", "completion", "cached", "cost"):
        table.add_column(col, justify="left" if col == by else "right")
    for g in groups:
        cost = "-" if g["cost_usd"] is None else f"${g['cost_usd']:.4f}" + ("+" if g["unpriced_sessions"] else "")
        table.add_row(
            str(g["key"]),
            str(g["sessions"]),
            str(g["steps"]),
            str(g["prompt_tokens"]),
            str(g["completion_tokens"]),
            str(g["cached_tokens"]),
            cost,
        )
    wide.print(table)
    if any(g["unpriced_sessions"] for g in groups):
        out.print("+ some sessions used models without a known price: their cost is not included")
