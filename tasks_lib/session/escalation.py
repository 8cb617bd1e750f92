"""Escalation: a session whose model could not do the task goes on with the next model of its ladder
(`models: [small, large]`), from the same workspace, with a short hand-over instead of the whole transcript, inside
the session's budget. Each step records its model, so the summary says which model did what and what each cost."""

from __future__ import annotations

from tasks_lib.agent.budget import session_limits
from tasks_lib.agent.edit_loop import shown_files
from tasks_lib.agent.ladder import on_rung
from tasks_lib.agent.loop import LoopResult
from tasks_lib.domain.records import CheckResult, EndReason, Usage
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


def escalate(
    ctx: SessionContext, loop: LoopResult, check: CheckResult | None, prior: Usage, seconds: float, first_step: int
) -> tuple[LoopResult, CheckResult | None]:
    """While the work calls for it and the ladder has another model, go on with the next one (its check and fix
    rounds too); returns the combined loop and the latest check. ``prior``/``seconds``: the session's usage and agent
    time before ``loop``; ``first_step``: the number of ``loop``'s first step."""
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
        more = ctx.run_agent(
            handover(ctx, previous, reason, check), prior.plus(loop.usage), left, loop.next_index(first_step)
        )
        more_check = None
        if ctx.has_check() and not loop_failed(more):
            more, more_check = check_and_fix(ctx, more, prior.plus(loop.usage), seconds + loop.duration_s)
        loop, check = loop.followed_by(more), more_check or check
    return loop, check
