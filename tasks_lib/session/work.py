"""A session's work in one iteration: where it starts (the budget left, the step it is at), the agent loop with its
check and fix rounds — or best-of-N attempts at once — and what the iteration leaves on the session."""

from __future__ import annotations

from dataclasses import dataclass

from tasks_lib.agent.budget import budget_used, session_limits
from tasks_lib.agent.loop import Limits, LoopResult
from tasks_lib.domain.records import CheckResult, Usage
from tasks_lib.environments import Environment
from tasks_lib.session.attempts import run_attempts
from tasks_lib.session.context import SessionContext
from tasks_lib.session.escalation import escalate
from tasks_lib.session.fix_rounds import check_and_fix
from tasks_lib.session.outcome import loop_failed
from tasks_lib.steps.setup import run_setup


@dataclass
class IterationStart:
    """Where an iteration starts: what the session used before it, what is left, and its first step."""

    prior: Usage  # the session's usage before this iteration
    seconds: float  # the agent's time before this iteration
    left: Limits  # what is left of the session's budgets
    first_step: int  # the number of the iteration's next step (past 1 when a restarted run continues it)
    previous_patch: bytes | None  # the diff the last review saw (for the increment since then)


def begin_iteration(ctx: SessionContext, continued: bool = False) -> IterationStart:
    """Record the iteration on the session and say where it starts; the session fails when its budget is used up.

    ``continued``: the conversation already holds part of this iteration (a restarted run).
    """
    row = ctx.store.get_session(ctx.session_id)
    prior = row.usage()
    previous = ctx.store.latest_diff(ctx.session_id) if ctx.iteration > 1 else None
    if continued:
        ctx.store.update_session(ctx.session_id, iteration=ctx.iteration)
    else:
        ctx.store.update_session(ctx.session_id, iteration=ctx.iteration, iteration_start=len(ctx.messages))
    seconds = row.agent_seconds or 0.0
    left = session_limits(ctx.agent, prior, seconds)
    if left is None:
        raise ctx.fail(f"the session's budget is used up ({budget_used(ctx.agent, prior, seconds)})")
    done = len([s for s in ctx.store.steps(ctx.session_id) if s.iteration == ctx.iteration]) if continued else 0
    return IterationStart(prior, seconds, left, done + 1, previous.patch if previous else None)


def agent_work(
    ctx: SessionContext,
    start: IterationStart,
    continued: bool = False,
) -> tuple[LoopResult, CheckResult | None]:
    """The agent loop on the session's conversation, then its check with fix rounds, then — while they fail and the
    agent has a ladder of models — the next model; on a fresh start with several attempts, best-of-N: that many at
    once, the best left in the workspace."""
    if ctx.request.attempts > 1 and ctx.fresh_start and not continued:
        return run_attempts(ctx, start.prior, start.left, start.seconds)
    loop = ctx.run_agent(ctx.messages, start.prior, start.left, start.first_step)
    check = None
    if ctx.has_check() and not loop_failed(loop):
        loop, check = check_and_fix(ctx, loop, start.prior, start.seconds)
    start_patch = None if ctx.fresh_start else start.previous_patch  # a retry starts again from the base
    return escalate(ctx, loop, check, start.prior, start.seconds, start.first_step, start_patch)


def end_iteration(ctx: SessionContext, start: IterationStart, loop: LoopResult, check: CheckResult | None) -> None:
    """Keep what the iteration leaves: the conversation (masked), how the loop ended and the agent's time."""
    ctx.messages = loop.messages
    ctx.check = check
    ctx.fresh_start = False
    ctx.store.update_session(
        ctx.session_id,
        end_reason=loop.end_reason.value,
        agent_seconds=start.seconds + loop.duration_s,
        conversation=ctx.redact.deep(ctx.messages),
    )


def setup(ctx: SessionContext, environment: Environment | None = None) -> None:
    """Run the setup command, if any (in ``environment``, default the session's); the session fails when it does."""
    if not ctx.sandbox.setup_command:
        return
    result = run_setup(
        environment or ctx.environment,
        ctx.sandbox.setup_command,
        ctx.sandbox.setup_timeout_s,
        ctx.sandbox.setup_network,
    )
    if not result.passed:
        tail = "\n".join(result.output_tail.strip().splitlines()[-15:])
        raise ctx.fail(f"the setup command {result.headline()}; the agent did not start. Its output ended:\n{tail}")
