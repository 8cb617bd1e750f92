"""An agent's budgets over a session: what its file allows, what is left, and the budget best-of-N attempts share.

The budgets cap the session, not each iteration: change requests, retries, fix rounds and parallel attempts
all draw on the same steps, tokens, cost and wall time.
"""

from __future__ import annotations

import threading
import time

from tasks_lib.agent.loop import Limits, limit_reached
from tasks_lib.agent.spec import AgentSpec
from tasks_lib.domain.records import EndReason, Usage


def agent_limits(agent: AgentSpec) -> Limits:
    """The budgets an agent file sets."""
    return Limits(
        max_steps=agent.max_steps,
        wall_time_s=agent.timeout_minutes * 60,
        max_cost_usd=agent.max_cost_usd,
        max_tokens=agent.max_tokens,
    )


def session_limits(agent: AgentSpec, used: Usage, seconds: float) -> Limits | None:
    """What is left of the agent's budgets for the whole session after ``used`` and ``seconds`` of agent time.

    None when any budget is used up. The budgets cap the session, not each iteration: change requests,
    retries and fix rounds all draw on the same steps, tokens, cost and wall time.
    """
    full = agent_limits(agent)
    steps = full.max_steps - used.steps
    wall = full.wall_time_s - seconds if full.wall_time_s is not None else None
    cost = full.max_cost_usd - (used.cost_usd or 0.0) if full.max_cost_usd is not None else None
    tokens = (full.max_tokens - used.prompt_tokens - used.completion_tokens) if full.max_tokens else None
    if (
        steps <= 0
        or (wall is not None and wall <= 0)
        or (cost is not None and cost <= 0)
        or (tokens is not None and tokens <= 0)
    ):
        return None
    return Limits(max_steps=steps, wall_time_s=wall, max_cost_usd=cost, max_tokens=tokens)


def budget_used(agent: AgentSpec, used: Usage, seconds: float) -> str:
    """One line on how much of the session's budgets is used."""
    parts = [f"steps {used.steps}/{agent.max_steps}", f"agent time {seconds / 60:.1f}/{agent.timeout_minutes} min"]
    if agent.max_tokens:
        parts.append(f"tokens {used.prompt_tokens + used.completion_tokens}/{agent.max_tokens}")
    if agent.max_cost_usd is not None:
        parts.append(f"cost ${used.cost_usd or 0:.2f}/${agent.max_cost_usd:.2f}")
    return ", ".join(parts)


class SharedBudget:
    """The session's budget, drawn on by every attempt at once; also says when a green attempt ends the others."""

    def __init__(self, left: Limits, stop_at_first_green: bool = False):
        self.left, self.stop_at_first_green = left, stop_at_first_green
        self.started = time.monotonic()
        self.lock = threading.RLock()  # held by a caller that stores the totals it reports
        self.used: dict[int, Usage] = {}
        self.in_flight: set[int] = set()  # attempts whose next step is allowed but not reported yet
        self.green: int | None = None
        self.halted: str | None = None  # the run is stopping: every attempt ends at its next step

    def report(self, attempt: int, usage: Usage) -> Usage:
        """Record an attempt's usage so far (its step in flight is done); returns what all attempts used together."""
        with self.lock:
            self.used[attempt] = usage
            self.in_flight.discard(attempt)
            return self.total()

    def total(self) -> Usage:
        """What all attempts used together."""
        total = Usage()
        for usage in list(self.used.values()):
            total = total.plus(usage)
        return total

    def halt(self, reason: str) -> None:
        """Stop every attempt before its next step (the run is being interrupted)."""
        with self.lock:
            self.halted = reason

    def passed(self, attempt: int) -> None:
        """Note that ``attempt`` passed its check (the first one counts)."""
        with self.lock:
            if self.green is None:
                self.green = attempt

    def stop_reason(self, attempt: int) -> tuple[EndReason, str] | None:
        """Why ``attempt`` must stop before its next step: the shared budget is used up, or another attempt passed
        first; else None, and that step is counted as taken until it is reported (so steps never overshoot)."""
        with self.lock:
            if self.halted:
                return EndReason.crashed, self.halted
            if self.stop_at_first_green and self.green is not None and self.green != attempt:
                return EndReason.superseded, f"attempt {self.green} passed its check first"
            total = self.total()
            pending = total.model_copy(update={"steps": total.steps + len(self.in_flight - {attempt})})
            reached = limit_reached(self.left, pending, time.monotonic() - self.started)
            if reached is None:
                self.in_flight.add(attempt)
                return None
        return reached[0], f"the budget shared by the attempts: {reached[1]}"
