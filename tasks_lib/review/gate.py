"""The review gate: the session waits for a reviewer's decision — a blocking pause in a plain run, a suspend in a
deployment run — with a form that shows the change, and every decision is recorded with who made it and what came
of it.

Who decided is checked here, where the decision is honoured, not by whoever sent it: in team mode (the store has
people) a decision counts only with a grant the CLI issued after checking the person's token and their right to
decide; anything else (the Prefect form, the Prefect API) is refused and the session waits again. Every refusal is
recorded in the audit: who tried (or unknown), through what, and why."""

from __future__ import annotations

import uuid
from datetime import timedelta

from prefect import pause_flow_run, suspend_flow_run
from prefect.exceptions import FlowPauseTimeout
from prefect.runtime import deployment
from pydantic import ValidationError

from tasks_lib import progress
from tasks_lib.domain.people import Decider, PeopleError, refusal
from tasks_lib.domain.records import files_stat
from tasks_lib.domain.request import trigger_line
from tasks_lib.domain.session import SessionStatus
from tasks_lib.domain.words import plain
from tasks_lib.review.form import ReviewInput, emit_awaiting_review, review_description
from tasks_lib.session.attempts import Candidate
from tasks_lib.session.context import SessionContext
from tasks_lib.session.lifecycle import move
from tasks_lib.session.runner import current_runner
from tasks_lib.store import SessionRow, utcnow
from tasks_lib.store.people import find_person, list_people, record_refusal, session_starter, take_grant, team_mode

TEAM_ONLY = (
    "this store has people, so a decision counts only from one of them: "
    "`agent-tasks review ID DECISION` with their token (`agent-tasks login` or AGENT_TASKS_TOKEN), or the review "
    "page signed in; the Prefect form and the Prefect API alone are not honoured"
)


def record(ctx: SessionContext, review: ReviewInput, outcome: str, commit: str | None = None) -> None:
    """Store a review decision of this iteration, its line comments, who made it (and how they were known), what
    came of it and, for an accept, the commit."""
    ctx.store.add_review(
        ctx.session_id,
        ctx.iteration,
        review.decision,
        review.feedback,
        review.instructions,
        outcome=outcome,
        comments=[c.model_dump() for c in review.comments],
        decided_by=review.decider.person,
        auth=review.decider.auth,
        commit=commit,
    )


def authorize(ctx: SessionContext, review: ReviewInput) -> str | None:
    """Find who sent ``review`` (from its grant) and set it on the review; the notice refusing it, or None.

    Single-user mode honours every decision (without a grant: through the Prefect form); team mode only one whose
    grant names a person who may decide on this session now. A refusal is recorded in the audit.
    """
    row = ctx.store.get_session(ctx.session_id)
    decider = take_grant(ctx.store, review.grant, ctx.session_id, row.review_key or "", review.decision)
    if not team_mode(ctx.store):
        review.decider = decider or Decider(auth="prefect-form")
        return None
    why, notice = _refusal(ctx, row, decider, review)
    if why is None:
        review.decider = decider
        return None
    record_refusal(ctx.store, ctx.session_id, review.decision, why, decider if decider and decider.person else None)
    return f"refused: {notice or why}"


def _refusal(
    ctx: SessionContext, row: SessionRow, decider: Decider | None, review: ReviewInput
) -> tuple[str | None, str | None]:
    """Why ``decider`` may not make ``review``'s decision on the session now (for the audit) and, when it differs,
    the notice the session waits again with; (None, None) when they may."""
    if decider is None or decider.person is None:
        given = "a grant nobody issued for this pause and decision" if review.grant else "no grant"
        return f"no person: sent through the Prefect form or API with {given}", TEAM_ONLY
    try:
        person = find_person(ctx.store, decider.person)
    except PeopleError:
        return f"{decider.person} is no longer a person of this store", None
    people = list_people(ctx.store)
    starter, independent = session_starter(ctx.store, ctx.session_id, people)
    why = refusal(
        person,
        row.reviewer,
        people,
        ctx.session_id,
        decision=review.decision,
        starter=starter,
        independent=independent,
    )
    return why, None


