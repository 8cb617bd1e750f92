"""Carrying out a reviewer's decision: accept (commit and deliver, or take another best-of-N attempt first), reject
(discard the work), or ready another iteration (request changes, retry) when rounds and budget allow."""

from __future__ import annotations

from pathlib import Path

from tasks_lib.agent.budget import budget_used, session_limits
from tasks_lib.agent.loop import LoopResult
from tasks_lib.config import Settings
from tasks_lib.domain.session import DeliveryTarget, SessionResult, SessionStatus
from tasks_lib.git.delivery import DeliveryError, commit_message
from tasks_lib.review.comments import change_request
from tasks_lib.review.form import ReviewInput
from tasks_lib.review.gate import record
from tasks_lib.session.attempts import Candidate, move_candidate
from tasks_lib.session.context import SessionContext
from tasks_lib.session.lifecycle import move
from tasks_lib.session.outcome import loop_failed
from tasks_lib.session.reconcile import delivery_landed
from tasks_lib.steps.capture_diff import capture_diff
from tasks_lib.steps.review_actions import commit_changes, deliver_changes, discard_changes, reset_workspace
from tasks_lib.store import SessionRow


def accept(ctx: SessionContext, review: ReviewInput) -> str | None:
    """Commit and deliver the work as the task or agent says; None when delivered, else the notice why not.

    The target is recorded (status delivering) before anything is pushed, so a process that dies
    mid-delivery leaves a session that can be settled by looking for its commit on the target.
    """
    summary = ctx.store.latest_summary(ctx.session_id)
    summary_text = summary.markdown if summary else ""
    if review.candidate is not None:
        notice, summary_text = take_candidate(ctx, review.candidate, summary_text)
        if notice:
            record(ctx, review, notice)
            return notice
    row = ctx.store.get_session(ctx.session_id)
    reviewed_by = review.decider.person or row.reviewer  # the person who decided, when one is known
    message = commit_message(ctx.instructions, summary_text, ctx.session_id, ctx.agent.name, reviewed_by)
    on_accept = ctx.request.on_accept or ctx.agent.on_accept
    try:
        commit = commit_changes(ctx.ws.path, ctx.ws.mirror, message, ctx.session_id, ctx.ws.work_branch)
        target = DeliveryTarget(
            mode=on_accept,
            repository=ctx.repository,
            commit=commit,
            branch=ctx.ws.base_branch if on_accept == "merge" else ctx.ws.work_branch,
        )
        move(
            ctx.store,
            ctx.session_id,
            SessionStatus.delivering,
            f"delivering {commit[:10]}: {target.describe()}",
            delivery_target=target.model_dump_json(),
        )
        where = deliver_changes(
            ctx.ws.mirror,
            ctx.repository,
            on_accept,
            commit,
            ctx.ws.work_branch,
            ctx.ws.base_branch,
            ctx.ws.base_commit,
            message,
        )
    except DeliveryError as exc:
        notice = ctx.redact(f"accept failed: {exc}")
        record(ctx, review, notice)
        ctx.logger.error(notice)
        return notice
    ctx.store.update_session(ctx.session_id, delivered_commit=commit, delivered_to=where)
    record(ctx, review, where, commit=commit)
    ctx.finish(SessionStatus.accepted, f"accepted: {commit[:10]} → {where}")
    return None


def take_candidate(ctx: SessionContext, attempt: int, summary: str) -> tuple[str | None, str]:
    """Put best-of-N attempt ``attempt`` of this iteration in the workspace to be accepted.

    Returns a notice when it cannot be taken (else None), and the summary to commit with.
    """
    found = ctx.store.get_session(ctx.session_id).candidates or {}
    ranked = {c["attempt"]: Candidate.model_validate(c) for c in found.get("ranked", [])}
    if found.get("iteration") != ctx.iteration or attempt not in ranked:
        have = (
            f"attempts {', '.join(map(str, sorted(ranked)))}"
            if ranked and found.get("iteration") == ctx.iteration
            else "one attempt"
        )
        return f"there is no attempt {attempt} to accept: iteration {ctx.iteration} has {have}", summary
    if attempt == found["chosen"]:
        return None, summary
    stored = ctx.store.latest_diff(ctx.session_id, scope=f"attempt-{attempt}")
    if stored is None or not move_candidate(ctx.ws.path, ctx.ws.base_commit, stored.patch):
        return f"attempt {attempt}'s diff is over the limits and cannot be moved into the workspace", summary
    capture_diff(ctx.store, ctx.session_id, ctx.ws.path, ctx.ws.base_commit, ctx.iteration)
    ctx.store.update_session(ctx.session_id, candidates={**found, "chosen": attempt})
    ctx.logger.info("accepting attempt %d instead of attempt %d", attempt, found["chosen"])
    chosen = ranked[attempt]
    return None, f"Attempt {attempt} of {len(ranked)} ({chosen.why}).\n\n{chosen.summary}"


