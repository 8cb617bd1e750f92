"""Escalation: a session whose model could not do the task goes on with the next model of its ladder
(`models: [small, large]`), from the same workspace, with a short hand-over instead of the whole transcript, inside
the session's budget. Each step records its model, so the summary says which model did what and what each cost.

A rung with `start: fresh` begins instead from the files as they were when the iteration started — a new sample of
the task, told what the previous attempt's check said but not shown its files (a small model shown its own failed
file back mostly repeats it byte for byte). The previous attempt's diff is stored (scope ``rung-N``) and stays in
the workspace when the fresh one ranks lower, so nothing done is lost."""

from __future__ import annotations

from tasks_lib.agent.budget import session_limits
from tasks_lib.agent.edit_loop import CLOSING, shown_files
from tasks_lib.agent.ladder import on_rung
from tasks_lib.agent.loop import LoopResult
from tasks_lib.domain.records import CheckResult, DiffResult, EndReason, Usage
from tasks_lib.git.diff import capture_workspace_diff
from tasks_lib.session.attempts import Outcome, move_candidate, rank_candidates, weigh
from tasks_lib.session.context import SessionContext
from tasks_lib.session.fix_rounds import check_and_fix
from tasks_lib.session.outcome import loop_failed
from tasks_lib.steps.check import fix_request

# How a loop may end that a stronger model could do better than (a budget's end is not one: the budget is shared).
GAVE_UP = {EndReason.stuck, EndReason.malformed, EndReason.gave_up, EndReason.model_error}


def escalation_reason(loop: LoopResult, check: CheckResult | None) -> str | None:
    """Why the work so far calls for the next model (a failing check, a loop that gave up), or None when it does not."""
    if check is not None and not check.passed and not loop.end_reason.is_limit:
        return f"its check still {check.headline()}"
    if loop.end_reason in GAVE_UP:
        return f"its loop ended {loop.end_reason.value}: {loop.detail}"
    return None


def handover(ctx: SessionContext, previous: str, reason: str, check: CheckResult | None) -> list[dict]:
    """The next model's conversation: the task afresh (with the named files as the workspace holds them now) and
    a note on what the previous model left — the transcript itself is not handed on."""
    messages = ctx.fresh_conversation()
    note = (
        f"\n\nAnother model ({previous}) worked on this task before you; its changes are in the workspace"
        f"{' (the files above show them)' if ctx.agent.loop == 'edit' else ''}. It did not succeed: {reason}."
    )
    if check is not None and not check.passed:
        note += "\n\n" + fix_request(check, ctx.agent.loop, shown_files(messages))
    messages[-1] = {**messages[-1], "content": f"{messages[-1]['content']}{note}"}
    return messages


def fresh_handover(ctx: SessionContext, previous: str, reason: str, check: CheckResult | None) -> list[dict]:
    """The next model's conversation when it starts afresh: the task with the files as they were before, and what
    the previous attempt's check said of it (its files are not shown)."""
    messages = ctx.fresh_conversation()
    note = (
        f"\n\nAnother model ({previous}) tried this task before you and did not succeed: {reason}. Its attempt was "
        "set aside: the workspace is as it was before it, so write your own solution."
    )
    if check is not None and not check.passed:
        note += f" What the check said of that attempt, for what the check expects:\n\n```\n{check.output_tail}\n```"
    if ctx.agent.loop == "edit":
        note += f"\n\n{CLOSING}"
    messages[-1] = {**messages[-1], "content": f"{messages[-1]['content']}{note}"}
    return messages


