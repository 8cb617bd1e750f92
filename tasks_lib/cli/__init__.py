"""The `agent-tasks` command line: run a task, the inbox, show and review sessions, usage, the local stack.

The agents and workflows command groups live in cli_agents and cli_workflows.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any, Optional

import typer
from rich.markdown import Markdown
from rich.text import Text
from rich.table import Table

import tasks_lib  # noqa: F401  (quiet defaults)
from tasks_lib.cli.agents import agents_app
from tasks_lib.cli.common import CliError, age, cli_store, err, out, wide
from tasks_lib.cli.eval import eval_command
from tasks_lib.cli.workflows import load_or_fail, workflows_app
from tasks_lib.session.data import session_json, session_line, ui_url

app = typer.Typer(
    help="Hand coding tasks to an LLM agent and review what it did (built on Prefect).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(agents_app, name="agents")
app.add_typer(workflows_app, name="workflows")
app.command("eval")(eval_command)


@app.command()
def run(
    repo: str = typer.Argument(..., help="Repository: local path or git URL."),
    task: str = typer.Option(..., "--task", "-t", help="What the agent should do."),
    branch: Optional[str] = typer.Option(None, "--branch", "-b", help="Branch to start from (default: the repository's default)."),
    agent: str = typer.Option("default", "--agent", "-a", help="Built-in agent name or path to an agent file."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="litellm model string, e.g. openai/gpt-4o."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", "-r", help="Who reviews the result."),
    review: bool = typer.Option(True, "--review/--no-review", help="Wait for a review decision after the summary."),
    on_accept: Optional[str] = typer.Option(None, "--on-accept", help="branch (default), merge or pull_request."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Sampling temperature (overrides the agent's)."),
    sandbox: Optional[str] = typer.Option(None, "--sandbox", help="auto (default), bwrap or none."),
    network: Optional[bool] = typer.Option(None, "--network/--no-network", help="Let the agent's commands use the network."),
    env: list[str] = typer.Option([], "--env", "-e", help="Pass this environment variable to the agent's commands (repeatable)."),
    setup: Optional[str] = typer.Option(None, "--setup", help="Command run before the agent, with the network on."),
    shadow_builtins: bool = typer.Option(False, "--shadow-builtins", help="Let a repository agent replace a built-in of the same name."),
    attempts: int = typer.Option(1, "--attempts", help="Best-of-N: run this many attempts at once (1-8), ranked for review."),
    stop_at_first_green: bool = typer.Option(False, "--stop-at-first-green",
                                             help="With --attempts: stop the others once one passes the agent's check."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print Prefect's own log lines."),
) -> None:
    """Run an agent task on a repository, print the summary and diffstat, then wait for the review.

    In a terminal you can decide right here; otherwise use `agent-tasks review ID ...` or the Prefect UI.
    """
    from pydantic import ValidationError

    from tasks_lib.domain.request import TaskRequest
    from tasks_lib.session.preflight import BadRequest, preflight

    try:
        request = TaskRequest(repository=repo, instructions=task, branch=branch, agent=agent, model=model,
                              reviewer=reviewer, review=review, on_accept=on_accept, temperature=temperature,
                              sandbox=sandbox, network=network,
                              env=env, setup_command=setup, shadow_builtins=shadow_builtins, attempts=attempts,
                              stop_at_first_green=stop_at_first_green)
    except ValidationError as exc:
        field = exc.errors()[0]["loc"][0]
        raise CliError("the task is empty: pass --task TEXT" if field == "instructions" else f"{field}: {exc.errors()[0]['msg']}") from None
    try:
        plan = preflight(request)
    except BadRequest as exc:
        raise CliError(str(exc)) from None

    from tasks_lib.ops.prefect_api import choose_api

    api_line = choose_api()
    if not verbose:
        # Steps are shown by our own listener and failures by one line at the end; Prefect's
        # console lines (tracebacks included) stay in the Prefect UI. --verbose shows them here too.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from flows.agent_task import SessionFailed, agent_task
    from tasks_lib import progress
    from tasks_lib.steps.agent_loop import describe_step

    def show_step(event: str, data: dict[str, Any]) -> None:
        if event == "step":
            attempt = f"attempt {data['step'].attempt}: " if data["step"].attempt else ""
            err.print(Text(attempt + describe_step(data["step"], data["max_steps"]), style="dim"))
        elif event == "awaiting_review":
            _print_session(data["session_id"], summary=True)
            if data.get("notice"):
                err.print(Text(data["notice"], style="yellow"))
            sid = data["session_id"][:8]
            err.print(Text.assemble(("waiting for review", "bold"), f" (iteration {data['iteration']}): "
                                    f"agent-tasks review {sid} accept|request-changes|reject|retry, or the Prefect UI"))
            if sys.stdin.isatty():
                threading.Thread(target=_prompt_review, args=(data["session_id"],), daemon=True).start()

    progress.subscribe(show_step)
    err.print(Text.assemble("running agent ", (agent, "bold"), f" on {repo}" + (f"@{branch}" if branch else "")))
    err.print(Text(api_line, style="dim"))
    err.print(Text(f"sandbox: {plan.sandbox.describe()}", style="yellow" if plan.sandbox.kind == "none" else "dim"))
    try:
        result = agent_task(request)
    except SessionFailed as exc:
        _print_session(exc.session_id, summary=True)
        raise CliError(f"session {exc.session_id[:8]} failed: {exc.reason}") from None
    finally:
        progress.unsubscribe(show_step)
    if review:
        row = cli_store().get_session(result.session_id)
        out.print(f"session {row.id} {row.status}: {row.status_reason}")
    else:
        _print_session(result.session_id, summary=True)


def _prompt_review(session_id: str) -> None:
    """Ask for a decision in this terminal and resume the waiting run with it."""
    choices = {"a": "accept", "c": "request_changes", "r": "reject", "t": "retry"}
    try:
        answer = input("decide: [a]ccept, request [c]hanges, [r]eject, re[t]ry, or Enter to wait: ").strip().lower()
        if answer not in choices:
            return
        decision = choices[answer]
        feedback = input("feedback: ") if decision in ("request_changes", "retry", "reject") else ""
        instructions = input("updated instructions: ") if decision == "retry" else ""
        _resume(session_id, decision, feedback, instructions)
    except (EOFError, CliError) as exc:
        err.print(f"not resumed: {exc}")


def _print_session(session_id: str, summary: bool) -> None:
    store = cli_store()
    row = store.get_session(session_id)
    out.print(Text.assemble(("session", "bold"), f" {row.id}"))
    out.print(f"status   {row.status}: {row.status_reason}")
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
        out.print(f"iteration {row.iteration} ({row.change_rounds} change rounds)")
    cost = f"${row.cost_usd:.4f}" if row.cost_usd is not None else "cost unknown"
    out.print(f"usage    {row.steps_used} steps, {row.prompt_tokens} prompt + {row.completion_tokens} completion tokens"
              f" ({row.cached_tokens} cached), {cost}")
    checks = store.checks(session_id)
    if checks:
        last = checks[-1]
        out.print(f"check    {last.command}: {'passed' if last.passed else f'failed (exit {last.exit_code})'}"
                  f" in {last.duration_s:.1f}s")
    found = row.candidates or {}
    if found.get("iteration") == row.iteration:
        out.print(f"attempts {len(found['ranked'])}, ranked (attempt {found['chosen']} is in the workspace; "
                  "accept another with --candidate N):")
        for c in found["ranked"]:
            out.print(f"  #{c['rank']} attempt {c['attempt']}: {c['why']}")
    if summary:
        summary_row = store.latest_summary(session_id)
        if summary_row:
            out.print(Markdown(summary_row.markdown))
    diff = store.latest_diff(session_id, with_patch=False)
    if diff is not None:
        out.print(f"diffstat {len(diff.files)} files changed, +{diff.added} -{diff.removed}")
        for f in diff.files:
            out.print(f"  {f['kind']:<9} {f['path']}  +{f['added']} -{f['removed']}")


@app.command()
def inbox(
    status: Optional[str] = typer.Option(None, "--status", help="Only sessions with this status (e.g. awaiting_review)."),
    reviewer: Optional[str] = typer.Option(None, "--reviewer", help="Only sessions assigned to this reviewer."),
    repo: Optional[str] = typer.Option(None, "--repo", help="Only repositories whose address contains this text."),
    limit: int = typer.Option(30, "--limit", "-n", help="How many sessions to list."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List sessions: what runs, what waits for review, what ended."""
    from tasks_lib.domain.session import SessionStatus

    if status is not None and status not in {s.value for s in SessionStatus}:
        raise CliError(f"unknown status {status!r}; statuses: {', '.join(s.value for s in SessionStatus)}")
    store = cli_store(refresh=True)
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
        table.add_row(r.id[:8], r.status, r.agent, f"{name}@{r.branch or '?'}", r.reviewer or "-", str(r.iteration),
                      f"+{r.lines_added} -{r.lines_removed}", cost, age(r.created_at), ui_url(r.flow_run_id))
    wide.print(table)


