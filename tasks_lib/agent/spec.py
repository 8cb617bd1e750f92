"""What an agent is: model, rules, tools, prompt, budgets and checks, as its file sets them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks_lib.agent.formats import FormatName
from tasks_lib.agent.policy import ToolPolicy
from tasks_lib.domain.egress import EgressLayer
from tasks_lib.domain.fields import EnvNames, NetworkSetting, OnAccept, SandboxKind
from tasks_lib.domain.ladder import EditFormatSetting, LoopSetting, ModelLadder
from tasks_lib.domain.limits import LimitsLayer
from tasks_lib.errors import AgentTasksError

# Fields that widen what an agent can reach (another model host, the network, the orchestrator's
# variables, no sandbox): an operator's choice, so a repository's own agent files may not set them.
OPERATOR_FIELDS = {
    "api_base": "it would send the model's key to another host",
    "sandbox": "only the operator chooses how agents are confined",
    "network": "only the operator opens the network to agents",
    "env": "only the operator passes variables to agents",
    "limits": "only the operator sets what an agent's commands may use",
    "egress": "only the operator says which hosts agents may reach",
    "setup_network": "only the operator opens the network to agents",
}
# Set by the loader, not by a file's front matter.
LOADER_FIELDS = ("prompt", "source", "file_format", "ignored_fields", "file_notes")


class AgentFileError(AgentTasksError, ValueError):
    """An agent file that cannot be used; the message names the file, the field and the problem."""


class AgentSpec(BaseModel):
    """Model, rules, tools, prompt, budgets and checks of an agent."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    model: str | None = None
    models: ModelLadder = None  # escalation: the models used in turn, the first to start (instead of model)
    tools: list[str] | str | dict[str, Any] | None = None
    rules: list[str] | str | None = None
    max_steps: int = Field(default=40, ge=1, le=10_000)
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, ge=1)
    timeout_minutes: float = Field(default=30, gt=0)
    check_command: str | None = None
    check_timeout_minutes: float = Field(default=10, gt=0)
    fix_until_green: int = Field(default=0, ge=0, le=20)
    context_window: int | None = Field(default=None, ge=1000)
    branch_prefix: str = "agent"
    on_accept: OnAccept = "branch"
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_reply_tokens: int | None = Field(default=None, ge=16)  # caps one reply (a small model may ramble for minutes)
    api_base: str | None = None
    sandbox: SandboxKind | None = None
    image: str | None = None  # sandbox: docker — the project image its commands run in (its toolchain)
    network: NetworkSetting = None
    env: EnvNames = Field(default_factory=list)
    setup_command: str | None = None
    setup_timeout_minutes: float = Field(default=15, gt=0)
    limits: LimitsLayer = None
    egress: EgressLayer = None
    setup_network: NetworkSetting = None
    workspace: Literal["auto", "read-only", "read-write"] = "auto"
    tool_protocol: Literal["auto", "native", "text"] = "auto"
    # edit: no tools, the model answers with whole files (small models); auto: chosen per model (agent/modes.py)
    loop: LoopSetting = "auto"
    edit_format: EditFormatSetting = "auto"  # whole: files are rewritten with write_file, no edit_file
    prompt: str = ""
    source: str = ""
    file_format: FormatName = "agent-tasks"
    ignored_fields: list[str] = Field(default_factory=list)  # fields of another tool's format with no meaning here
    file_notes: list[str] = Field(default_factory=list)  # how the file was read (a model alias, tools left out)

    @model_validator(mode="after")
    def _edit_loop_writes(self) -> AgentSpec:
        if self.loop == "edit" and self.workspace == "read-only":
            raise ValueError("loop: edit writes files, so the agent cannot have workspace: read-only")
        return self

    @field_validator("tools")
    @classmethod
    def _tools_readable(cls, value: Any) -> Any:
        ToolPolicy.parse(value)  # raises ValueError with the reason
        return value

    @property
    def rule_list(self) -> list[str]:
        """The rules as a list of strings."""
        if self.rules is None:
            return []
        return [self.rules] if isinstance(self.rules, str) else [r for r in self.rules if r]

    @property
    def policy(self) -> ToolPolicy:
        """Which tools this agent may use, and with which arguments (no writing tools on a read-only workspace)."""
        policy = ToolPolicy.parse(self.tools)
        if self.workspace == "read-only":
            policy = ToolPolicy(
                allowed={t: p for t, p in policy.allowed.items() if t not in ("edit_file", "write_file")}
            )
        elif self.edit_format == "whole" and "write_file" in policy.allowed:
            policy = ToolPolicy(allowed={t: p for t, p in policy.allowed.items() if t != "edit_file"})
        return policy

    @property
    def read_only_workspace(self) -> bool:
        """True when the sandbox mounts the workspace read-only: the agent says so, or it cannot write anyway.

        An agent without edit or write tools whose shell (if any) is limited to patterns is read-only by
        construction, so a pattern like `git diff*` cannot be turned into a write.
        """
        if self.workspace != "auto":
            return self.workspace == "read-only"
        if self.loop == "edit":
            return False
        allowed = ToolPolicy.parse(self.tools).allowed
        writes = "edit_file" in allowed or "write_file" in allowed
        return not writes and ("run_command" not in allowed or allowed["run_command"] is not None)

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The tools offered to the model."""
        return self.policy.tools


def settable_fields() -> list[str]:
    """The fields an agent file of our own format may set."""
    return [f for f in AgentSpec.model_fields if f not in LOADER_FIELDS]