def escalate(
    ctx: SessionContext,
    loop: LoopResult,
    check: CheckResult | None,
    prior: Usage,
    seconds: float,
    first_step: int,
    start_patch: bytes | None = None,
) -> tuple[LoopResult, CheckResult | None]:
    """While the work calls for it and the ladder has another model, go on with the next one (its check and fix
    rounds too); returns the combined loop and the latest check. ``prior``/``seconds``: the session's usage and agent
    time before ``loop``; ``first_step``: the number of ``loop``'s first step; ``start_patch``: the workspace's change
    when the iteration started (None: none), where a fresh rung starts from."""
    rung_number = 1
    while ctx.agent.models and (reason := escalation_reason(loop, check)):
        left = session_limits(ctx.agent, prior.plus(loop.usage), seconds + loop.duration_s)
        if left is None:
            ctx.logger.warning("%s, but the session's budget is used up: no escalation", reason)
            break
        previous, (rung, *rest) = ctx.model_name, ctx.agent.models
        ctx.agent, ctx.model_name = on_rung(ctx.agent, rung, rest), rung.model
        ctx.settle_modes()
        ctx.store.update_session(ctx.session_id, model=ctx.model_name)
        ctx.logger.warning("escalating from %s to %s: %s", previous, rung.describe(), reason)
        set_aside = _set_aside(ctx, rung_number, start_patch) if rung.start == "fresh" else None
        opening = (fresh_handover if set_aside is not None else handover)(ctx, previous, reason, check)
        more = ctx.run_agent(opening, prior.plus(loop.usage), left, loop.next_index(first_step))
        more_check = None
        if ctx.has_check() and not loop_failed(more):
            more, more_check = check_and_fix(ctx, more, prior.plus(loop.usage), seconds + loop.duration_s)
        combined = loop.followed_by(more)
        latest = more_check if set_aside is not None else more_check or check  # a fresh rung's check is its own
        if set_aside is not None:
            kept = _keep_better(ctx, rung_number, Outcome(loop, check, set_aside), more, more_check)
            if kept:
                combined, latest = combined.model_copy(update=kept), check
        loop, check = combined, latest
        rung_number += 1
    return loop, check


def _set_aside(ctx: SessionContext, rung_number: int, start_patch: bytes | None) -> DiffResult | None:
    """Store the workspace's change (scope ``rung-N``) and put the workspace back as the iteration began; returns
    the change set aside, or None when the workspace cannot be put back (the rung then continues from it)."""
    diff = capture_workspace_diff(ctx.ws.path, ctx.ws.base_commit)
    ctx.store.save_diff(ctx.session_id, diff, ctx.iteration, scope=f"rung-{rung_number}")
    if not move_candidate(ctx.ws.path, ctx.ws.base_commit, start_patch or b""):
        ctx.logger.warning(
            "the workspace cannot be put back as it was (its change is over the diff limits): "
            "the next model continues from it"
        )
        return None
    return diff


def _keep_better(
    ctx: SessionContext,
    rung_number: int,
    earlier: Outcome,
    fresh: LoopResult,
    fresh_check: CheckResult | None,
) -> dict | None:
    """Rank the earlier attempt (its diff the one set aside) against the fresh one as best-of-N ranks its attempts;
    when the earlier ranks first, put it back in the workspace (the fresh one's diff is stored, scope ``rung-N``)
    and return how the session's loop then reads as ended; None when the fresh one stays."""
    diff = capture_workspace_diff(ctx.ws.path, ctx.ws.base_commit)
    ranked = rank_candidates([weigh(rung_number, earlier), weigh(rung_number + 1, Outcome(fresh, fresh_check, diff))])
    for candidate in ranked:
        ctx.logger.info("rung %d ranks #%d: %s", candidate.attempt, candidate.rank, candidate.why)
    if ranked[0].attempt != rung_number:
        return None
    if not move_candidate(ctx.ws.path, ctx.ws.base_commit, earlier.diff.patch):
        ctx.logger.warning("the earlier attempt cannot be put back (over the diff limits): the fresh one stays")
        return None
    ctx.store.save_diff(ctx.session_id, diff, ctx.iteration, scope=f"rung-{rung_number + 1}")
    ctx.logger.warning("the fresh attempt ranks below the one before it: the earlier attempt is back in the workspace")
    loop = earlier.loop
    detail = f"{loop.detail} (a fresh attempt by the next model ranked below it and was set aside)"
    return {"end_reason": loop.end_reason, "detail": detail, "finish_summary": loop.finish_summary}
