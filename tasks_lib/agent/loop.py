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

from tasks_lib.agent.model import Model, ModelError, ModelReply, ToolCall
from tasks_lib.agent.stuck import StuckDetector
from tasks_lib.agent.tool_calls import CALL_FORMAT, ReadCalls, ToolProtocol, read_calls
from tasks_lib.agent.tools import Toolbox
from tasks_lib.domain.records import EndReason, StepRecord, ToolCallRecord, Usage

MODEL_RESULT_CAP = 12_000  # characters of one tool result the model sees (head and tail kept)
CHARS_PER_TOKEN = 4  # for estimating a conversation's size against the context window
COMPACT_KEEP_RECENT = 2  # the latest tool outputs are never shortened
COMPACT_TO = 600  # characters an old tool output keeps when shortened
COMPACTED_MARK = "[... older tool output shortened to fit the context window:"
OBSERVATION_HEADER = "Results of your tool calls:"
MAX_MALFORMED = 3  # consecutive replies without a usable tool call before the loop gives up


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


def clip_middle(text: str, cap: int) -> str:
    """Keep the head and tail of a long text, with a note of what was cut."""
    if len(text) <= cap:
        return text
    half = cap // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """A rough token count of a conversation (characters / 4)."""
    return len(json.dumps(messages)) // CHARS_PER_TOKEN


def is_observation(message: dict[str, Any]) -> bool:
    """True for a message carrying tool results (a tool message, or the user message of text-protocol results)."""
    role, content = message.get("role"), str(message.get("content") or "")
    return role == "tool" or (role == "user" and content.startswith(OBSERVATION_HEADER))


def compact_messages(messages: list[dict[str, Any]], budget_tokens: int, tokens_now: int | None = None) -> int:
    """Make the conversation fit ``budget_tokens`` by cutting old tool outputs, oldest first.

    ``tokens_now`` is the conversation's size as the provider counted it (estimated when unknown); what
    a cut saves is converted to tokens at the conversation's own characters-per-token rate.
    Passes, each only while the conversation is still too big: shorten older outputs to their head
    and tail; then reduce them to a one-line note; then shorten all but the newest output. The
    newest output is kept whole. Returns how many outputs were changed.
    """
    chars = len(json.dumps(messages))
    tokens = tokens_now if tokens_now else chars // CHARS_PER_TOKEN
    per_token = chars / max(tokens, 1)
    changed = 0
    tool_indexes = [i for i, m in enumerate(messages) if is_observation(m)]
    older = tool_indexes[:-COMPACT_KEEP_RECENT] if len(tool_indexes) > COMPACT_KEEP_RECENT else []
    passes = [(older, COMPACT_TO), (older, 0), (tool_indexes[:-1], COMPACT_TO)]
    for indexes, keep in passes:
        for i in indexes:
            if tokens <= budget_tokens:
                return changed
            content = str(messages[i].get("content") or "")
            new = _shorten(content, keep)
            if new != content:
                messages[i] = {**messages[i], "content": new}
                tokens -= int((len(content) - len(new)) / per_token)
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


class LoopOptions(BaseModel):
    """How the loop talks to the model and what it expects of the agent."""

    protocol: ToolProtocol = "auto"  # native tool calls, calls written in text, or native when present
    expects_changes: bool = False  # a writing agent: a finish (or a silent reply) with nothing changed gets a reminder


class LoopState(BaseModel):
    """What the loop remembers across replies about how the agent is doing."""

    malformed_streak: int = 0  # replies in a row without a usable call
    malformed_total: int = 0
    reminded_finish: bool = False  # the empty-diff reminder was given for a finish
    reminded_silent: bool = False  # ... and for a reply without a call
    nudged: bool = False  # told it was going round in circles
    stuck_events: int = 0


class ContextMeter:
    """The conversation's size in tokens, from the provider's count of the last prompt plus what came since."""

    def __init__(self) -> None:
        self.counted = 0  # prompt + completion tokens of the last reply, as the provider reported them
        self.mark = 0  # messages covered by that count

    def after_reply(self, reply: ModelReply, messages: list[dict[str, Any]]) -> None:
        """Take the provider's count once the reply is in the conversation."""
        if reply.prompt_tokens:
            self.counted, self.mark = reply.prompt_tokens + reply.completion_tokens, len(messages)

    def tokens(self, messages: list[dict[str, Any]]) -> int:
        """The size of the conversation now (estimated only for what the provider has not counted yet)."""
        if not self.counted or self.mark > len(messages):
            return estimate_tokens(messages)
        return self.counted + estimate_tokens(messages[self.mark:])


def ask(model: Model, messages: list[dict[str, Any]], schemas: list[dict[str, Any]] | None, step: StepRecord,
        tokens_now: int) -> ModelReply:
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
        step.notes.append(f"the provider said the context was too long: shortened {cut} old tool outputs and asked again")
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
            end_reason=reason, detail=redact(detail), finish_summary=redact(summary) if summary is not None else None,
            steps=steps, usage=usage, messages=messages, duration_s=time.monotonic() - started,
            stuck_events=state.stuck_events, malformed_replies=state.malformed_total,
        )

    while True:
        limit = limit_reached(limits, usage, time.monotonic() - started) or (stop() if stop else None)
        if limit:
            return done(*limit)
        step = StepRecord(index=first_index + usage.steps, started_at=datetime.now(timezone.utc))
        step_started = time.monotonic()
        tokens_now = meter.tokens(messages)
        if limits.context_tokens:
            step.compacted = compact_messages(messages, limits.context_tokens, tokens_now)
        try:
            reply = ask(model, messages, schemas, step, tokens_now)
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
        found = read_calls(reply, options.protocol, signatures)
        step.calls_from_text = found.from_text and bool(found.calls)
        messages.append(reply.assistant_message() if not found.from_text else {"role": "assistant", "content": reply.text})
        meter.after_reply(reply, messages)

        turn = Turn(toolbox, options, state, stuck, redact)
        ending = turn.run(found, step)
        turn.answer(messages, found)
        _record(step, step_started, steps, usage, on_step)
        if ending is not None:
            return done(*ending)


