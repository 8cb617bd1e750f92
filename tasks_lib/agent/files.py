"""Agents as files: Markdown with a YAML front matter (settings), whose body is the prompt.

Besides our own format, Continue's `.continue/agents/*.md` files load unchanged (their `name`,
`description`, `model`, `tools` and `rules` mean the same here), Claude Code subagents
(`.claude/agents/*.md`) and GitHub Copilot custom agents (`.github/agents/*.md`, `*.agent.md`) are
translated field by field (tasks_lib.agent.formats). An agent is named by its file's stem or its `name`
field, case-insensitively. Looked up in this order: a path given by the user, the repository's
`.agent-tasks/agents/`, `.continue/agents/`, `.claude/agents/`, `.github/agents/`, the user's
`~/.agent-tasks/agents/`, then the built-in agents; the first place with a match wins, and two matching
files in that place are an error.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tasks_lib.domain.fields import EnvNames, NetworkSetting
from tasks_lib.agent.formats import (
    FOREIGN, FORMAT_DIRS, FORMAT_LABELS, FormatError, FormatName, Translation, close_match, translate,
)
from tasks_lib.agent.policy import ToolPolicy

REPO_AGENT_DIRS = tuple(folder for folder, _ in FORMAT_DIRS)
# Reads a repository file's text (None when absent); given a folder, it answers what `git show REV:folder`
# prints (the names in it), which is how the agent folders are listed (preflight.repository_reader).
RepoReader = Callable[[str], "str | None"]
# Fields that widen what an agent can reach (another model host, the network, the orchestrator's
# variables, no sandbox): an operator's choice, so a repository's own agent files may not set them.
OPERATOR_FIELDS = {
    "api_base": "it would send the model's key to another host",
    "sandbox": "only the operator chooses how agents are confined",
    "network": "only the operator opens the network to agents",
    "env": "only the operator passes variables to agents",
}
# Set by the loader, not by a file's front matter.
LOADER_FIELDS = ("prompt", "source", "file_format", "ignored_fields", "file_notes")


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
    file_format: FormatName = "agent-tasks"
    ignored_fields: list[str] = Field(default_factory=list)  # fields of another tool's format with no meaning here
    file_notes: list[str] = Field(default_factory=list)  # how the file was read (a model alias, tools left out)

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


def settable_fields() -> list[str]:
    """The fields an agent file of our own format may set."""
    return [f for f in AgentSpec.model_fields if f not in LOADER_FIELDS]


def agent_stem(path: str) -> str:
    """The name a file gives its agent: `explainer.md` and Copilot's `explainer.agent.md` are both `explainer`."""
    name = Path(path).name
    return name.removesuffix(".md").removesuffix(".agent") if name.endswith(".agent.md") else name.removesuffix(".md")


def format_of(path: str) -> FormatName:
    """The format of an agent file, from the folder it is in (our own format outside the known folders)."""
    parent = Path(path.removeprefix("repository:")).parent.as_posix()
    for folder, fmt in FORMAT_DIRS:
        if parent == folder or parent.endswith(f"/{folder}"):
            return fmt
    return "agent-tasks"


def _translated(front: dict[str, Any], fmt: FormatName, source: str) -> tuple[dict[str, Any], Translation]:
    """The front matter in our field names (foreign formats translated; ours checked for loader fields)."""
    if fmt in FOREIGN:
        try:
            translation = translate(front, FOREIGN[fmt], settable_fields())
        except FormatError as exc:
            raise AgentFileError(f"{source}: {exc}") from None
        return translation.fields, translation
    for reserved in LOADER_FIELDS:
        if reserved in front:
            why = "the prompt is the file's body" if reserved == "prompt" else "set by the loader"
            raise AgentFileError(f"{source}: field '{reserved}': unknown field ({why})")
    return front, Translation(fields=front)


def _validation_message(exc: ValidationError, source: str, renamed: dict[str, str]) -> str:
    """One line naming the file, the field (as the file spells it) and the problem."""
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else "front matter"
    if err["type"] == "extra_forbidden":
        guess = close_match(field, settable_fields(), cutoff=0.6)
        problem = "unknown field" + (f"; did you mean {guess}?" if guess else "")
    else:
        problem = err["msg"].removeprefix("Value error, ")
    return f"{source}: field '{renamed.get(field, field)}': {problem}"


