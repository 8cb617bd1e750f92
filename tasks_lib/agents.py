"""Agents as files: Markdown with a YAML front matter (settings), whose body is the prompt."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tasks_lib.tools import ALL_TOOLS


class AgentFileError(ValueError):
    """An agent file that cannot be used; the message names the file, the field and the problem."""


class AgentSpec(BaseModel):
    """Model, rules, tools, prompt and budgets of an agent."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    model: str | None = None
    tools: list[str] | None = None
    rules: list[str] | str | None = None
    max_steps: int = Field(default=40, ge=1, le=10_000)
    max_cost_usd: float | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, ge=1)
    timeout_minutes: float = Field(default=30, gt=0)
    check_command: str | None = None
    branch_prefix: str = "agent"
    on_accept: Literal["branch", "merge", "pull_request"] = "branch"
    temperature: float | None = Field(default=None, ge=0, le=2)
    api_base: str | None = None
    prompt: str = ""
    source: str = Field(default="", exclude=True)

    @property
    def rule_list(self) -> list[str]:
        """The rules as a list of strings."""
        if self.rules is None:
            return []
        return [self.rules] if isinstance(self.rules, str) else [r for r in self.rules if r]

    @property
    def tool_names(self) -> tuple[str, ...]:
        """The tools this agent may use."""
        return ALL_TOOLS if self.tools is None else tuple(self.tools)


def builtin_agent_names() -> list[str]:
    """Names of the agents shipped with the package."""
    return sorted(p.name.removesuffix(".md") for p in resources.files("tasks_lib.builtin_agents").iterdir() if p.name.endswith(".md"))


def parse_agent_file(text: str, source: str) -> AgentSpec:
    """Parse an agent file's text; raise AgentFileError naming the field and the problem."""
    front: dict[str, Any] = {}
    body = text
    if text.startswith("---"):
        parts = text.split("\n")
        try:
            end = next(i for i, line in enumerate(parts[1:], start=1) if line.strip() == "---")
        except StopIteration:
            raise AgentFileError(f"{source}: front matter: no closing '---' line") from None
        try:
            front = yaml.safe_load("\n".join(parts[1:end])) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 2})" if mark else ""
            raise AgentFileError(f"{source}: front matter is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
        if not isinstance(front, dict):
            raise AgentFileError(f"{source}: front matter must be a mapping of fields")
        body = "\n".join(parts[end + 1 :])
    if "prompt" in front:
        raise AgentFileError(f"{source}: field 'prompt': the prompt is the file's body, not a field")
    front.setdefault("name", Path(source).stem)
    try:
        spec = AgentSpec.model_validate({**front, "prompt": body.strip(), "source": source})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "front matter"
        problem = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise AgentFileError(f"{source}: field '{field}': {problem}") from None
    unknown = [t for t in spec.tool_names if t not in ALL_TOOLS]
    if unknown:
        raise AgentFileError(f"{source}: field 'tools': unknown tool {unknown[0]!r}; known: {', '.join(ALL_TOOLS)}")
    return spec


def load_agent(ref: str) -> AgentSpec:
    """The agent named ``ref``: a path to an agent file, or the name of a built-in agent."""
    path = Path(ref).expanduser()
    looks_like_path = ref.endswith(".md") or "/" in ref or path.exists()
    if looks_like_path:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise AgentFileError(f"{ref}: agent file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise AgentFileError(f"{ref}: cannot read agent file: {getattr(exc, 'strerror', None) or exc}") from None
        return parse_agent_file(text, str(path))
    if ref in builtin_agent_names():
        text = resources.files("tasks_lib.builtin_agents").joinpath(f"{ref}.md").read_text(encoding="utf-8")
        return parse_agent_file(text, f"built-in:{ref}")
    raise AgentFileError(f"{ref}: no such agent; built-in agents: {', '.join(builtin_agent_names())}")
