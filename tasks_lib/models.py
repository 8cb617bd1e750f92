"""Pydantic models at the boundaries: the task request, the step log, the diff and the session."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from tasks_lib.environments.spec import EnvNames, NetworkSetting


class TaskRequest(BaseModel):
    """What a person asks for: instructions, an agent and a codebase (repository and branch)."""

    repository: str = Field(
        min_length=1,
        description="Local path or git URL (file://, https://, ssh://, git@host:org/repo.git).",
    )
    instructions: str = Field(min_length=1, description="What the agent should do, in plain words.")
    branch: str | None = Field(
        default=None, description="Branch to start from. Empty: the repository's default branch."
    )
    agent: str = Field(
        default="default", description="Name of a built-in agent (default) or a path to an agent file."
    )
    model: str | None = Field(
        default=None, description="litellm model string; overrides the agent's model, e.g. openai/gpt-4o."
    )
    reviewer: str | None = Field(default=None, description="Who reviews the result.")
    review: bool = Field(
        default=True,
        description="Wait for a reviewer's decision (accept, request changes, reject, retry) after the summary.",
    )
    trigger: dict[str, Any] | None = Field(
        default=None, description="The event that started this run (set by workflow triggers)."
    )
    on_accept: Literal["branch", "merge", "pull_request"] | None = Field(
        default=None,
        description="What accept does: 'branch' (default), 'merge' into the base branch, or 'pull_request'. "
        "Empty: the agent's setting.",
    )
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature; overrides the agent's (0 makes runs repeatable)."
    )
    sandbox: Literal["auto", "bwrap", "none"] | None = Field(
        default=None,
        description="How the agent's commands are confined: 'bwrap' (bubblewrap), 'none' (unconfined) or 'auto' "
        "(bwrap when installed). Empty: the agent's setting, else AGENT_TASKS_SANDBOX, else auto.",
    )
    network: NetworkSetting = Field(
        default=None, description="Let the agent's commands use the network. Empty: the agent's setting (default off)."
    )
    env: EnvNames = Field(
        default_factory=list,
        description="Names of environment variables passed to the agent's commands (their values are masked in logs).",
    )
    setup_command: str | None = Field(
        default=None,
        description="Runs in the sandbox with the network on before the agent starts (e.g. installing dependencies).",
    )
    shadow_builtins: bool = Field(
        default=False, description="Let the repository's agent file replace a built-in agent of the same name."
    )
    concurrency_key: str | None = Field(
        default=None, description="Runs with the same key take turns (e.g. an issue or the repository). Empty: "
        "the repository and issue number of the event that started the run, else no per-key limit.",
    )
    concurrency_limit: int = Field(default=1, ge=1, le=100, description="How many runs of the key may work at once.")
    cancel_superseded: bool = Field(
        default=False, description="Cancel the key's older unfinished runs (including ones waiting for review) first."
    )
    attempts: int = Field(
        default=1, ge=1, le=8, description="Best-of-N: how many attempts run at once, each in its own workspace, "
        "sharing the budget; the reviewer sees them ranked and accepts one.",
    )
    stop_at_first_green: bool = Field(
        default=False, description="With several attempts: stop the others as soon as one passes the agent's check."
    )

    @field_validator("repository", "instructions")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("branch", "model", "reviewer", "setup_command", "concurrency_key")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("agent")
    @classmethod
    def _agent_default(cls, value: str) -> str:
        return value.strip() or "default"

    @field_validator("sandbox", mode="before")
    @classmethod
    def _blank_sandbox(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def unattended(self) -> bool:
        """True for runs started by an event or a schedule rather than by a person."""
        return self.trigger is not None

    @property
    def event_started(self) -> bool:
        """True for runs started by an event (a webhook, a GitHub delivery), whose text anyone may have written."""
        return self.trigger is not None and self.trigger.get("event") != "schedule"


class SessionStatus(str, Enum):
    """Lifecycle of a session; every session ends in a terminal status with a reason."""

    pending = "pending"
    running = "running"
    completed = "completed"
    stopped = "stopped"
    failed = "failed"
    awaiting_review = "awaiting_review"
    delivering = "delivering"  # accepted by a reviewer; the commit is on its way to its target
    accepted = "accepted"
    rejected = "rejected"
    expired = "expired"
    cancelled = "cancelled"  # its flow run was cancelled in Prefect
    crashed = "crashed"  # its flow run crashed (process or worker died); the work so far is kept

    @property
    def terminal(self) -> bool:
        """True when the session will not change any more."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = {
    SessionStatus.completed,
    SessionStatus.stopped,
    SessionStatus.failed,
    SessionStatus.accepted,
    SessionStatus.rejected,
    SessionStatus.expired,
    SessionStatus.cancelled,
    SessionStatus.crashed,
}


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

    @property
    def is_limit(self) -> bool:
        """True when a budget, not the agent, ended the loop."""
        return self in {EndReason.max_steps, EndReason.wall_time, EndReason.max_cost, EndReason.max_tokens}

    @property
    def ended_early(self) -> bool:
        """True when the loop stopped the agent (a budget, or an agent going nowhere) rather than the agent finishing."""
        return self.is_limit or self in {EndReason.stuck, EndReason.malformed, EndReason.superseded}


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

    def plus(self, other: "Usage") -> "Usage":
        """The sum of two usages (e.g. earlier iterations and the current one)."""
        cost = None if self.cost_usd is None and other.cost_usd is None else (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
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


class Workspace(BaseModel):
    """Where a session works: an isolated worktree on its own branch."""

    path: str
    work_branch: str
    base_branch: str
    base_commit: str
    mirror: str
    mirror_action: str  # cloned | fetched | fresh (fetched earlier in this flow run)


class SessionResult(BaseModel):
    """What a finished run hands back."""

    session_id: str
    status: SessionStatus
    reason: str
    work_branch: str | None = None
    base_commit: str | None = None
    workspace: str | None = None
    diffstat: str | None = None
    summary: str | None = None