def _resume(session_id: str, decision: str, feedback: str, instructions: str,
            comments: list[str] | None = None, candidate: int | None = None) -> None:
    """Resume a session's paused flow run with a decision; CliError if it is not waiting or the input is refused."""
    from tasks_lib.review.resume import ResumeRefused, decision_payload, resume_review
    from tasks_lib.review.comments import CommentError, parse_comment

    store = cli_store(refresh=True)
    try:
        parsed = [parse_comment(text) for text in comments or []]
        payload = decision_payload(store, session_id, decision, feedback, instructions, parsed, candidate)
        resume_review(store, session_id, payload)
    except (ResumeRefused, CommentError) as exc:
        raise CliError(str(exc)) from None


DECISION_NAMES = {"accept": "accept", "request-changes": "request_changes", "request_changes": "request_changes",
                  "reject": "reject", "retry": "retry"}


@app.command()
def review(
    session_id: str = typer.Argument(..., help="Session id or a unique prefix of it."),
    decision: str = typer.Argument(..., help="accept | request-changes | reject | retry"),
    feedback: str = typer.Option("", "--feedback", "-f", help="What to change, or notes."),
    instructions: str = typer.Option("", "--instructions", "-i", help="Updated instructions (retry)."),
    comment: list[str] = typer.Option([], "--comment", "-c",
                                      help='A comment on a line of the change: FILE:LINE="text" (repeatable).'),
    candidate: Optional[int] = typer.Option(None, "--candidate", help="Best-of-N: the attempt to accept (default: the first)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the session has acted on the decision."),
    wait_timeout: float = typer.Option(3600, "--timeout", help="Seconds to wait with --wait."),
) -> None:
    """Decide on a session waiting for review; the paused run resumes with this input."""
    from tasks_lib.session.reconcile import end_orphans
    from tasks_lib.store import SessionNotFound

    if decision not in DECISION_NAMES:
        raise CliError(f"unknown decision {decision!r}; use accept, request-changes, reject or retry")
    from tasks_lib.ops.prefect_api import choose_api

    choose_api()  # a run started against `agent-tasks up` is resumed there
    store = cli_store()
    try:
        row = store.get_session(session_id)
    except SessionNotFound as exc:
        raise CliError(str(exc)) from None
    key = row.review_key
    _resume(row.id, DECISION_NAMES[decision], feedback, instructions, comment, candidate)
    out.print(f"session {row.id[:8]}: {decision} sent")
    if not wait:
        return
    deadline = time.monotonic() + wait_timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        end_orphans(store, row.id)  # the run's process may die while acting on the decision
        now = store.get_session(row.id)
        waiting_again = now.status == "awaiting_review" and now.review_key != key
        if now.status not in ("awaiting_review", "running", "delivering") or waiting_again:
            out.print(f"session {now.id[:8]} {now.status}: {now.status_reason}")
            return
    raise CliError(f"session {row.id[:8]} is still working after {wait_timeout:.0f}s; see agent-tasks show {row.id[:8]}")


