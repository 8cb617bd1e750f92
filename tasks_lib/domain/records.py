"""What a session records: the agent loop's steps and usage, the diff, the check."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


def files_stat(files: int, added: int, removed: int) -> str:
    """A short diffstat for headings, e.g. '1 file, +3 −1'."""
    return f"{files} file{'' if files == 1 else 's'}, +{added} −{removed}"


class EndReason(str, Enum):
    """Why the agent loop stopped."""

    finished = "finished"
    no_tool_call = "no_tool_call"
    max_steps = "max_steps"
    wall_time = "wall_time"
    max_cost = "max_cost"
    max_tokens = "max_tokens"
    model_error = "model_error"
    crashed = "crashed"
    stuck = "stuck"  # the agent repeated itself after being told to stop
    malformed = "malformed"  # the model's replies held no usable tool call, several times in a row
    superseded = "superseded"  # best-of-N: another attempt passed its check first
    gave_up = "gave_up"  # finished again without changing a file after being told nothing had changed

    @property
    def is_limit(self) -> bool:
        """True when a budget, not the agent, ended the loop."""
        return self in {EndReason.max_steps, EndReason.wall_time, EndReason.max_cost, EndReason.max_tokens}

    @property
    def ended_early(self) -> bool:
        """True when the loop stopped the agent (a budget, or an agent going nowhere) rather than the agent finishing."""
        return self.is_limit or self in {EndReason.stuck, EndReason.malformed, EndReason.superseded, EndReason.gave_up}


class ToolCallRecord(BaseModel):
    """One tool call the model made and what it got back."""

    id: str
    name: str
    arguments: dict[str, Any] | str
    result: str = ""
    ok: bool = True
    denied: bool = False
    skipped: bool = False  # not run: an earlier call of the same reply failed, or finish came first
    duration_s: float = 0.0


class StepRecord(BaseModel):
    """One turn of the loop: a model call and the tool calls it asked for."""

    index: int
    iteration: int = 1
    attempt: int | None = None  # best-of-N: which attempt made this step
    model: str | None = None  # the model that took this step (escalation: several in one session)
    started_at: datetime
    duration_s: float = 0.0
    model_latency_s: float = 0.0
    text: str = ""
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    retries: int = 0
    compacted: int = 0  # old tool outputs shortened before this step to fit the context window
    calls_from_text: bool = False  # the model wrote its calls in its text rather than as native tool calls
    notes: list[str] = Field(default_factory=list)  # what the loop told the model besides tool results
    error: str | None = None


class Usage(BaseModel):
    """Token and cost totals of a session."""

    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    model_calls: int = 0

    def plus(self, other: Usage) -> Usage:
        """The sum of two usages (e.g. earlier iterations and the current one)."""
        cost = (
            None
            if self.cost_usd is None and other.cost_usd is None
            else (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        )
        return Usage(
            steps=self.steps + other.steps,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cost_usd=cost,
            model_calls=self.model_calls + other.model_calls,
        )

    def add(self, step: StepRecord) -> None:
        """Add one step's usage to the totals."""
        self.prompt_tokens += step.prompt_tokens
        self.completion_tokens += step.completion_tokens
        self.cached_tokens += step.cached_tokens
        if step.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + step.cost_usd


class FileChange(BaseModel):
    """Per-file statistics of a diff."""

    path: str
    old_path: str | None = None
    kind: str  # added | deleted | modified | renamed
    added: int = 0
    removed: int = 0
    binary: bool = False
    patch_bytes: int = 0  # length of this file's part of the full patch
    stats_only: bool = False  # its patch was over the limits: left out of the stored patch


class DiffResult(BaseModel):
    """The workspace's full change against the base commit."""

    base_commit: str
    files: list[FileChange] = Field(default_factory=list)
    added: int = 0
    removed: int = 0
    patch: bytes = b""
    trimmed: str | None = None  # one line for people when the patch leaves files out (shown as stats only)
    left_out: list[str] = Field(default_factory=list)  # untracked directories left out by default (node_modules/, ...)

    @property
    def patch_text(self) -> str:
        """The patch as text for display (undecodable bytes replaced)."""
        return self.patch.decode("utf-8", errors="replace")

    @property
    def empty(self) -> bool:
        """True when the agent changed nothing."""
        return not self.files

    def diffstat(self) -> str:
        """A short human diffstat, e.g. '3 files changed, +10 -2'."""
        n = len(self.files)
        return f"{n} file{'s' if n != 1 else ''} changed, +{self.added} -{self.removed}"


class CheckResult(BaseModel):
    """Pass or fail of a check, how long it took and the end of its output."""

    command: str
    passed: bool
    exit_code: int | None
    duration_s: float
    timed_out: bool = False
    output_tail: str = ""
    fix_rounds: int = 0
    limit: str | None = None  # the limit that stopped it, when one did
    blocked: list[str] = Field(default_factory=list)  # requests the egress proxy refused

    def headline(self) -> str:
        """One line: the command, the verdict and the time."""
        if self.limit:
            verdict = f"killed ({self.limit})"
        elif self.timed_out:
            verdict = "timed out"
        else:
            verdict = "passed" if self.passed else f"failed (exit {self.exit_code})"
        rounds = f" after {self.fix_rounds} fix round{'s' if self.fix_rounds != 1 else ''}" if self.fix_rounds else ""
        return f"`{self.command}` {verdict} in {self.duration_s:.1f} s{rounds}"