def parse_agent_file(text: str, source: str, trusted: bool = True, fmt: FormatName | None = None) -> AgentSpec:
    """Parse an agent file's text; raise AgentFileError naming the field and the problem.

    ``fmt`` defaults to the format of the folder ``source`` is in. Untrusted files (from a repository)
    may not set the operator's fields (OPERATOR_FIELDS).
    """
    fmt = fmt or format_of(source)
    raw, body = split_front_matter(text, source)
    front, translation = _translated(raw, fmt, source)
    if not trusted:
        for field, why in OPERATOR_FIELDS.items():
            if front.get(field) is not None:
                raise AgentFileError(
                    f"{source}: field '{field}': not allowed in a repository's agent file ({why}); "
                    "set it in your own agents (~/.agent-tasks/agents), the workflow or the run instead"
                )
    front.setdefault("name", agent_stem(source))
    loaded = {"prompt": body.strip(), "source": source, "file_format": fmt,
              "ignored_fields": translation.ignored, "file_notes": translation.notes}
    try:
        return AgentSpec.model_validate({**front, **loaded})
    except ValidationError as exc:
        renamed = {"max_steps": "maxTurns"} if "maxTurns" in raw else {}
        raise AgentFileError(_validation_message(exc, source, renamed)) from None


def read_agent_file(path: Path, fmt: FormatName | None = None) -> AgentSpec:
    """Load an agent file from disk (its format from its folder unless ``fmt`` is given)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AgentFileError(f"{path}: agent file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentFileError(f"{path}: cannot read agent file: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_agent_file(text, str(path), fmt=fmt)


def user_agents_dir() -> Path:
    """The user's own agents: ``$AGENT_TASKS_HOME/agents`` (default ``~/.agent-tasks/agents``)."""
    from tasks_lib.config import load_settings

    return load_settings().home / "agents"


def looks_like_path(ref: str) -> bool:
    """True when an agent reference names a file rather than an agent."""
    return ref.endswith(".md") or "/" in ref or ref.startswith(("~", "."))


class Candidate(BaseModel):
    """An agent file that can be named: where it is, its stem and `name` field, its text."""

    source: str
    place: str  # the folder it was found in, as shown in messages
    stem: str
    name: str | None = None
    fmt: FormatName = "agent-tasks"
    text: str
    trusted: bool
    in_repository: bool = False

    def matches(self, ref: str) -> bool:
        """True when ``ref`` names this file: its stem or its `name` field, case-insensitively."""
        key = ref.strip().lower()
        return key == self.stem.lower() or (self.name is not None and key == self.name.strip().lower())

    def label(self) -> str:
        """How the agent is shown in a list of names: the stem, and the `name` field when it differs."""
        if self.name is None or self.name.strip().lower() == self.stem.lower():
            return self.stem
        return f"{self.stem} ({self.name!r})"

    def parse(self) -> AgentSpec:
        """The agent as it will be used (AgentFileError when the file is wrong)."""
        return parse_agent_file(self.text, self.source, trusted=self.trusted, fmt=self.fmt)


def _name_field(text: str, source: str) -> str | None:
    """The `name` field of an agent file, or None (also when its front matter cannot be read)."""
    try:
        name = split_front_matter(text, source)[0].get("name")
    except AgentFileError:
        return None
    return name if isinstance(name, str) and name.strip() else None


def _candidate(text: str, source: str, place: str, fmt: FormatName, trusted: bool, in_repository: bool,
               stem: str | None = None) -> Candidate:
    """A Candidate for a file's text (its stem from ``source`` unless given)."""
    return Candidate(source=source, place=place, stem=stem or agent_stem(source), name=_name_field(text, source),
                     fmt=fmt, text=text, trusted=trusted, in_repository=in_repository)


def _tree_names(listing: str | None, folder: str) -> list[str]:
    """The file names in a folder, from what `git show REV:folder` prints for a tree (None or a file: none)."""
    if not listing:
        return []
    lines = listing.split("\n")
    if not (lines[0].startswith("tree ") and lines[0].rstrip("/").endswith(f":{folder}")):
        return []
    return [line for line in lines[2:] if line and not line.endswith("/")]


def repo_agent_files(repo: RepoReader) -> list[str]:
    """The agent files in a repository's agent folders, in lookup order (folders given by REPO_AGENT_DIRS).

    The reader is asked for each folder; given a folder, `git show` answers with the names in it.
    """
    files = []
    for folder in REPO_AGENT_DIRS:
        files += [f"{folder}/{name}" for name in sorted(_tree_names(repo(folder), folder)) if name.endswith(".md")]
    return files


def candidate_groups(repo: RepoReader | None) -> list[list[Candidate]]:
    """Every agent file that can be named, one group per place, in lookup order."""
    groups: list[list[Candidate]] = []
    if repo is not None:
        files = repo_agent_files(repo)
        for folder, fmt in FORMAT_DIRS:
            group = []
            for rel in (f for f in files if f.startswith(f"{folder}/")):
                text = repo(rel)
                if text is not None:
                    group.append(_candidate(text, f"repository:{rel}", f"repository:{folder}/", fmt, False, True))
            groups.append(group)
    personal = user_agents_dir()
    group = []
    for path in sorted(personal.glob("*.md")) if personal.is_dir() else []:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # unreadable: named by its path, read_agent_file says why
        group.append(_candidate(text, str(path), f"{personal}/", "agent-tasks", True, False))
    groups.append(group)
    builtins = resources.files("tasks_lib.builtin_agents")
    groups.append([_candidate(builtins.joinpath(f"{n}.md").read_text(encoding="utf-8"), f"built-in:{n}", "the built-ins",
                              "agent-tasks", True, False, stem=n) for n in builtin_agent_names()])
    return groups