@app.command()
def show(
    session_id: str = typer.Argument(..., help="Session id or a unique prefix of it."),
    diff: bool = typer.Option(False, "--diff", help="Print the full diff."),
    log: bool = typer.Option(False, "--log", help="Print every step: reasoning, tool calls and results."),
    as_json: bool = typer.Option(False, "--json", help="Print the session as JSON."),
    side_by_side: bool = typer.Option(False, "--side-by-side", "-s", help="Print the diff in two columns."),
    html_file: Optional[str] = typer.Option(None, "--html", help="Write a self-contained review page to this file."),
) -> None:
    """Show one session: status, summary, diffstat, and optionally the diff and the step log."""
    from tasks_lib.store import SessionNotFound

    store = cli_store(refresh=True)
    try:
        row = store.get_session(session_id)
    except SessionNotFound as exc:
        raise CliError(str(exc)) from None
    if as_json:
        out.print_json(data=session_json(store, row), indent=2)
        return
    if html_file:
        from tasks_lib.review.render import review_page

        with open(html_file, "w", encoding="utf-8") as handle:
            handle.write(review_page(session_json(store, row)))
        out.print(f"wrote {html_file}")
        return
    _print_session(row.id, summary=not (diff or log or side_by_side))
    if side_by_side:
        from tasks_lib.review.render import render_terminal, side_by_side as sbs

        d = store.latest_diff(row.id)
        render_terminal(sbs(d.patch) if d else [], out)
    if log:
        _print_log(store, row.id)
    if diff:
        d = store.latest_diff(row.id)
        sys.stdout.write((d.patch.decode("utf-8", errors="replace") if d else "") or "(no changes)\n")


