"""Best-of-N: several attempts at one iteration, each in its own workspace, one budget, ranked for the reviewer.

Ranking, best first: the agent's check passed, then fewer failing tests, then the change more attempts
arrived at (identical diffs are one group; a majority counts), then a smaller diff, then fewer steps.
An attempt whose loop failed (model error, crash) ranks after every attempt that finished.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time

from pydantic import BaseModel, Field

from tasks_lib.agent.loop import Limits, limit_reached
from tasks_lib.models import EndReason, Usage

_FAILING = [  # how test runners report failures in their closing lines: (pattern, groups that add up)
    re.compile(r"\b(\d+) (?:failed|errors?)\b"),  # pytest: "2 failed, 3 passed", "1 error"
    re.compile(r"FAILED \((?:failures|errors)=(\d+)(?:, (?:failures|errors)=(\d+))?\)"),  # unittest
    re.compile(r"Tests:\s+(\d+) failed"),  # jest
    re.compile(r"(\d+) failing\b"),  # mocha
]


def failing_tests(output: str) -> int | None:
    """How many tests a check's output reports failing, when it says (pytest, unittest, jest, mocha); else None."""
    tail = "\n".join(output.strip().splitlines()[-15:])
    counts = [sum(int(g) for g in match.groups() if g) for pattern in _FAILING for match in pattern.finditer(tail)]
    return max(counts) if counts else None


class Candidate(BaseModel):
    """One attempt's result as the reviewer weighs it."""

    attempt: int
    end_reason: str
    detail: str = ""
    summary: str = ""  # the agent's own finish summary
    steps: int = 0
    check_passed: bool | None = None  # None: the agent has no check
    failing_tests: int | None = None
    files: int = 0
    added: int = 0
    removed: int = 0
    diff_sha: str = ""
    same_as: list[int] = Field(default_factory=list)  # the other attempts that made exactly this change
    rank: int = 0
    why: str = ""

    @property
    def failed(self) -> bool:
        """True when the attempt's loop broke down (a model error or a crash) rather than finishing or hitting a limit."""
        return self.end_reason in (EndReason.model_error.value, EndReason.crashed.value)

    @property
    def lines(self) -> int:
        """Lines added plus removed."""
        return self.added + self.removed

    def headline(self) -> str:
        """One line: rank, attempt and why it ranks there."""
        return f"#{self.rank} attempt {self.attempt}: {self.why}"


def diff_sha(patch: bytes) -> str:
    """A fingerprint of a change: equal for attempts that made exactly the same diff."""
    return hashlib.sha256(patch).hexdigest()[:16] if patch else "empty"


def rank_candidates(candidates: list[Candidate]) -> list[Candidate]:
    """The candidates best first, each with its rank, the attempts it agrees with, and why it ranks there."""
    groups: dict[str, list[int]] = {}
    for c in candidates:
        groups.setdefault(c.diff_sha, []).append(c.attempt)
    for c in candidates:
        c.same_as = [a for a in groups[c.diff_sha] if a != c.attempt]

    def key(c: Candidate) -> tuple:
        check = 0 if c.check_passed else 1 if c.check_passed is None else 2
        failing = c.failing_tests if c.failing_tests is not None else (0 if c.check_passed is not False else 10**6)
        empty = c.diff_sha == "empty"
        return (c.failed, empty, check, failing, -len(groups[c.diff_sha]), c.lines, c.steps, c.attempt)

    ranked = sorted(candidates, key=key)
    for position, c in enumerate(ranked, 1):
        c.rank = position
        c.why = _why(c, len(candidates))
    return ranked


def _why(c: Candidate, total: int) -> str:
    parts = []
    if c.failed:
        parts.append(f"its loop failed ({c.end_reason})")
    elif c.diff_sha == "empty":
        parts.append("changed nothing")
    if c.check_passed is True:
        parts.append("check passed")
    elif c.check_passed is False:
        failing = f", {c.failing_tests} failing test{'s' if c.failing_tests != 1 else ''}" if c.failing_tests is not None else ""
        parts.append(f"check failed{failing}")
    else:
        parts.append("no check")
    if c.same_as:
        parts.append(f"{len(c.same_as) + 1} of {total} attempts made this same change")
    parts.append(f"{c.files} file{'s' if c.files != 1 else ''} +{c.added} −{c.removed}")
    parts.append(f"{c.steps} step{'s' if c.steps != 1 else ''}")
    if c.end_reason == EndReason.superseded.value:
        parts.append("stopped: another attempt passed its check first")
    elif c.end_reason not in (EndReason.finished.value, EndReason.no_tool_call.value) and not c.failed:
        parts.append(f"ended: {c.end_reason}")
    return " · ".join(parts)


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
