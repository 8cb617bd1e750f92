"""The agent loop: ask the model, run the tools it calls, repeat until it finishes or a limit is hit.

Plain Python with no Prefect in it, so it can be run, tested and benchmarked bare.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from tasks_lib.agent.context import ContextMeter, compact_messages
from tasks_lib.agent.model import Model, ModelError, ModelReply, label
from tasks_lib.agent.stuck import StuckDetector
from tasks_lib.agent.tool_calls import read_calls
from tasks_lib.agent.tools import Toolbox
from tasks_lib.agent.turn import LoopOptions, LoopState, Turn
from tasks_lib.domain.records import EndReason, StepRecord, Usage


class Limits(BaseModel):
    """Budgets of one loop; None means no limit."""

    max_steps: int = 50
    wall_time_s: float | None = 30 * 60
    max_cost_usd: float | None = None
    max_tokens: int | None = None
    context_tokens: int | None = None  # estimated prompt size at which old tool outputs are shortened


class LoopResult(BaseModel):
    """How the loop ended and everything it did."""

    end_reason: EndReason
    detail: str = ""
    finish_summary: str | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    messages: list[dict[str, Any]] = Field(default_factory=list)
    duration_s: float = 0.0
    stuck_events: int = 0
    malformed_replies: int = 0

    def next_index(self, first_index: int = 1) -> int:
        """The number the step after this loop's takes (``first_index``: this loop's first, if it took none)."""
        return self.steps[-1].index + 1 if self.steps else first_index

    def followed_by(self, more: LoopResult) -> LoopResult:
        """This loop's work and then ``more`` (a fix round, another model) on from where it ended: how ``more``
        ended, with the steps, usage and time of both."""
        return LoopResult(
            end_reason=more.end_reason,
            detail=more.detail,
            finish_summary=more.finish_summary or self.finish_summary,
            steps=self.steps + more.steps,
            usage=self.usage.plus(more.usage),
            messages=more.messages,
            duration_s=self.duration_s + more.duration_s,
            stuck_events=self.stuck_events + more.stuck_events,
            malformed_replies=self.malformed_replies + more.malformed_replies,
        )


def limit_reached(limits: Limits, usage: Usage, elapsed: float) -> tuple[EndReason, str] | None:
    """Which budget ``usage`` after ``elapsed`` seconds has reached, and a line saying so; None while within them."""
    if usage.steps >= limits.max_steps:
        return EndReason.max_steps, f"step limit reached ({limits.max_steps} steps)"
    if limits.wall_time_s is not None and elapsed >= limits.wall_time_s:
        return EndReason.wall_time, f"time limit reached ({elapsed:.0f}s of {limits.wall_time_s:.0f}s)"
    if limits.max_cost_usd is not None and (usage.cost_usd or 0.0) >= limits.max_cost_usd:
        return EndReason.max_cost, f"cost limit reached (${usage.cost_usd:.4f} of ${limits.max_cost_usd:.4f})"
    if limits.max_tokens is not None and usage.prompt_tokens + usage.completion_tokens >= limits.max_tokens:
        used = usage.prompt_tokens + usage.completion_tokens
        return EndReason.max_tokens, f"token limit reached ({used} of {limits.max_tokens} tokens)"
    return None


def ask(
    model: Model,
    messages: list[dict[str, Any]],
    schemas: list[dict[str, Any]] | None,
    step: StepRecord,
    tokens_now: int,
) -> ModelReply:
    """One model call; when the provider says the context is too long, compact hard and try once more."""
    try:
        return model.query(messages, schemas)
    except ModelError as exc:
        if not exc.context_exceeded:
            raise
        cut = compact_messages(messages, tokens_now // 2, tokens_now)
        if not cut:
            raise
        step.compacted += cut
        step.notes.append(
            f"the provider said the context was too long: shortened {cut} old tool outputs and asked again"
        )
        return model.query(messages, schemas)


def run_agent_loop(
    model: Model,
    toolbox: Toolbox,
    messages: list[dict[str, Any]],
    limits: Limits,
    on_step: Callable[[StepRecord, Usage], None] | None = None,
    redact: Callable[[str], str] = lambda s: s,
    first_index: int = 1,
    options: LoopOptions | None = None,
    stop: Callable[[], tuple[EndReason, str] | None] | None = None,
) -> LoopResult:
    """Run the loop on ``messages`` (system prompt and task) until the model finishes or the loop stops it.

    ``stop``, asked before every step, may end the loop from outside (a budget shared with other loops).

    Each reply's calls run one at a time, in order, up to the first that fails; `finish` is honoured only
    after its reply's other calls succeeded. Steps are numbered from ``first_index``.
    """
    options = options or LoopOptions()
    started = time.monotonic()
    if limits.wall_time_s is not None:
        toolbox.deadline = started + limits.wall_time_s
    usage = Usage()
    steps: list[StepRecord] = []
    schemas = toolbox.schemas() if options.protocol != "text" else None
    signatures = toolbox.signatures()
    meter, stuck = ContextMeter(), StuckDetector()
    state = LoopState()

    def done(reason: EndReason, detail: str = "", summary: str | None = None) -> LoopResult:
        return LoopResult(
            end_reason=reason,
            detail=redact(detail),
            finish_summary=redact(summary) if summary is not None else None,
            steps=steps,
            usage=usage,
            messages=messages,
            duration_s=time.monotonic() - started,
            stuck_events=state.stuck_events,
            malformed_replies=state.malformed_total,
        )

    while True:
        limit = limit_reached(limits, usage, time.monotonic() - started) or (stop() if stop else None)
        if limit:
            return done(*limit)
        step = StepRecord(index=first_index + usage.steps, started_at=datetime.now(timezone.utc), model=label(model))
        step_started = time.monotonic()
        tokens_now = meter.tokens(messages)
        if limits.context_tokens:
            step.compacted = compact_messages(messages, limits.context_tokens, tokens_now)
        reply = take_reply(model, messages, schemas, step, tokens_now, usage, redact)
        if not isinstance(reply, ModelReply):
            record_step(step, step_started, steps, usage, on_step)
            return done(*reply)
        found = read_calls(reply, options.protocol, signatures)
        step.calls_from_text = found.from_text and bool(found.calls)
        messages.append(
            reply.assistant_message() if not found.from_text else {"role": "assistant", "content": reply.text}
        )
        meter.after_reply(reply, messages)

        turn = Turn(toolbox, options, state, stuck, redact)
        ending = turn.run(found, step)
        turn.answer(messages, found)
        record_step(step, step_started, steps, usage, on_step)
        if ending is not None:
            return done(*ending)


def take_reply(
    model: Model,
    messages: list[dict[str, Any]],
    schemas: list[dict[str, Any]] | None,
    step: StepRecord,
    tokens_now: int,
    usage: Usage,
    redact: Callable[[str], str],
) -> ModelReply | tuple[EndReason, str]:
    """One model call for ``step``: the reply (its text, timing and tokens kept on the step), or how the loop ends
    when the call failed for good (model_error) or broke (crashed), the error kept on the step."""
    try:
        reply = ask(model, messages, schemas, step, tokens_now)
    except ModelError as exc:
        step.error, step.retries = redact(str(exc)), exc.retries
        return EndReason.model_error, str(exc)
    except Exception as exc:  # a bug or an unexpected library failure: end cleanly, keep the work
        step.error = redact(f"{type(exc).__name__}: {exc}")
        return EndReason.crashed, f"{type(exc).__name__}: {exc}"
    usage.model_calls += 1
    step.text = redact(reply.text)
    step.model_latency_s, step.retries = reply.latency_s, reply.retries
    step.prompt_tokens, step.completion_tokens = reply.prompt_tokens, reply.completion_tokens
    step.cached_tokens, step.cost_usd = reply.cached_tokens, reply.cost_usd
    return reply


def record_step(step: StepRecord, started: float, steps: list[StepRecord], usage: Usage, on_step) -> None:
    """Close a step: its time, the totals, and the listener (which stores and logs it)."""
    step.duration_s = time.monotonic() - started
    steps.append(step)
    usage.steps += 1
    usage.add(step)
    if on_step is not None:
        on_step(step, usage)