def settle_interrupted_delivery(ctx: SessionContext) -> str | None:
    """After a restart mid-delivery: accepted if the commit reached its target (None), else the notice to decide again."""
    row = ctx.store.get_session(ctx.session_id)
    target = DeliveryTarget.model_validate_json(row.delivery_target) if row.delivery_target else None
    if target is not None and delivery_landed(ctx.settings.mirrors_dir, target):
        ctx.store.update_session(ctx.session_id, delivered_commit=target.commit, delivered_to=target.describe())
        ctx.finish(
            SessionStatus.accepted,
            f"accepted: {target.commit[:10]} → {target.describe()} (found on the target after the run was restarted)",
        )
        return None
    return "the run was restarted while delivering, and the commit is not on its target: decide again"


def reject(ctx: SessionContext, review: ReviewInput) -> SessionResult:
    """Discard the workspace and the work branch, and end the session as rejected."""
    discard_changes(ctx.ws.mirror, ctx.ws.path, ctx.ws.work_branch)
    record(ctx, review, "discarded")
    return ctx.finish(
        SessionStatus.rejected, "rejected by the reviewer" + (f": {review.feedback}" if review.feedback else "")
    )


def budget_line(ctx: SessionContext, row: SessionRow) -> str | None:
    """How the session's budgets stand when one is used up, else None."""
    used = row.usage()
    if session_limits(ctx.agent, used, row.agent_seconds or 0.0) is not None:
        return None
    return budget_used(ctx.agent, used, row.agent_seconds or 0.0)


def refusal(decision: str, row: SessionRow, settings: Settings, budget: str | None) -> str | None:
    """Why a request for another iteration cannot be carried out (a notice for the reviewer), or None.

    Change requests and retries are capped by rounds, and both need budget left for the session.
    """
    if decision == "request_changes" and row.change_rounds >= settings.max_change_rounds:
        return (
            f"no change rounds left ({row.change_rounds} of {settings.max_change_rounds} used): accept, reject or retry"
        )
    retries = row.retry_rounds or 0
    if decision == "retry" and retries >= settings.max_retry_rounds:
        return f"no retries left ({retries} of {settings.max_retry_rounds} used): accept, reject or request changes"
    if budget:
        return f"the session's budget is used up ({budget}): accept or reject, or start a new run"
    return None


def another_iteration(ctx: SessionContext, review: ReviewInput) -> str | None:
    """Ready the next iteration for a change request (the agent continues with the feedback and line comments) or a
    retry (a fresh start from the base with the updated instructions); the notice why not when rounds or budget
    are used up, else None with the session running again."""
    decision = review.decision
    row = ctx.store.get_session(ctx.session_id)
    notice = refusal(decision, row, ctx.settings, budget_line(ctx, row))
    if notice:
        record(ctx, review, notice)
        return notice
    record(ctx, review, f"iteration {ctx.iteration + 1}")
    if decision == "request_changes":
        ctx.store.update_session(ctx.session_id, change_rounds=row.change_rounds + 1)
        request = change_request(review.feedback, review.comments, Path(ctx.ws.path))
        ctx.messages.append({"role": "user", "content": request})
    else:  # retry: a fresh start from the base with the updated instructions
        reset_workspace(ctx.ws.path, ctx.ws.base_commit)
        ctx.instructions = review.instructions.strip()
        if review.feedback.strip():
            ctx.instructions += f"\n\nReviewer's notes on the previous attempt:\n{review.feedback.strip()}"
        ctx.store.update_session(
            ctx.session_id, instructions=ctx.instructions, retry_rounds=(row.retry_rounds or 0) + 1
        )
        ctx.messages = ctx.fresh_conversation()
        ctx.fresh_start = True
    ctx.iteration += 1
    move(ctx.store, ctx.session_id, SessionStatus.running, f"iteration {ctx.iteration}: {decision.replace('_', ' ')}")
    return None


def early_end_notice(ctx: SessionContext, loop: LoopResult) -> str | None:
    """The notice for the reviewer when an iteration's loop ended on an error, else None."""
    if loop_failed(loop):
        return ctx.redact(f"iteration {ctx.iteration} ended early: {loop.end_reason.value}: {loop.detail}")
    return None
