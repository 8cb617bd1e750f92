"""The `agent-tasks` command line: run a task, list sessions (inbox), show one session."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

import tasks_lib  # noqa: F401  (quiet defaults)

app = typer.Typer(
    help="Hand coding tasks to an LLM agent and review what it did (built on Prefect).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class CliError(Exception):
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


def _store():
    from tasks_lib.store import open_store

    return open_store()


@app.command()
def run(
    repo: str = typer.Argument(..., help="Repository: local path or git URL."),
    task: str = typer.Option(..., "--task", "-t", help="What the agent should do."),
    branch: Optional[str] = typer.Option(None, "--branch", "-b", help="Branch to start from (default: the repository's default)."),
    agent: str = typer.Option("default", "--agent", "-a", help="Built-in agent name or path to an agent file."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="litellm model string, e.g. openai/gpt-4o."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", "-r", help="Who reviews the result."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print Prefect's own log lines."),
) -> None:
    """Run an agent task on a repository and print the session's summary and diffstat."""
    from pydantic import ValidationError

    from tasks_lib.models import TaskRequest
    from tasks_lib.preflight import BadRequest, preflight

    try:
        request = TaskRequest(repository=repo, instructions=task, branch=branch, agent=agent, model=model, reviewer=reviewer)
    except ValidationError as exc:
        field = exc.errors()[0]["loc"][0]
        raise CliError("the task is empty: pass --task TEXT" if field == "instructions" else f"{field}: {exc.errors()[0]['msg']}") from None
    try:
        preflight(request)
    except BadRequest as exc:
        raise CliError(str(exc)) from None

    if not verbose:
        # Steps are shown by our own listener and failures by one line at the end; Prefect's
        # console lines (tracebacks included) stay in the Prefect UI. --verbose shows them here too.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from flows.agent_task import SessionFailed, agent_task
    from tasks_lib import progress
    from tasks_lib.run_agent import describe_step

    def show_step(event: str, data: dict[str, Any]) -> None:
        if event == "step":
            err.print(f"[dim]{describe_step(data['step'], data['max_steps'])}[/dim]")

    progress.subscribe(show_step)
    err.print(f"running agent [bold]{agent}[/bold] on {repo}" + (f"@{branch}" if branch else ""))
    try:
        result = agent_task(request)
    except SessionFailed as exc:
        _print_session(exc.session_id, summary=True)
        raise CliError(f"session {exc.session_id[:8]} failed: {exc.reason}") from None
    finally:
        progress.unsubscribe(show_step)
    _print_session(result.session_id, summary=True)


def _print_session(session_id: str, summary: bool) -> None:
    store = _store()
    row = store.get_session(session_id)
    out.print(f"[bold]session[/bold] {row.id}")
    out.print(f"status   {row.status}: {row.status_reason}")
    if row.work_branch:
        out.print(f"branch   {row.work_branch} (from {row.branch}@{(row.base_commit or '')[:10]})")
    if row.workspace:
        out.print(f"workspace {row.workspace}")
    if summary:
        summary_row = store.latest_summary(session_id)
        if summary_row:
            out.print(Markdown(summary_row.markdown))
    diff = store.latest_diff(session_id)
    if diff is not None:
        out.print(f"diffstat {len(diff.files)} files changed, +{diff.added} -{diff.removed}")
        for f in diff.files:
            out.print(f"  {f['kind']:<9} {f['path']}  +{f['added']} -{f['removed']}")


@app.command()
def inbox(
    limit: int = typer.Option(30, "--limit", "-n", help="How many sessions to list."),
    status: Optional[str] = typer.Option(None, "--status", help="Only sessions with this status."),
) -> None:
    """List sessions: what runs, what ended, with their diff size."""
    rows = _store().list_sessions(limit=limit, status=status)
    if not rows:
        out.print("no sessions")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("id", "status", "agent", "repo@branch", "+/-", "age"):
        table.add_column(col)
    for r in rows:
        repo = os.path.basename(r.repository.rstrip("/")) or r.repository
        table.add_row(
            r.id[:8], r.status, r.agent, f"{repo}@{r.branch or '?'}", f"+{r.lines_added} -{r.lines_removed}", age(r.created_at)
        )
    out.print(table)


@app.command()
def show(
    session_id: str = typer.Argument(..., help="Session id or a unique prefix of it."),
    diff: bool = typer.Option(False, "--diff", help="Print the full diff."),
    log: bool = typer.Option(False, "--log", help="Print every step: reasoning, tool calls and results."),
    as_json: bool = typer.Option(False, "--json", help="Print the session as JSON."),
) -> None:
    """Show one session: status, summary, diffstat, and optionally the diff and the step log."""
    from tasks_lib.store import SessionNotFound

    store = _store()
    try:
        row = store.get_session(session_id)
    except SessionNotFound as exc:
        raise CliError(str(exc)) from None
    if as_json:
        out.print_json(data=session_json(store, row), indent=2)
        return
    _print_session(row.id, summary=not (diff or log))
    if log:
        _print_log(store, row.id)
    if diff:
        d = store.latest_diff(row.id)
        sys.stdout.write((d.patch.decode("utf-8", errors="replace") if d else "") or "(no changes)\n")


def _print_log(store, session_id: str) -> None:
    for step in store.steps(session_id):
        usage = f"{step.prompt_tokens}+{step.completion_tokens} tok, {step.duration_s:.2f}s"
        out.print(f"[bold]step {step.index}[/bold] [dim]{step.started_at:%H:%M:%S} {usage}[/dim]")
        if step.text:
            out.print(f"  [italic]{step.text}[/italic]", markup=False)
        for call in step.tool_calls:
            args = json.dumps(call.arguments) if not isinstance(call.arguments, str) else call.arguments
            out.print(f"  → {call.name} {args[:500]}", markup=False)
            mark = "  ✓ " if call.ok else "  ✗ "
            result = call.result if len(call.result) < 2000 else call.result[:2000] + " [...]"
            out.print(mark + result.replace("\n", "\n    "), markup=False)
        if step.error:
            out.print(f"  [red]error: {step.error}[/red]")


def session_json(store, row) -> dict[str, Any]:
    """Everything about a session as JSON-ready data."""
    columns = {c.name: getattr(row, c.name) for c in row.__table__.columns}
    data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in columns.items()}
    d = store.latest_diff(row.id)
    s = store.latest_summary(row.id)
    data["diff"] = None if d is None else {
        "base_commit": d.base_commit, "files": d.files, "added": d.added, "removed": d.removed,
        "patch": d.patch.decode("utf-8", errors="replace"),
    }
    data["summary"] = None if s is None else {"markdown": s.markdown, "facts": s.facts}
    data["steps"] = [step.model_dump(mode="json") for step in store.steps(row.id)]
    return data


def main() -> None:
    """Entry point: run the app; known errors become one line on stderr and exit code 1."""
    try:
        app()
    except CliError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