class Turn:
    """One reply's calls: run in order up to the first failure, then the answers and notes for the model."""

    def __init__(self, toolbox: Toolbox, options: LoopOptions, state: LoopState, stuck: StuckDetector,
                 redact: Callable[[str], str]):
        self.toolbox, self.options, self.state, self.stuck, self.redact = toolbox, options, state, stuck, redact
        self.answers: list[tuple[ToolCall, str]] = []  # what each call gets back, in order
        self.notes: list[str] = []  # told to the model after the results

    def run(self, found: ReadCalls, step: StepRecord) -> tuple[EndReason, str, str | None] | None:
        """Carry out the calls; returns how the loop ends, or None to go on."""
        failed: str | None = None
        finish: str | None = None
        valid = False
        for number, call in enumerate(found.calls, start=1):
            call_started = time.monotonic()
            if failed or finish is not None:
                why = f"an earlier call in this reply failed ({failed})" if failed else "finish came before it"
                text = f"skipped: not run because {why}. Run one call at a time and look at its result first."
                if call.name == "finish" and failed:
                    text = f"finish was not accepted: {failed} in this reply. Fix that first, then call finish."
                self._answer(step, call, text, ok=False, started=call_started, skipped=True)
                continue
            if call.name == "finish" and "finish" in self.toolbox.tools:
                valid = True
                reminder = self._empty_diff_reminder("You called finish", "reminded_finish")
                if reminder:
                    self._answer(step, call, reminder, ok=False, started=call_started)
                    finish = ""  # later calls are skipped; the loop goes on
                    continue
                outcome = self.toolbox.execute(call.name, call.arguments)
                self._answer(step, call, outcome.output, outcome.ok, call_started, denied=outcome.denied)
                if outcome.ok:
                    finish = outcome.output
                else:
                    failed = f"call {number}, finish, failed"
                continue
            outcome = self.toolbox.execute(call.name, call.arguments)
            valid = valid or not outcome.invalid
            self._answer(step, call, outcome.output, outcome.ok, call_started, denied=outcome.denied)
            if not outcome.ok:
                failed = f"call {number}, {call.name}, failed"
            circle = self.stuck.see(call.name, call.arguments, outcome.output)
            if circle:
                self.state.stuck_events += 1
                if self.state.nudged:
                    self._note(step, f"stopped: {circle}, again after a warning")
                    return EndReason.stuck, f"the agent was going round in circles: {circle}", None
                self.state.nudged = True
                self._note(step, f"You are going round in circles: {circle}. Doing it again will not change "
                                 "anything. Try a different approach, or call finish and say what blocks you.")
        if finish:
            return EndReason.finished, "the agent called finish", finish
        if valid or finish == "":
            self.state.malformed_streak = 0
            return None
        if found.calls or found.problems:  # it tried, but nothing it wrote was a usable call
            self.state.malformed_streak += 1
            self.state.malformed_total += 1
            if found.problems:
                self._note(step, "Your reply had no tool call I could read: " + "; ".join(found.problems)
                           + f". Reply with {CALL_FORMAT}")
            if self.state.malformed_streak >= MAX_MALFORMED:
                return EndReason.malformed, (f"the model's last {MAX_MALFORMED} replies held no usable tool call"), None
            return None
        reminder = self._empty_diff_reminder("You replied without calling a tool", "reminded_silent")
        if reminder:
            self._note(step, reminder + f" To use a tool, reply with {CALL_FORMAT}")
            return None
        return EndReason.no_tool_call, "the model answered without calling a tool", step.text

    def _empty_diff_reminder(self, what: str, once: str) -> str | None:
        """Once per loop and kind, for an agent expected to change files: a reminder when nothing has changed yet."""
        if not self.options.expects_changes or getattr(self.state, once) or self.toolbox.has_changes():
            return None
        setattr(self.state, once, True)
        return (f"{what}, but no file has been changed yet. If the task needs a change, make it with the tools "
                "first; if it really needs none, call finish again and say why.")

    def _answer(self, step: StepRecord, call: ToolCall, text: str, ok: bool, started: float, denied: bool = False,
                skipped: bool = False) -> None:
        self.answers.append((call, text))
        record = _call_record(call, text, ok, started, self.redact, denied)
        record.skipped = skipped
        step.tool_calls.append(record)

    def _note(self, step: StepRecord, text: str) -> None:
        self.notes.append(text)
        step.notes.append(self.redact(text))

    def answer(self, messages: list[dict[str, Any]], found: ReadCalls) -> None:
        """Append the results (as tool messages, or one user message for calls written in text) and the notes."""
        if not found.from_text:
            for call, text in self.answers:
                messages.append({"role": "tool", "tool_call_id": call.id, "content": clip_middle(text, MODEL_RESULT_CAP)})
            if self.notes:
                messages.append({"role": "user", "content": "\n\n".join(self.notes)})
            return
        parts = [f"{call.name}({_short(call.arguments)}):\n{clip_middle(text, MODEL_RESULT_CAP)}" for call, text in self.answers]
        if parts:
            messages.append({"role": "user", "content": "\n\n".join([OBSERVATION_HEADER, *parts, *self.notes])})
        elif self.notes:
            messages.append({"role": "user", "content": "\n\n".join(self.notes)})


def _short(arguments: str) -> str:
    return arguments if len(arguments) <= 120 else arguments[:117] + "..."


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
