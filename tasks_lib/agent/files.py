"""Agents as files: Markdown with a YAML front matter (settings), whose body is the prompt.

Continue's `.continue/agents/*.md` files load unchanged: their `name`, `description`, `model`,
`tools` and `rules` mean the same here. Looked up in this order: a path given by the user, the
repository's `.agent-tasks/agents/`, its `.continue/agents/`, the user's `~/.agent-tasks/agents/`,
then the built-in agents.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tasks_lib.environments.spec import EnvNames, NetworkSetting
from tasks_lib.agent.policy import ToolPolicy

REPO_AGENT_DIRS = (".agent-tasks/agents", ".continue/agents")
RepoReader = Callable[[str], "str | None"]
# Fields that widen what an agent can reach (another model host, the network, the orchestrator's
# variables, no sandbox): an operator's choice, so a repository's own agent files may not set them.
OPERATOR_FIELDS = {
    "api_base": "it would send the model's key to another host",
    "sandbox": "only the operator chooses how agents are confined",
    "network": "only the operator opens the network to agents",
    "env": "only the operator passes variables to agents",
}


class AgentFileError(ValueError):
    """An agent file that cannot be used; the message names the file, the field and the problem."""


class AgentSpec(BaseModel):
    """Model, rules, tools, prompt, budgets and checks of an agent."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    model: str | None = None
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
    on_accept: Literal["branch", "merge", "pull_request"] = "branch"
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_reply_tokens: int | None = Field(default=None, ge=16)  # caps one reply (a small model may ramble for minutes)
    api_base: str | None = None
    sandbox: Literal["auto", "bwrap", "none"] | None = None
    network: NetworkSetting = None
    env: EnvNames = Field(default_factory=list)
    setup_command: str | None = None
    setup_timeout_minutes: float = Field(default=15, gt=0)
    workspace: Literal["auto", "read-only", "read-write"] = "auto"
    tool_protocol: Literal["auto", "native", "text"] = "auto"
    prompt: str = ""
    source: str = ""

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
            policy = ToolPolicy(allowed={t: p for t, p in policy.allowed.items() if t not in ("edit_file", "write_file")})
        return policy

    @property
    def read_only_workspace(self) -> bool:
        """True when the sandbox mounts the workspace read-only: the agent says so, or it cannot write anyway.

        An agent without edit or write tools whose shell (if any) is limited to patterns is read-only by
        construction, so a pattern like `git diff*` cannot be turned into a write.
        """
        if self.workspace != "auto":
            return self.workspace == "read-only"
        allowed = ToolPolicy.parse(self.tools).allowed
        writes = "edit_file" in allowed or "write_file" in allowed
        return not writes and ("run_command" not in allowed or allowed["run_command"] is not None)

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The tools offered to the model."""
        return self.policy.tools


def builtin_agent_names() -> list[str]:
    """Names of the agents shipped with the package."""
    files = resources.files("tasks_lib.builtin_agents").iterdir()
    return sorted(p.name.removesuffix(".md") for p in files if p.name.endswith(".md"))


def split_front_matter(text: str, source: str) -> tuple[dict[str, Any], str]:
    """The YAML front matter (a mapping) and the body of a Markdown file."""
    if not text.startswith("---"):
        return {}, text
    lines = text.split("\n")
    try:
        end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() == "---")
    except StopIteration:
        raise AgentFileError(f"{source}: front matter: no closing '---' line") from None
    try:
        front = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark else ""
        raise AgentFileError(f"{source}: front matter is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(front, dict):
        raise AgentFileError(f"{source}: front matter must be a mapping of fields")
    return front, "\n".join(lines[end + 1 :])


def parse_agent_file(text: str, source: str, trusted: bool = True) -> AgentSpec:
    """Parse an agent file's text; raise AgentFileError naming the field and the problem.

    Untrusted files (from a repository) may not set the operator's fields (OPERATOR_FIELDS).
    """
    front, body = split_front_matter(text, source)
    for reserved in ("prompt", "source"):
        if reserved in front:
            raise AgentFileError(f"{source}: field '{reserved}': unknown field (the prompt is the file's body)")
    if not trusted:
        for field, why in OPERATOR_FIELDS.items():
            if front.get(field) is not None:
                raise AgentFileError(
                    f"{source}: field '{field}': not allowed in a repository's agent file ({why}); "
                    "set it in your own agents (~/.agent-tasks/agents), the workflow or the run instead"
                )
    front.setdefault("name", Path(source).stem)
    try:
        return AgentSpec.model_validate({**front, "prompt": body.strip(), "source": source})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "front matter"
        problem = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        raise AgentFileError(f"{source}: field '{field}': {problem}") from None


def read_agent_file(path: Path) -> AgentSpec:
    """Load an agent file from disk."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AgentFileError(f"{path}: agent file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentFileError(f"{path}: cannot read agent file: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_agent_file(text, str(path))


def user_agents_dir() -> Path:
    """The user's own agents: ``$AGENT_TASKS_HOME/agents`` (default ``~/.agent-tasks/agents``)."""
    from tasks_lib.settings import load_settings

    return load_settings().home / "agents"


def looks_like_path(ref: str) -> bool:
    """True when an agent reference names a file rather than an agent."""
    return ref.endswith(".md") or "/" in ref or ref.startswith(("~", "."))


def find_agent(ref: str, repo: RepoReader | None = None, shadow_builtins: bool = False) -> AgentSpec:
    """The agent ``ref``: a path, or a name looked up in the repository, the user's agents, then the built-ins.

    A repository's agent file may not replace a built-in agent of the same name unless
    ``shadow_builtins`` allows it.
    """
    if looks_like_path(ref):
        return read_agent_file(Path(ref).expanduser())
    if repo is not None:
        for folder in REPO_AGENT_DIRS:
            rel = f"{folder}/{ref}.md"
            text = repo(rel)
            if text is None:
                continue
            if ref in builtin_agent_names() and not shadow_builtins:
                raise AgentFileError(
                    f"repository:{rel} would replace the built-in agent '{ref}'; rename it, or allow it with "
                    "shadow_builtins: true in the workflow (--shadow-builtins on the command line)"
                )
            return parse_agent_file(text, f"repository:{rel}", trusted=False)
    personal = user_agents_dir() / f"{ref}.md"
    if personal.is_file():
        return read_agent_file(personal)
    if ref in builtin_agent_names():
        text = resources.files("tasks_lib.builtin_agents").joinpath(f"{ref}.md").read_text(encoding="utf-8")
        return parse_agent_file(text, f"built-in:{ref}")
    places = "the repository's .agent-tasks/agents/ and .continue/agents/, " if repo else ""
    raise AgentFileError(
        f"{ref}: no such agent in {places}{user_agents_dir()}, or the built-ins ({', '.join(builtin_agent_names())})"
    )


def available_agents(repo: RepoReader | None = None, repo_files: list[str] | None = None) -> list[tuple[str, str, str]]:
    """(name, source, description) of every agent that can be named, first match per name."""
    found: dict[str, tuple[str, str, str]] = {}
    for rel in repo_files or []:
        name = Path(rel).stem
        if name not in found and repo is not None:
            try:
                spec = parse_agent_file(repo(rel) or "", f"repository:{rel}", trusted=False)
                found[name] = (name, f"repository:{rel}", spec.description)
            except AgentFileError as exc:
                found[name] = (name, f"repository:{rel}", f"INVALID: {exc}")
    personal = user_agents_dir()
    for path in sorted(personal.glob("*.md")) if personal.is_dir() else []:
        if path.stem not in found:
            try:
                found[path.stem] = (path.stem, str(path), read_agent_file(path).description)
            except AgentFileError as exc:
                found[path.stem] = (path.stem, str(path), f"INVALID: {exc}")
    for name in builtin_agent_names():
        found.setdefault(name, (name, f"built-in:{name}", find_agent(name).description))
    return list(found.values())
