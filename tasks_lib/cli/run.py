"""`agent-tasks run`: check a task request, run the agent-task flow here and show its steps as they happen."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import typer
from rich.text import Text

from tasks_lib.cli.common import CliError, cli_store, err, out
from tasks_lib.cli.review import prompt_review
from tasks_lib.cli.sessions import print_session
from tasks_lib.domain.words import plain, status_line


def show_step(event: str, data: dict[str, Any]) -> None:
    """Progress listener: one dim line per agent step; at a review pause the session, how to decide, and the prompt."""
    if event == "step":
        from tasks_lib.steps.agent_loop import describe_step

        attempt = f"attempt {data['step'].attempt}: " if data["step"].attempt else ""
        err.print(Text(attempt + describe_step(data["step"], data["max_steps"]), style="dim"))
    elif event == "awaiting_review":
        print_session(data["session_id"], summary=True)
        if data.get("notice"):
            err.print(Text(data["notice"], style="yellow"))
        sid = data["session_id"][:8]
        err.print(
            Text.assemble(
                ("waiting for review", "bold"),
                f" (iteration {data['iteration']}): "
                f"agent-tasks review {sid} accept|request-changes|reject|retry, or the Prefect UI",
            )
        )
        if sys.stdin.isatty():
            threading.Thread(target=prompt_review, args=(data["session_id"],), daemon=True).start()


def run(
    repo: str = typer.Argument(..., help="Repository: local path or git URL."),
    task: str = typer.Option(..., "--task", "-t", help="What the agent should do."),
    branch: str | None = typer.Option(
        None, "--branch", "-b", help="Branch to start from (default: the repository's default)."
    ),
    agent: str = typer.Option("default", "--agent", "-a", help="Built-in agent name or path to an agent file."),
    model: str | None = typer.Option(None, "--model", "-m", help="litellm model string, e.g. openai/gpt-4o."),
    reviewer: str | None = typer.Option(None, "--reviewer", "-r", help="Who reviews the result."),
    review: bool = typer.Option(True, "--review/--no-review", help="Wait for a review decision after the summary."),
    on_accept: str | None = typer.Option(None, "--on-accept", help="branch (default), merge or pull_request."),
    temperature: float | None = typer.Option(
        None, "--temperature", help="Sampling temperature (overrides the agent's)."
    ),
    sandbox: str | None = typer.Option(None, "--sandbox", help="auto (default), bwrap or none."),
    network: str | None = typer.Option(
        None,
        "--network",
        help="off, allow (only --allow-host hosts, through the egress proxy) or on; --network alone is on, "
        "--no-network is off.",
    ),
    allow_host: list[str] = typer.Option(
        [], "--allow-host", help="With --network allow: a host, *.host, host:port or address (repeatable)."
    ),
    preset: list[str] = typer.Option(
        [], "--preset", help="With --network allow: the registries of python, node, debian, rust or go (repeatable)."
    ),
    env: list[str] = typer.Option(
        [], "--env", "-e", help="Pass this environment variable to the agent's commands (repeatable)."
    ),
    setup: str | None = typer.Option(
        None, "--setup", help="Command run before the agent, reaching the package registries the repository uses."
    ),
    shadow_builtins: bool = typer.Option(
        False, "--shadow-builtins", help="Let a repository agent replace a built-in of the same name."
    ),
    attempts: int = typer.Option(
        1, "--attempts", help="Best-of-N: run this many attempts at once (1-8), ranked for review."
    ),
    stop_at_first_green: bool = typer.Option(
        False, "--stop-at-first-green", help="With --attempts: stop the others once one passes the agent's check."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print Prefect's own log lines."),
) -> None:
    """Run an agent task on a repository, print the summary and diffstat, then wait for the review.

    In a terminal you can decide right here; otherwise use `agent-tasks review ID ...` or the Prefect UI.
    """
    from pydantic import ValidationError

    from tasks_lib.domain.request import TaskRequest
    from tasks_lib.session.preflight import BadRequest, preflight

    try:
        request = TaskRequest(
            repository=repo,
            instructions=task,
            branch=branch,
            agent=agent,
            model=model,
            reviewer=reviewer,
            review=review,
            on_accept=on_accept,
            temperature=temperature,
            sandbox=sandbox,
            network=network or ("allow" if allow_host or preset else None),
            egress={"allow": allow_host, "presets": preset} if allow_host or preset else None,
            env=env,
            setup_command=setup,
            shadow_builtins=shadow_builtins,
            attempts=attempts,
            stop_at_first_green=stop_at_first_green,
        )
    except ValidationError as exc:
        field = exc.errors()[0]["loc"][0]
        raise CliError(
            "the task is empty: pass --task TEXT"
            if field == "instructions"
            else f"{field}: {plain(exc.errors()[0]['msg'])}"
        ) from None
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

    progress.subscribe(show_step)
    err.print(Text.assemble("running agent ", (agent, "bold"), f" on {repo}" + (f"@{branch}" if branch else "")))
    err.print(Text(api_line, style="dim"))
    err.print(Text(f"sandbox: {plan.sandbox.describe()}", style="yellow" if plan.sandbox.kind == "none" else "dim"))
    err.print(Text(f"limits: {plan.sandbox.describe_limits()}", style="dim"))
    try:
        result = agent_task(request)
    except SessionFailed as exc:
        print_session(exc.session_id, summary=True)
        raise CliError(f"session {exc.session_id[:8]} failed: {exc.reason}") from None
    finally:
        progress.unsubscribe(show_step)
    if review:
        row = cli_store().get_session(result.session_id)
        out.print(f"session {row.id} {status_line(row.status, row.status_reason)}")
    else:
        print_session(result.session_id, summary=True)
