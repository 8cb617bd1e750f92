"""One reply's tool calls: run in order up to the first failure, with the answers and notes the model gets back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from tasks_lib.agent.context import MODEL_RESULT_CAP, OBSERVATION_HEADER, clip_middle
from tasks_lib.agent.model import ToolCall
from tasks_lib.agent.stuck import StuckDetector
from tasks_lib.agent.tool_calls import CALL_FORMAT, ReadCalls, ToolProtocol
from tasks_lib.agent.tools import Toolbox
from tasks_lib.domain.records import EndReason, StepRecord, ToolCallRecord

MAX_MALFORMED = 3  # consecutive replies without a usable tool call before the loop gives up


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


class Turn:
    """One reply's calls: run in order up to the first failure, then the answers and notes for the model."""

    def __init__(
        self,
        toolbox: Toolbox,
        options: LoopOptions,
        state: LoopState,
        stuck: StuckDetector,
        redact: Callable[[str], str],
    ):
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
                if outcome.ok and self._gave_up():
                    detail = "the agent finished again without changing a file after it was told nothing had changed"
                    return EndReason.gave_up, detail, outcome.output
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
                self._note(
                    step,
                    f"You are going round in circles: {circle}. Doing it again will not change "
                    "anything. Try a different approach, or call finish and say what blocks you.",
                )
        if finish:
            return EndReason.finished, "the agent called finish", finish
        if valid or finish == "":
            self.state.malformed_streak = 0
            return None
        if found.calls or found.problems:  # it tried, but nothing it wrote was a usable call
            self.state.malformed_streak += 1
            self.state.malformed_total += 1
            if found.problems:
                self._note(
                    step,
                    "Your reply had no tool call I could read: "
                    + "; ".join(found.problems)
                    + f". Reply with {CALL_FORMAT}",
                )
            if self.state.malformed_streak >= MAX_MALFORMED:
                return EndReason.malformed, (f"the model's last {MAX_MALFORMED} replies held no usable tool call"), None
            return None
        reminder = self._empty_diff_reminder("You replied without calling a tool", "reminded_silent")
        if reminder:
            self._note(step, reminder + f" To use a tool, reply with {CALL_FORMAT}")
            return None
        return EndReason.no_tool_call, "the model answered without calling a tool", step.text

    def _gave_up(self) -> bool:
        """True for a second finish of an agent expected to change files, with still nothing changed."""
        return self.options.expects_changes and self.state.reminded_finish and not self.toolbox.has_changes()

    def _empty_diff_reminder(self, what: str, once: str) -> str | None:
        """Once per loop and kind, for an agent expected to change files: a reminder when nothing has changed yet."""
        if not self.options.expects_changes or getattr(self.state, once) or self.toolbox.has_changes():
            return None
        setattr(self.state, once, True)
        return (
            f"{what}, but no file has been changed yet. If the task needs a change, make it with the tools "
            "first; if it really needs none, call finish again and say why."
        )

    def _answer(
        self,
        step: StepRecord,
        call: ToolCall,
        text: str,
        ok: bool,
        started: float,
        denied: bool = False,
        skipped: bool = False,
    ) -> None:
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
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": clip_middle(text, MODEL_RESULT_CAP)}
                )
            if self.notes:
                messages.append({"role": "user", "content": "\n\n".join(self.notes)})
            return
        parts = [
            f"{call.name}({_short(call.arguments)}):\n{clip_middle(text, MODEL_RESULT_CAP)}"
            for call, text in self.answers
        ]
        if parts:
            messages.append({"role": "user", "content": "\n\n".join([OBSERVATION_HEADER, *parts, *self.notes])})
        elif self.notes:
            messages.append({"role": "user", "content": "\n\n".join(self.notes)})


def _short(arguments: str) -> str:
    return arguments if len(arguments) <= 120 else arguments[:117] + "..."


def _call_record(
    call, output: str, ok: bool, started: float, redact: Callable[[str], str], denied: bool
) -> ToolCallRecord:
    try:
        arguments: dict[str, Any] | str = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        arguments = call.arguments
    if isinstance(arguments, dict):
        arguments = {k: redact(v) if isinstance(v, str) else v for k, v in arguments.items()}
    else:
        arguments = redact(str(arguments))
    return ToolCallRecord(
        id=call.id,
        name=call.name,
        arguments=arguments,
        result=redact(output),
        ok=ok,
        denied=denied,
        duration_s=time.monotonic() - started,
    )
