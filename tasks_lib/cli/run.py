"""`agent-tasks run`: check a task request, run the agent-task flow here and show its steps as they happen."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import typer
from rich.text import Text

from tasks_lib.cli.background import (
    announce_to,
    background_argv,
    noted,
    review_pages_link,
    start_in_background,
)
from tasks_lib.cli.common import CliError, cli_store, err, out
from tasks_lib.cli.review import prompt_review
from tasks_lib.cli.sessions import print_session
from tasks_lib.cli.spinner import Spinner
from tasks_lib.domain.words import plain, status_line


def progress_view(spinner: Spinner):
    """Progress listener: one dim line per agent step, a spinner line for what runs now; at a review pause the
    session, how to decide, and (in a terminal) the prompt."""

    def show(event: str, data: dict[str, Any]) -> None:
        if event == "session":
            spinner.say(f"session {data['session_id'][:8]}: starting")
        elif event == "phase":
            spinner.phase(data["name"])
        elif event == "step":
            from tasks_lib.steps.agent_loop import describe_step

            attempt = f"attempt {data['step'].attempt}: " if data["step"].attempt else ""
            err.print(Text(attempt + describe_step(data["step"], data["max_steps"]), style="dim"))
            spinner.say(f"the agent is working: step {data['step'].index + 1}, asking the model")
        elif event == "awaiting_review":
            spinner.stop()
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
            link = review_pages_link(data["session_id"])
            if link:
                err.print(Text.assemble("review page: ", (link, "underline")))
            if sys.stdin.isatty():
                threading.Thread(target=prompt_review, args=(data["session_id"],), daemon=True).start()
            else:
                spinner.say("waiting for a decision")

    return show


def run(
    ctx: typer.Context,
    repo: str = typer.Argument(..., metavar="REPO", help="Repository: local path or git URL."),
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
    sandbox: str | None = typer.Option(None, "--sandbox", help="auto (default), bwrap, docker or none."),
    image: str | None = typer.Option(None, "--image", help="With --sandbox docker: the image commands run in."),
    network: str | None = typer.Option(
        None,
        "--network",
        help="off, allow (only --allow-host hosts, through the egress proxy) or on; --network alone is on, "
        "--no-network is off.",
    ),
    allow_host: list[str] = typer.Option(
        [],
        "--allow-host",
        metavar="HOST",
        help="With --network allow: a host, *.host, host:port or address (repeatable).",
    ),
    preset: list[str] = typer.Option(
        [],
        "--preset",
        metavar="NAME",
        help="With --network allow: the registries of python, node, debian, rust or go (repeatable).",
    ),
    env: list[str] = typer.Option(
        [], "--env", "-e", metavar="NAME", help="Pass this environment variable to the agent's commands (repeatable)."
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
    pool: str | None = typer.Option(
        None, "--pool", help="Send the task to this work pool's deployment (agent-tasks pool docker) and return."
    ),
    wait: bool = typer.Option(
        True,
        "--wait/--no-wait",
        help="With --no-wait: start the run in the background, print its session id and review link, and return.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print Prefect's own log lines."),
    announce_file: str | None = typer.Option(None, "--announce-file", hidden=True),  # set by --no-wait
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
            image=image,
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
    spinner = Spinner(err)
    spinner.say("checking the repository, the agent and the model")
    try:
        plan = preflight(request)
        starter = person_starting(reviewer)
    except BadRequest as exc:
        spinner.stop()
        raise CliError(str(exc)) from None
    except BaseException:
        spinner.stop()
        raise
    spinner.say("starting the run")  # on until the run says more: Prefect's import alone takes seconds

    from tasks_lib.ops.prefect_api import choose_api

    api_line = choose_api()
    if pool:
        from tasks_lib.cli.pool import run_on_pool

        spinner.stop()
        return run_on_pool(request.model_dump(mode="json", exclude_none=True), pool)
    if not wait:
        return run_in_background(spinner, given_arguments(ctx))
    if not verbose:
        # Steps are shown by our own listener and failures by one line at the end; Prefect's
        # console lines (tracebacks included) stay in the Prefect UI. --verbose shows them here too.
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from flows.agent_task import SessionFailed, agent_task
    from tasks_lib import progress

    show = progress_view(spinner)
    progress.subscribe(show)
    if announce_file:  # started by --no-wait: tell the starting command the session id
        progress.subscribe(announce_to(announce_file))
    if starter:
        progress.subscribe(credit_to(starter))
    err.print(Text.assemble("running agent ", (agent, "bold"), f" on {repo}" + (f"@{branch}" if branch else "")))
    err.print(Text(api_line, style="dim"))
    err.print(Text(f"sandbox: {plan.sandbox.describe()}", style="yellow" if plan.sandbox.kind == "none" else "dim"))
    err.print(Text(f"limits: {plan.sandbox.describe_limits()}", style="dim"))
    temporary = api_line.startswith("no Prefect server configured")
    spinner.say("starting a temporary Prefect server (agent-tasks up keeps one)" if temporary else "starting the run")
    try:
        result = agent_task(request)
    except SessionFailed as exc:
        spinner.stop()
        print_session(exc.session_id, summary=True)
        raise CliError(f"session {exc.session_id[:8]} failed: {exc.reason}") from None
    finally:
        spinner.stop()
        progress.unsubscribe(show)
    if review:
        row = cli_store().get_session(result.session_id)
        out.print(f"session {row.id} {status_line(row.status, row.status_reason)}")
    else:
        print_session(result.session_id, summary=True)


def person_starting(reviewer: str | None) -> str | None:
    """Who starts this run, when the store has people (their token says; without one this is a CliError); and the
    reviewer named must be one of them or a group. None in single-user mode."""
    from tasks_lib.cli.common import missing_store
    from tasks_lib.cli.users import cli_person
    from tasks_lib.store.people import check_reviewer

    if missing_store():
        return None
    store = cli_store()
    check_reviewer(store, reviewer)
    person = cli_person(store)
    return person.name if person else None


def credit_to(person: str):
    """A progress listener that records ``person`` as who started the session, once it has an id."""

    def listener(event: str, data: dict[str, Any]) -> None:
        if event == "session":
            from tasks_lib.store.people import set_started_by

            set_started_by(cli_store(), data["session_id"], person)

    return listener


def given_arguments(ctx: typer.Context) -> list[str]:
    """The arguments this `agent-tasks run` was given: those a caller that invokes the command hands it as the
    context's ``obj`` (`rules propose`, cli/rules.py), else those after `run` on the process's command line."""
    if isinstance(ctx.obj, list):
        return list(ctx.obj)
    return sys.argv[sys.argv.index("run") + 1 :] if "run" in sys.argv else []


def run_in_background(spinner: Spinner, argv: list[str]) -> None:
    """Start `agent-tasks run ARGV` (without --no-wait) in a process of its own and print its session id, log,
    review link and what to do next."""
    from tasks_lib.config import load_settings

    session_id, log = start_in_background(background_argv(argv), load_settings().home / "logs", spinner)
    short = session_id[:8]
    out.print(f"session {session_id} runs in the background (log: {noted(log)})")
    link = review_pages_link(session_id)
    if link:
        out.print(f"review page: {link}")
    out.print(f"follow it: agent-tasks show {short}; once it waits: agent-tasks review {short} accept|request-changes")
