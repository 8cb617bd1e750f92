"""`agent-tasks review`: send a decision to a session waiting for review and resume its paused run.

When the store has people, the decision is sent as the person of this CLI's token (AGENT_TASKS_TOKEN or
`agent-tasks login`), and only if they may decide on the session; without a valid token nothing is sent.
"""

from __future__ import annotations

import time

import typer

from tasks_lib.cli.common import CliError, cli_store, err, find_session, out
from tasks_lib.cli.spinner import Spinner
from tasks_lib.domain.words import status_line

# What a session does with a decision it was sent, as the spinner says it.
AFTER_DECISION = {
    "awaiting_review": "waiting for the run to take the decision",
    "running": "the agent is working on it",
    "delivering": "delivering the change",
}
DECISION_NAMES = {
    "accept": "accept",
    "request-changes": "request_changes",
    "request_changes": "request_changes",
    "reject": "reject",
    "retry": "retry",
}


def resume(
    session_id: str,
    decision: str,
    feedback: str,
    instructions: str,
    comments: list[str] | None = None,
    candidate: int | None = None,
) -> None:
    """Resume a session's paused flow run with a decision, as this CLI's person; CliError if it is not waiting, the
    person may not decide (or is not known in team mode) or the input is refused."""
    from tasks_lib.cli.users import cli_decider
    from tasks_lib.review.comments import CommentError, check_comments, parse_comment
    from tasks_lib.review.resume import ResumeRefused, decision_payload, resume_review

    store = cli_store(refresh=True)
    decider = cli_decider(store)
    try:
        parsed = [parse_comment(text) for text in comments or []]
        check_comments(store, session_id, parsed)  # each names a line the diff shows (as on the review page)
        payload = decision_payload(
            store, session_id, decision, feedback, instructions, parsed, candidate, decider=decider
        )
        resume_review(store, session_id, payload)
    except (ResumeRefused, CommentError) as exc:
        raise CliError(str(exc)) from None


def prompt_review(session_id: str) -> None:
    """Ask for a decision in this terminal and resume the waiting run with it."""
    choices = {"a": "accept", "c": "request_changes", "r": "reject", "t": "retry"}
    try:
        answer = input("decide: [a]ccept, request [c]hanges, [r]eject, re[t]ry, or Enter to wait: ").strip().lower()
        if answer not in choices:
            return
        decision = choices[answer]
        feedback = input("feedback: ") if decision in ("request_changes", "retry", "reject") else ""
        instructions = input("updated instructions: ") if decision == "retry" else ""
        resume(session_id, decision, feedback, instructions)
    except (EOFError, CliError) as exc:
        err.print(f"not resumed: {exc}")


def review(
    session_id: str = typer.Argument(..., help="Session id or a unique prefix of it."),
    decision: str = typer.Argument(..., help="accept | request-changes | reject | retry"),
    feedback: str = typer.Option("", "--feedback", "-f", help="What to change, or notes."),
    instructions: str = typer.Option("", "--instructions", "-i", help="Updated instructions (retry)."),
    comment: list[str] = typer.Option(
        [], "--comment", "-c", help='A comment on a line of the change: FILE:LINE="text" (repeatable).'
    ),
    candidate: int | None = typer.Option(
        None, "--candidate", help="Best-of-N: the attempt to accept (default: the first)."
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the session has acted on the decision."),
    wait_timeout: float = typer.Option(3600, "--timeout", help="Seconds to wait with --wait."),
) -> None:
    """Decide on a session waiting for review; the paused run resumes with this input."""
    from tasks_lib.session.reconcile import end_orphans

    if decision not in DECISION_NAMES:
        raise CliError(f"unknown decision {decision!r}; use accept, request-changes, reject or retry")
    from tasks_lib.ops.prefect_api import choose_api

    choose_api()  # a run started against `agent-tasks up` is resumed there
    store = cli_store()
    row = find_session(store, session_id)
    key = row.review_key
    spinner = Spinner(err)
    spinner.say("sending the decision")
    try:
        resume(row.id, DECISION_NAMES[decision], feedback, instructions, comment, candidate)
    finally:
        spinner.stop()
    out.print(f"session {row.id[:8]}: {decision} sent")
    if not wait:
        return
    deadline = time.monotonic() + wait_timeout
    try:
        while time.monotonic() < deadline:
            time.sleep(0.5)
            end_orphans(store, row.id)  # the run's process may die while acting on the decision
            now = store.get_session(row.id)
            waiting_again = now.status == "awaiting_review" and now.review_key != key
            if now.status not in ("awaiting_review", "running", "delivering") or waiting_again:
                spinner.stop()
                out.print(f"session {now.id[:8]} {status_line(now.status, now.status_reason)}")
                return
            spinner.say(AFTER_DECISION.get(now.status, now.status))
    finally:
        spinner.stop()
    raise CliError(
        f"session {row.id[:8]} is still working after {wait_timeout:.0f}s; see agent-tasks show {row.id[:8]}"
    )
