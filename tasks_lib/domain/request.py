"""What a person asks for: the task request, as the run form, the CLI, workflows and the API give it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from tasks_lib.domain.checks import HiddenCheck
from tasks_lib.domain.egress import EgressLayer
from tasks_lib.domain.fields import EnvNames, NetworkSetting, OnAccept, SandboxKind
from tasks_lib.domain.ladder import ModelLadder
from tasks_lib.domain.limits import LimitsLayer
from tasks_lib.domain.words import plain
from tasks_lib.errors import AgentTasksError


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
    agent: str = Field(default="default", description="Name of a built-in agent (default) or a path to an agent file.")
    model: str | None = Field(
        default=None, description="litellm model string; overrides the agent's model, e.g. openai/gpt-4o."
    )
    models: ModelLadder = Field(
        default=None,
        description="Models used in turn (escalation): the session starts with the first and, when its check "
        "still fails or its loop ends stuck, goes on with the next from the same workspace, within the budget. "
        "Each a model string or {model, temperature, max_reply_tokens, loop, edit_format, start}; start: fresh "
        "begins that model from the files as they were, keeping the better of the two attempts. Overrides model.",
    )
    reviewer: str | None = Field(default=None, description="Who reviews the result.")
    review: bool = Field(
        default=True,
        description="Wait for a reviewer's decision (accept, request changes, reject, retry) after the summary.",
    )
    trigger: dict[str, Any] | None = Field(
        default=None, description="The event that started this run (set by workflow triggers)."
    )
    on_accept: OnAccept | None = Field(
        default=None,
        description="What accept does: 'branch' (default), 'merge' into the base branch, or 'pull_request'. "
        "Empty: the agent's setting.",
    )
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature; overrides the agent's (0 makes runs repeatable)."
    )
    sandbox: SandboxKind | None = Field(
        default=None,
        description="How the agent's commands are confined: 'bwrap' (bubblewrap), 'docker' (a container of the "
        "image below), 'none' (unconfined) or 'auto' (bwrap when installed). Empty: the agent's setting, else "
        "AGENT_TASKS_SANDBOX, else auto.",
    )
    image: str | None = Field(
        default=None,
        description="With sandbox docker: the image the commands run in (the project's toolchain). Empty: the "
        "agent's, else AGENT_TASKS_DOCKER_IMAGE.",
    )
    network: NetworkSetting = Field(
        default=None,
        description="What the agent's commands may reach: off, allow (only the hosts in egress, through the "
        "egress proxy) or on (everything the worker reaches). Empty: the agent's setting (default off).",
    )
    egress: EgressLayer = Field(
        default=None,
        description="With network allow: {allow: [hosts], deny: [hosts], presets: [python, node, debian, rust, go], "
        "methods: read-only}; added to the workflow's and the agent's.",
    )
    setup_network: NetworkSetting = Field(
        default=None, description="The setup command's network: allow (default: the registries it needs) or on."
    )
    env: EnvNames = Field(
        default_factory=list,
        description="Names of environment variables passed to the agent's commands (their values are masked in logs).",
    )
    setup_command: str | None = Field(
        default=None,
        description="Runs in the sandbox before the agent starts (e.g. installing dependencies), reaching the "
        "package registries its repository uses (setup_network: on for everything).",
    )
    limits: LimitsLayer = Field(
        default=None,
        description="What the agent's commands may use, e.g. {memory: 2GiB, processes: 512}; fields left out keep "
        "the agent's, then AGENT_TASKS_LIMITS, then the defaults (4 GiB, 1,024 processes, 30 min CPU, 1 GiB files).",
    )
    hidden_check: HiddenCheck | None = Field(
        default=None,
        description="Acceptance tests the agent must pass but may not read or change: {command, files (a folder on "
        "the worker laid over a copy of the workspace), fix_rounds}. Replaces the agent's check_command.",
    )
    shadow_builtins: bool = Field(
        default=False, description="Let the repository's agent file replace a built-in agent of the same name."
    )
    concurrency_key: str | None = Field(
        default=None,
        description="Runs with the same key take turns (e.g. an issue or the repository). Empty: "
        "the repository and issue number of the event that started the run, else no per-key limit.",
    )
    concurrency_limit: int = Field(default=1, ge=1, le=100, description="How many runs of the key may work at once.")
    cancel_superseded: bool = Field(
        default=False, description="Cancel the key's older unfinished runs (including ones waiting for review) first."
    )
    attempts: int = Field(
        default=1,
        ge=1,
        le=8,
        description="Best-of-N: how many attempts run at once, each in its own workspace, "
        "sharing the budget; the reviewer sees them ranked and accepts one.",
    )
    stop_at_first_green: bool = Field(
        default=False, description="With several attempts: stop the others as soon as one passes the agent's check."
    )
    independent_review: bool | None = Field(
        default=None,
        description="The person who started the session may not accept it (someone else or an admin must). "
        "Empty: true for sessions started by an event, false otherwise.",
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

    @field_validator("sandbox", "image", mode="before")
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

    @property
    def needs_independent_review(self) -> bool:
        """Whether the person who started the session is barred from accepting it (see independent_review)."""
        return self.event_started if self.independent_review is None else self.independent_review


def needs_independent_review(request: dict[str, Any] | None) -> bool:
    """`TaskRequest.needs_independent_review` of a stored request (tolerant of requests older releases kept)."""
    request = request or {}
    value = request.get("independent_review")
    if value is None:
        trigger = request.get("trigger")
        return isinstance(trigger, dict) and trigger.get("event") != "schedule"
    return bool(value)


def trigger_line(trigger: dict[str, Any]) -> str:
    """The event that started a session, in one line."""
    parts = [str(trigger.get("event") or "an event")]
    if trigger.get("title"):
        parts.append(f"“{trigger['title']}”")
    if trigger.get("url"):
        parts.append(str(trigger["url"]))
    return " ".join(parts)


class BadRequest(AgentTasksError, ValueError):
    """Input that cannot start a session (bad agent file, no model, unknown model, empty task...)."""


def parse_request(raw: TaskRequest | dict[str, Any]) -> TaskRequest:
    """The request as a validated model; BadRequest names the field that is wrong."""
    if isinstance(raw, TaskRequest):
        return raw
    try:
        return TaskRequest.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "request"
        raise BadRequest(f"{field}: {plain(err['msg'])}") from None