def _print_log(store, session_id: str) -> None:
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


@app.command()
def usage(
    by: str = typer.Option("agent", "--by", help="Group by agent, workflow or day."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Tokens and cost summed over sessions, by agent, workflow or day."""
    if by not in ("agent", "workflow", "day"):
        raise CliError(f"--by must be agent, workflow or day, not {by!r}")
    groups = cli_store().usage_by(by)
    if as_json:
        out.print_json(data=groups)
        return
    table = Table(box=None, pad_edge=False)
    for col in (by, "sessions", "steps", "prompt", "completion", "cached", "cost"):
        table.add_column(col, justify="left" if col == by else "right")
    for g in groups:
        cost = "-" if g["cost_usd"] is None else f"${g['cost_usd']:.4f}" + ("+" if g["unpriced_sessions"] else "")
        table.add_row(str(g["key"]), str(g["sessions"]), str(g["steps"]), str(g["prompt_tokens"]),
                      str(g["completion_tokens"]), str(g["cached_tokens"]), cost)
    wide.print(table)
    if any(g["unpriced_sessions"] for g in groups):
        out.print("+ some sessions used models without a known price: their cost is not included")


@app.command()
def gc(
    older_than: float = typer.Option(14, "--older-than", help="Remove workspaces of sessions that ended more than this many days ago."),
    deliveries: float = typer.Option(30, "--deliveries", help="Forget webhook deliveries older than this many days."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed."),
) -> None:
    """Remove what ended sessions leave on this machine and tidy the repository mirrors (the store keeps the record)."""
    from tasks_lib.session.gc import collect
    from tasks_lib.config import load_settings

    report = collect(cli_store(refresh=True), load_settings(), older_than, deliveries, dry_run)
    if dry_run:
        out.print(f"would remove {len(report.workspaces_removed)} workspaces ({report.bytes_freed / 1e6:.1f} MB)")
        return
    for line in report.lines():
        out.print(line)


@app.command()
def up(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(4200, "--port", help="Prefect server and UI port."),
    relay_port: int = typer.Option(8765, "--relay-port", help="Webhook relay port."),
    review_port: int = typer.Option(8766, "--review-port", help="Review pages port (inbox at /sessions)."),
) -> None:
    """Start the local stack: Prefect server with its UI, the workflows served, the webhook relay and the
    review pages.

    Ctrl-C stops everything.
    """
    from tasks_lib.environments import sandbox_status
    from tasks_lib.config import SettingsError, load_settings
    from tasks_lib.ops.stack import Stack, StackError

    try:
        sandbox = sandbox_status(load_settings().sandbox)  # type: ignore[arg-type]
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    stack = Stack(host, port, relay_port, review_port)
    try:
        stack.start(err)
        out.print(f"Prefect UI     http://{host}:{port}")
        out.print(f"Prefect API    {stack.api_url}")
        out.print(f"Webhook relay  http://{host}:{relay_port}/webhooks/github  (and /webhooks/<name>)")
        out.print(f"Review pages   http://{host}:{review_port}/sessions")
        out.print(f"Workflows      {', '.join(w.name for w in load_or_fail())}")
        out.print(f"Sandbox        {sandbox}")
        out.print("Ctrl-C to stop.")
        stack.wait()
    except StackError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        err.print("stopping…")
    finally:
        stack.stop()
    err.print("stopped")


def main() -> None:
    """Entry point: run the app; known errors become one line on stderr and exit code 1."""
    try:
        app()
    except CliError as exc:
        err.print(f"error: {exc}")
        sys.exit(1)
    except Exception as exc:  # store and server failures: one readable line instead of a traceback
        from tasks_lib.ops.prefect_api import ephemeral_failure
        from tasks_lib.config import SettingsError
        from tasks_lib.store import StoreError

        if ephemeral_failure(exc):
            err.print(f"error: {ephemeral_failure(exc)}")
            sys.exit(1)
        if isinstance(exc, (StoreError, SettingsError)):
            err.print(f"error: {exc}")
            sys.exit(1)
        if type(exc).__module__.startswith(("sqlalchemy", "httpx", "prefect")):
            first = str(exc).splitlines()[0] if str(exc) else ""
            err.print(f"error: {type(exc).__name__}: {first}")
            sys.exit(1)
        raise
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
