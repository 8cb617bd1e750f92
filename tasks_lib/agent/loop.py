"""The agent loop: ask the model, run the tools it calls, repeat until it finishes or a limit is hit.

Plain Python with no Prefect in it, so it can be run, tested and benchmarked bare.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from tasks_lib.agent.model import Model, ModelError
from tasks_lib.models import EndReason, StepRecord, ToolCallRecord, Usage
from tasks_lib.agent.tools import Toolbox

MODEL_RESULT_CAP = 12_000  # characters of one tool result the model sees (head and tail kept)
CHARS_PER_TOKEN = 4  # for estimating a conversation's size against the context window
COMPACT_KEEP_RECENT = 2  # the latest tool outputs are never shortened
COMPACT_TO = 600  # characters an old tool output keeps when shortened
COMPACTED_MARK = "[... older tool output shortened to fit the context window:"


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


def clip_middle(text: str, cap: int) -> str:
    """Keep the head and tail of a long text, with a note of what was cut."""
    if len(text) <= cap:
        return text
    half = cap // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """A rough token count of a conversation (characters / 4)."""
    return len(json.dumps(messages)) // CHARS_PER_TOKEN


def compact_messages(messages: list[dict[str, Any]], budget_tokens: int) -> int:
    """Make the conversation fit ``budget_tokens`` by cutting old tool outputs, oldest first.

    Passes, each only while the conversation is still too big: shorten older outputs to their head
    and tail; then reduce them to a one-line note; then shorten all but the newest output. The
    newest output is kept whole. Returns how many outputs were changed.
    """
    changed = 0
    tool_indexes = [i for i, m in enumerate(messages) if m.get("role") == "tool"]
    older = tool_indexes[:-COMPACT_KEEP_RECENT] if len(tool_indexes) > COMPACT_KEEP_RECENT else []
    passes = [(older, COMPACT_TO), (older, 0), (tool_indexes[:-1], COMPACT_TO)]
    for indexes, keep in passes:
        for i in indexes:
            if estimate_tokens(messages) <= budget_tokens:
                return changed
            content = str(messages[i].get("content") or "")
            new = _shorten(content, keep)
            if new != content:
                messages[i] = {**messages[i], "content": new}
                changed += 1
    return changed


def _shorten(content: str, keep: int) -> str:
    """The content cut to ``keep`` characters (head and tail) with a note; 0 leaves only the note."""
    if keep == 0:
        return content if content.startswith(COMPACTED_MARK) else f"{COMPACTED_MARK} all {len(content)} characters removed ...]"
    if COMPACTED_MARK in content or len(content) <= keep + 200:
        return content
    half = keep // 2
    return content[:half] + f"\n{COMPACTED_MARK} {len(content) - 2 * half} of {len(content)} characters cut ...]\n" + content[-half:]


def _limit_reached(limits: Limits, usage: Usage, elapsed: float) -> tuple[EndReason, str] | None:
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


def run_agent_loop(
    model: Model,
    toolbox: Toolbox,
    messages: list[dict[str, Any]],
    limits: Limits,
    on_step: Callable[[StepRecord, Usage], None] | None = None,
    redact: Callable[[str], str] = lambda s: s,
    first_index: int = 1,
) -> LoopResult:
    """Run the loop on ``messages`` (system prompt and task) until the model finishes or a limit ends it.

    Steps are numbered from ``first_index`` (a continuation of the same iteration goes on counting).
    """
    started = time.monotonic()
    usage = Usage()
    steps: list[StepRecord] = []
    schemas = toolbox.schemas()

    def done(reason: EndReason, detail: str = "", summary: str | None = None) -> LoopResult:
        return LoopResult(
            end_reason=reason,
            detail=redact(detail),
            finish_summary=redact(summary) if summary is not None else None,
            steps=steps,
            usage=usage,
            messages=messages,
            duration_s=time.monotonic() - started,
        )

    while True:
        limit = _limit_reached(limits, usage, time.monotonic() - started)
        if limit:
            return done(*limit)
        step = StepRecord(index=first_index + usage.steps, started_at=datetime.now(timezone.utc))
        step_started = time.monotonic()
        if limits.context_tokens:
            step.compacted = compact_messages(messages, limits.context_tokens)
        try:
            reply = model.query(messages, schemas)
        except ModelError as exc:
            step.error, step.retries = redact(str(exc)), exc.retries
            _record(step, step_started, steps, usage, on_step)
            return done(EndReason.model_error, str(exc))
        except Exception as exc:  # a bug or an unexpected library failure: end cleanly, keep the work
            step.error = redact(f"{type(exc).__name__}: {exc}")
            _record(step, step_started, steps, usage, on_step)
            return done(EndReason.crashed, f"{type(exc).__name__}: {exc}")
        usage.model_calls += 1
        step.text = redact(reply.text)
        step.model_latency_s, step.retries = reply.latency_s, reply.retries
        step.prompt_tokens, step.completion_tokens = reply.prompt_tokens, reply.completion_tokens
        step.cached_tokens, step.cost_usd = reply.cached_tokens, reply.cost_usd
        messages.append(reply.assistant_message())

        finish_summary = None
        for call in reply.tool_calls:
            call_started = time.monotonic()
            try:
                outcome = toolbox.execute(call.name, call.arguments)
            except Exception as exc:  # tools report their own errors; this is a bug in a tool
                step.tool_calls.append(_call_record(call, f"error: {exc}", False, call_started, redact, False))
                _record(step, step_started, steps, usage, on_step)
                return done(EndReason.crashed, f"tool {call.name} crashed: {type(exc).__name__}: {exc}")
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "content": clip_middle(outcome.output, MODEL_RESULT_CAP)}
            )
            step.tool_calls.append(_call_record(call, outcome.output, outcome.ok, call_started, redact, outcome.denied))
            if outcome.finished:
                finish_summary = outcome.output
        _record(step, step_started, steps, usage, on_step)

        if finish_summary is not None:
            return done(EndReason.finished, "the agent called finish", finish_summary)
        if not reply.tool_calls:
            return done(EndReason.no_tool_call, "the model answered without calling a tool", reply.text)


def _call_record(call, output: str, ok: bool, started: float, redact: Callable[[str], str], denied: bool) -> ToolCallRecord:
    try:
        arguments: dict[str, Any] | str = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        arguments = call.arguments
    if isinstance(arguments, dict):
        arguments = {k: redact(v) if isinstance(v, str) else v for k, v in arguments.items()}
    else:
        arguments = redact(str(arguments))
    return ToolCallRecord(
        id=call.id, name=call.name, arguments=arguments, result=redact(output), ok=ok, denied=denied,
        duration_s=time.monotonic() - started,
    )


def _record(step: StepRecord, started: float, steps: list[StepRecord], usage: Usage, on_step) -> None:
    step.duration_s = time.monotonic() - started
    steps.append(step)
    usage.steps += 1
    usage.add(step)
    if on_step is not None:
        on_step(step, usage)