def _no_such_agent(ref: str, groups: list[list[Candidate]], searched_repo: bool) -> AgentFileError:
    """The error for a name no file matches: where we looked, the names there are, the closest one."""
    everything = [c for group in groups for c in group]
    labels = list(dict.fromkeys(c.label() for c in everything))
    keys = [k for c in everything for k in (c.stem, c.name) if k]
    guess = close_match(ref, keys, cutoff=0.6)
    places = "the repository's " + ", ".join(f"{d}/" for d in REPO_AGENT_DIRS) + ", " if searched_repo else ""
    return AgentFileError(
        f"{ref}: no such agent in {places}{user_agents_dir()}, or the built-ins; agents: {', '.join(labels)}"
        + (f"; did you mean {guess}?" if guess else "")
    )


def resolve(ref: str, groups: list[list[Candidate]], searched_repo: bool = True) -> Candidate:
    """The one file ``ref`` names: the first place with a match wins; two matches there are an error."""
    for group in groups:
        found = [c for c in group if c.matches(ref)]
        if len(found) > 1:
            raise AgentFileError(
                f"{ref}: more than one agent file in {found[0].place} matches by file name or `name` field: "
                f"{', '.join(c.source for c in found)}; rename one, or pass the file's path"
            )
        if found:
            return found[0]
    raise _no_such_agent(ref, groups, searched_repo)


def find_agent(ref: str, repo: RepoReader | None = None, shadow_builtins: bool = False) -> AgentSpec:
    """The agent ``ref``: a path, or a name looked up in the repository, the user's agents, then the built-ins.

    A repository's agent file may not replace a built-in agent of the same name unless
    ``shadow_builtins`` allows it.
    """
    if looks_like_path(ref):
        return read_agent_file(Path(ref).expanduser())
    found = resolve(ref, candidate_groups(repo), searched_repo=repo is not None)
    builtin = next((n for n in builtin_agent_names() if n == ref.strip().lower()), None)
    if found.in_repository and builtin and not shadow_builtins:
        raise AgentFileError(
            f"{found.source} would replace the built-in agent '{builtin}'; rename it, or allow it with "
            "shadow_builtins: true in the workflow (--shadow-builtins on the command line)"
        )
    return found.parse()


class CatalogRow(BaseModel):
    """One agent file as `agents list` shows it: how to name it, what it is, how it was read."""

    name: str
    source: str
    format: str
    description: str = ""
    agent_name: str | None = None  # the `name` field, when it differs from the file's stem
    ignored: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    conflicts: list[str] = Field(default_factory=list)  # a name that matches two files in one place
    error: str | None = None


def _reach(candidate: Candidate, groups: list[list[Candidate]]) -> tuple[list[str], list[str]]:
    """(notes, conflicts) on naming a file by its stem or `name` field: another file wins, or two files match."""
    notes, conflicts = [], []
    for key in dict.fromkeys(k for k in (candidate.stem, candidate.name) if k):
        try:
            winner = resolve(key, groups)
        except AgentFileError as exc:
            conflicts.append(str(exc))
            continue
        if winner is not candidate:
            notes.append(f"--agent {key!r} finds {winner.source} instead")
    if candidate.in_repository and candidate.stem.lower() in builtin_agent_names():
        notes.append(f"replaces the built-in agent '{candidate.stem.lower()}' only where the run allows it (shadow_builtins)")
    return notes, conflicts


def name_conflicts(groups: list[list[Candidate]], repository_only: bool = False) -> list[str]:
    """The errors of names (stems and `name` fields) that match two files in the place where they are found."""
    conflicts: list[str] = []
    for candidate in (c for group in groups for c in group if c.in_repository or not repository_only):
        conflicts += [c for c in _reach(candidate, groups)[1] if c not in conflicts]
    return conflicts


def agent_catalog(repo: RepoReader | None = None) -> list[CatalogRow]:
    """Every agent file that can be named (the repository's, the user's, the built-ins), in lookup order."""
    groups = candidate_groups(repo)
    rows = []
    for candidate in (c for group in groups for c in group):
        notes, conflicts = _reach(candidate, groups)
        row = CatalogRow(name=candidate.stem, source=candidate.source, format=FORMAT_LABELS[candidate.fmt],
                         notes=notes, conflicts=conflicts)
        if candidate.name and candidate.name.strip().lower() != candidate.stem.lower():
            row.agent_name = candidate.name
        try:
            spec = candidate.parse()
        except AgentFileError as exc:
            row.error = str(exc)
        else:
            row.description, row.ignored, row.notes = spec.description, spec.ignored_fields, spec.file_notes + row.notes
        rows.append(row)
    return rows