def check_line(ctx: SessionContext) -> str | None:
    """The latest check result of this iteration, for the review form."""
    runs = [c for c in ctx.store.checks(ctx.session_id) if c.iteration == ctx.iteration]
    if not runs:
        return None
    last = runs[-1]
    verdict = "passed" if last.passed else f"failed (exit {last.exit_code})"
    return f"`{last.command}` {verdict} in {last.duration_s:.1f} s" + (
        f" after {last.fix_round} fix rounds" if last.fix_round else ""
    )


def candidate_lines(ctx: SessionContext, row: SessionRow) -> list[str] | None:
    """The best-of-N attempts of this iteration, ranked, one line each (None when it had one attempt)."""
    found = row.candidates or {}
    if found.get("iteration") != ctx.iteration:
        return None
    return [
        Candidate.model_validate(c).headline() + (" (in the workspace)" if c["attempt"] == found["chosen"] else "")
        for c in found["ranked"]
    ]


def wait_for_review(ctx: SessionContext, notice: str | None) -> ReviewInput | None:
    """Pause (plain runs) or suspend (deployment runs) until a reviewer decides; None when the time is up."""
    row = ctx.store.get_session(ctx.session_id)
    reuse = ctx.reuse_review_key and row.review_key
    ctx.reuse_review_key = False
    key = row.review_key if reuse else f"review-{ctx.iteration}-{uuid.uuid4().hex[:8]}"
    diff = ctx.store.latest_diff(ctx.session_id)
    increment = (
        ctx.store.latest_diff(ctx.session_id, scope="increment", with_patch=False) if ctx.iteration > 1 else None
    )
    summary = ctx.store.latest_summary(ctx.session_id)
    description = review_description(
        ctx.session_id,
        ctx.iteration,
        summary.markdown if summary else "",
        files_stat(len(diff.files), diff.added, diff.removed) if diff else "no diff",
        diff.files if diff else [],
        row.reviewer,
        ctx.ws.work_branch,
        increment=files_stat(len(increment.files), increment.added, increment.removed) if increment else None,
        notice=notice,
        check=check_line(ctx),
        started_by=trigger_line(ctx.request.trigger) if ctx.request.trigger else None,
        rounds_left=ctx.settings.max_change_rounds - row.change_rounds,
        patch=diff.patch.decode("utf-8", errors="replace") if diff else "",
        candidates=candidate_lines(ctx, row),
        review_page=ctx.settings.review_page(ctx.session_id),
    )
    form = ReviewInput.with_initial_data(description=ctx.redact(description))
    runner = None if deployment.id else current_runner()  # a suspended run has no process waiting
    if reuse:
        ctx.store.update_session(ctx.session_id, runner=runner)
    else:
        deadline = utcnow() + timedelta(seconds=ctx.settings.review_timeout_s)
        move(
            ctx.store,
            ctx.session_id,
            SessionStatus.awaiting_review,
            notice or "waiting for a reviewer",
            review_key=key,
            review_deadline=deadline,
            runner=runner,
        )
        emit_awaiting_review(
            ctx.session_id,
            ctx.repository,
            row.reviewer,
            ctx.iteration,
            f"+{diff.added} -{diff.removed}" if diff else "no diff",
        )
        ctx.logger.info("waiting for review (key %s, reviewer %s)", key, row.reviewer or "anyone")
        progress.publish("awaiting_review", session_id=ctx.session_id, iteration=ctx.iteration, notice=notice)
    try:
        if deployment.id:
            review = suspend_flow_run(wait_for_input=form, timeout=ctx.settings.review_timeout_s, key=key)
        else:
            review = pause_flow_run(
                wait_for_input=form,
                timeout=ctx.settings.review_timeout_s,
                poll_interval=ctx.settings.review_poll_s,
                key=key,
            )
    except FlowPauseTimeout:
        return None
    except ValidationError as exc:  # passed the server's schema but not our own checks
        problem = "; ".join(plain(e["msg"]) for e in exc.errors())
        ctx.logger.warning("invalid review input: %s", problem)
        return wait_for_review(ctx, f"invalid review input: {problem}")
    refused = authorize(ctx, review)
    if refused:
        ctx.logger.warning("review decision %s not honoured: %s", review.decision, refused)
        return wait_for_review(ctx, refused)
    return review
