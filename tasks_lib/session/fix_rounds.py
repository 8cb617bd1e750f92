"""The agent's check after its loop, and the fix rounds that hand a failing check back to the agent."""

from __future__ import annotations

from collections.abc import Callable

from tasks_lib.agent.budget import session_limits
from tasks_lib.agent.edit_loop import shown_files
from tasks_lib.agent.loop import LoopResult
from tasks_lib.domain.records import CheckResult, Usage
from tasks_lib.environments import Environment
from tasks_lib.session.context import Attempt, SessionContext
from tasks_lib.session.outcome import loop_failed
from tasks_lib.steps.check import fix_request, run_check
from tasks_lib.steps.hidden_check import run_hidden_check


def check_and_fix(
    ctx: SessionContext,
    loop: LoopResult,
    prior: Usage,
    seconds: float,
    attempt: Attempt | None = None,
) -> tuple[LoopResult, CheckResult]:
    """Run the agent's check; while it fails and fix_until_green allows, hand it back to the agent.

    Fix rounds draw on the session's budgets (``prior`` usage and ``seconds`` of agent time before this loop).
    ``attempt``: best-of-N, the attempt's own workspace and the budget shared by all attempts.
    """
    path, environment = (attempt.path, attempt.environment) if attempt else (ctx.ws.path, ctx.environment)
    shared, number = (attempt.shared, attempt.number) if attempt else (None, None)
    checking, rounds = _checker(ctx, path, environment, number)
    check = checking(0)
    for fix_round in range(1, rounds + 1):
        if check.passed:
            break
        used = shared.total() if shared else loop.usage
        left = session_limits(ctx.agent, prior.plus(used), seconds + loop.duration_s)
        if left is None or loop.end_reason.ended_early:
            ctx.logger.warning("check failed, but the budget is used up: no fix round")
            break
        ctx.logger.info("check failed: fix round %d of %d", fix_round, rounds)
        loop.messages.append(
            {"role": "user", "content": fix_request(check, ctx.agent.loop, shown_files(loop.messages))}
        )
        more = ctx.run_agent(
            loop.messages,
            prior if shared else prior.plus(loop.usage),
            left,
            loop.next_index(loop.usage.steps + 1),
            attempt,
        )
        loop = loop.followed_by(more)
        if loop_failed(more):
            break
        check = checking(fix_round)
    return loop, check


def _checker(
    ctx: SessionContext, path: str, environment: Environment, number: int | None
) -> tuple[Callable[[int], CheckResult], int]:
    """How a round's check runs, and how many fix rounds it gets: the run's hidden check (on a copy, with its own
    files laid over it) when there is one, else the agent's check_command in the workspace."""
    hidden = ctx.request.hidden_check
    if hidden is not None:
        area = ctx.settings.sandboxes_dir / ctx.session_id / f"hidden-check-{number or 0}"

        def hidden_round(fix_round: int) -> CheckResult:
            return run_hidden_check(
                ctx.store, ctx.session_id, path, hidden, ctx.sandbox, area, ctx.hidden_paths(), ctx.iteration, fix_round
            )

        return hidden_round, hidden.fix_rounds
    timeout = ctx.agent.check_timeout_minutes * 60

    def agent_round(fix_round: int) -> CheckResult:
        command = ctx.agent.check_command or ""
        return run_check(ctx.store, ctx.session_id, environment, command, timeout, ctx.iteration, fix_round)

    return agent_round, ctx.agent.fix_until_green
