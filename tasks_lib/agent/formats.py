"""Agent files of other tools mapped onto our fields: Claude Code subagents and GitHub Copilot custom agents.

Each format keeps the fields that mean something here (translated to our names), lists the fields that
have no meaning here as ignored, and still refuses what looks like a misspelling ("did you mean …").
Our own format (and Continue's, which uses our field names) is validated strictly by ``AgentSpec``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

from tasks_lib.agent.policy import ALL_TOOLS, PATH_TOOLS, split_entries
from tasks_lib.errors import AgentTasksError

FormatName = Literal["agent-tasks", "continue", "claude-code", "copilot"]
# The repository's agent folders, in lookup order, and the format of the files in each.
FORMAT_DIRS: tuple[tuple[str, FormatName], ...] = (
    (".agent-tasks/agents", "agent-tasks"),
    (".continue/agents", "continue"),
    (".claude/agents", "claude-code"),
    (".github/agents", "copilot"),
)
FORMAT_LABELS: dict[str, str] = {
    "agent-tasks": "agent-tasks agent",
    "continue": "Continue agent (our field names)",
    "claude-code": "Claude Code subagent",
    "copilot": "GitHub Copilot custom agent",
}
CONFIGURED_MODEL = "uses the configured model (--model or AGENT_TASKS_MODEL)"
CLOSE_MATCH = 0.75  # difflib ratio from which an unknown name is taken for a misspelling
ENTRY = re.compile(r"^\s*(?P<name>[^\s()]+)\s*(?:\((?P<pattern>.*)\))?\s*$")


class FormatError(AgentTasksError, ValueError):
    """A field of a foreign agent file that cannot be used; the message starts with the field."""


class Translation(BaseModel):
    """A foreign front matter in our field names, with what was left out and why."""

    fields: dict[str, Any] = Field(default_factory=dict)
    ignored: list[str] = Field(default_factory=list)  # front-matter fields that have no meaning here
    notes: list[str] = Field(default_factory=list)


class ToolSet(BaseModel):
    """What a foreign format's tool names mean here."""

    meaning: dict[str, tuple[str, ...]]  # lower-case name -> our tools
    no_meaning: frozenset[str]  # lower-case names of tools of that format we do not have
    spelled: dict[str, str]  # lower-case name -> the spelling shown in "did you mean"


class ForeignFormat(BaseModel):
    """A foreign agent-file format: its meaningful fields, the fields with no meaning here, its tools."""

    name: FormatName
    label: str
    meaningful: tuple[str, ...]
    no_meaning: frozenset[str]
    tools: ToolSet
    model_aliases: frozenset[str] = frozenset()


def _toolset(groups: dict[tuple[str, ...], tuple[str, ...]], no_meaning: Iterable[str]) -> ToolSet:
    """A ToolSet from groups of names that share a meaning."""
    meaning = {name.lower(): ours for names, ours in groups.items() for name in names}
    spelled = {name.lower(): name for names in groups for name in names}
    return ToolSet(meaning=meaning, no_meaning=frozenset(n.lower() for n in no_meaning), spelled=spelled)


CLAUDE = ForeignFormat(
    name="claude-code",
    label=FORMAT_LABELS["claude-code"],
    meaningful=("name", "description", "tools", "disallowedTools", "model", "maxTurns"),
    no_meaning=frozenset(
        {
            "color",
            "permissionMode",
            "hooks",
            "skills",
            "mcpServers",
            "memory",
            "background",
            "isolation",
            "disabled",
            "effort",
            "initialPrompt",
            "version",
            "author",
            "tags",
        }
    ),
    tools=_toolset(
        {
            ("Read",): ("read_file",),
            ("Glob", "LS"): ("list_files",),
            ("Grep",): ("search",),
            ("Write",): ("write_file",),
            ("Edit", "MultiEdit"): ("edit_file",),
            ("Bash",): ("run_command",),
        },
        (
            "WebFetch",
            "WebSearch",
            "Task",
            "Agent",
            "TodoWrite",
            "TodoRead",
            "NotebookEdit",
            "NotebookRead",
            "BashOutput",
            "KillShell",
            "KillBash",
            "SlashCommand",
            "Skill",
            "ExitPlanMode",
            "EnterPlanMode",
            "AskUserQuestion",
            "LSP",
            "PowerShell",
            "ListMcpResourcesTool",
            "ReadMcpResourceTool",
            "SendMessage",
        ),
    ),
    model_aliases=frozenset({"sonnet", "opus", "haiku", "inherit", "default", "opusplan", "best"}),
)
COPILOT = ForeignFormat(
    name="copilot",
    label=FORMAT_LABELS["copilot"],
    meaningful=("name", "description", "tools", "model"),
    no_meaning=frozenset(
        {
            "target",
            "mcp-servers",
            "handoffs",
            "argument-hint",
            "infer",
            "metadata",
            "agents",
            "user-invokable",
            "user-invocable",
            "disable-model-invocation",
            "icon",
        }
    ),
    tools=_toolset(
        {
            ("execute", "shell", "Bash", "powershell", "runCommands", "runInTerminal", "terminal"): ("run_command",),
            ("read", "Read", "readFile", "NotebookRead"): ("read_file",),
            ("edit", "Edit", "MultiEdit", "Write", "NotebookEdit", "editFiles", "createFile", "createDirectory"): (
                "edit_file",
                "write_file",
            ),
            ("search", "Grep", "Glob", "textSearch", "fileSearch", "listDirectory"): ("search", "list_files"),
            ("codebase",): ("read_file", "search", "list_files"),
        },
        (
            "agent",
            "custom-agent",
            "Task",
            "runSubagent",
            "web",
            "WebSearch",
            "WebFetch",
            "fetch",
            "todo",
            "todos",
            "TodoWrite",
            "githubRepo",
            "problems",
            "changes",
            "usages",
            "testFailure",
            "terminalLastCommand",
            "terminalSelection",
            "vscodeAPI",
            "extensions",
            "openSimpleBrowser",
            "new",
            "runTasks",
            "runTests",
            "runNotebooks",
            "searchResults",
            "think",
            "getTerminalOutput",
        ),
    ),
)
FOREIGN: dict[str, ForeignFormat] = {CLAUDE.name: CLAUDE, COPILOT.name: COPILOT}


def close_match(word: str, candidates: Iterable[str], cutoff: float = CLOSE_MATCH) -> str | None:
    """The candidate ``word`` is most likely a misspelling of (compared case-insensitively), or None."""
    by_lower = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[found[0]] if found else None


def _entries(value: Any, field: str) -> list[str]:
    """A tools field as a list of entries: a comma-separated string or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return split_entries(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise FormatError(f"field '{field}': write a list of tool names or a comma-separated string")


def _path_pattern(pattern: str) -> str:
    """A Claude Code path rule as our path glob: `./src/**` and `/src/**` (from the project root) become `src/**`."""
    pattern = pattern.strip()
    if pattern.startswith("./"):
        return pattern[2:]
    if pattern.startswith("/") and not pattern.startswith("//"):
        return pattern[1:]
    return pattern


class ToolMapping(BaseModel):
    """Our tools (with argument patterns, None = any argument) and the foreign tool names that were dropped."""

    allowed: dict[str, list[str] | None] = Field(default_factory=dict)
    dropped: list[str] = Field(default_factory=list)  # names with no meaning here
    unknown: list[str] = Field(default_factory=list)  # names we do not know at all


def _lookup(name: str, tools: ToolSet) -> tuple[str, ...] | None:
    """Our tools for a foreign tool name (namespaced `set/tool` names by their last part); None when not ours."""
    lower = name.lower()
    if lower in tools.meaning:
        return tools.meaning[lower]
    if name in ALL_TOOLS:
        return (name,)
    if "/" in lower:
        head, _, tail = lower.rpartition("/")
        if tail == "*" and head in tools.meaning:  # `edit/*`: the whole built-in set
            return tools.meaning[head]
        if tail in tools.meaning:
            return tools.meaning[tail]
    return None


def _no_meaning(name: str, tools: ToolSet) -> bool:
    """True for a tool of the foreign format that we do not have (MCP tools and namespaced extras included)."""
    lower = name.lower()
    return lower in tools.no_meaning or lower.startswith("mcp__") or "/" in lower


def map_tools(entries: list[str], fmt: ForeignFormat, field: str) -> ToolMapping:
    """Translate a foreign tool list; FormatError for an entry that looks like a misspelling of a tool we map."""
    mapping = ToolMapping()
    for entry in entries:
        match = ENTRY.match(entry)
        if not match:
            raise FormatError(f"field '{field}': cannot read tool entry {entry!r}; write Name or Name(pattern)")
        name, pattern = match["name"], match["pattern"]
        ours = _lookup(name, fmt.tools)
        if ours is None:
            if _no_meaning(name, fmt.tools):
                mapping.dropped.append(name)
                continue
            guess = close_match(name, [*fmt.tools.spelled.values(), *ALL_TOOLS])
            if guess:
                raise FormatError(f"field '{field}': unknown {fmt.label} tool {name!r}; did you mean {guess}?")
            mapping.unknown.append(name)
            continue
        for tool in ours:
            _allow(mapping.allowed, tool, pattern)
    return mapping


def _allow(allowed: dict[str, list[str] | None], tool: str, pattern: str | None) -> None:
    """Allow ``tool`` (any argument when ``pattern`` is empty, else also the pattern's entries)."""
    if pattern is None or pattern.strip() in ("", "*", "**"):
        allowed[tool] = None
        return
    if tool in allowed and allowed[tool] is None:
        return
    patterns = split_entries(pattern)
    if tool in PATH_TOOLS:
        patterns = [_path_pattern(p) for p in patterns]
    allowed.setdefault(tool, [])
    allowed[tool].extend(patterns)  # type: ignore[union-attr]


def tools_field(allowed: dict[str, list[str] | None]) -> list[str]:
    """An allow-list in our `tools` syntax (`read_file`, `run_command(pytest *, git diff*)`), in canonical order."""
    out = []
    for tool in ALL_TOOLS:
        if tool in allowed and tool != "finish":
            patterns = allowed[tool]
            out.append(tool if patterns is None else f"{tool}({', '.join(patterns)})")
    return out


def _tool_notes(mapping: ToolMapping, field: str, fmt: ForeignFormat) -> list[str]:
    """Notes on the tool names a tools field named that mean nothing here."""
    notes = []
    if mapping.dropped:
        notes.append(f"{field}: {', '.join(mapping.dropped)} — no such tool here (ignored)")
    if mapping.unknown:
        notes.append(f"{field}: {', '.join(mapping.unknown)} — not a {fmt.label} tool we know (ignored)")
    return notes


def _translate_tools(front: dict[str, Any], fmt: ForeignFormat, out: Translation) -> None:
    """`tools` (an allow-list; absent or `*` = all) and Claude's `disallowedTools` (removed from it)."""
    has_tools = "tools" in front and front["tools"] is not None
    entries = _entries(front.get("tools"), "tools")
    if not has_tools or any(e.strip() == "*" for e in entries):
        allowed: dict[str, list[str] | None] = {t: None for t in ALL_TOOLS}
    else:
        mapping = map_tools(entries, fmt, "tools")
        allowed = mapping.allowed
        out.notes.extend(_tool_notes(mapping, "tools", fmt))
    denied = _entries(front.get("disallowedTools"), "disallowedTools")
    if denied:
        for entry in denied:
            match = ENTRY.match(entry)
            if match and match["pattern"] and _lookup(match["name"], fmt.tools):
                out.notes.append(
                    f"disallowedTools: {entry} — argument patterns cannot be denied here; the whole tool is removed"
                )
        mapping = map_tools(denied, fmt, "disallowedTools")
        for tool in mapping.allowed:
            allowed.pop(tool, None)
        out.notes.extend(_tool_notes(mapping, "disallowedTools", fmt))
    if has_tools or denied:
        out.fields["tools"] = tools_field(allowed)


def _translate_model(value: Any, fmt: ForeignFormat, out: Translation) -> None:
    """The model: a Claude Code alias or a Copilot picker name falls back to the configured model, with a note."""
    if value is None:
        return
    if isinstance(value, list):
        out.notes.append(f"model: a list of {fmt.label} model names — {CONFIGURED_MODEL}")
        return
    model = str(value).strip()
    if fmt.name == "claude-code":
        if model.lower().removesuffix("[1m]") in fmt.model_aliases:
            out.notes.append(f"model: {model} is a Claude Code alias — {CONFIGURED_MODEL}")
            return
    elif "/" not in model:
        out.notes.append(
            f"model: {model!r} names a model in Copilot's picker, not a provider/model — {CONFIGURED_MODEL}"
        )
        return
    out.fields["model"] = model


def translate(front: dict[str, Any], fmt: ForeignFormat, our_fields: Iterable[str]) -> Translation:
    """A foreign front matter in our field names.

    The format's meaningful fields are translated; our own fields pass through (validated later); the
    format's other fields are ignored and listed; an unknown field close to a meaningful one (ours or the
    format's) is a FormatError with "did you mean …", any other unknown field is ignored and listed.
    """
    ours = [f for f in our_fields if f not in fmt.meaningful]
    out = Translation()
    for key, value in front.items():
        key = str(key)
        if key in ("name", "description"):
            out.fields[key] = value
        elif key == "maxTurns":
            if "max_steps" in front:
                raise FormatError("field 'maxTurns': set either maxTurns or max_steps, not both")
            out.fields["max_steps"] = value
        elif key in fmt.meaningful:
            continue  # tools, disallowedTools and model: below, together
        elif key in ours:
            out.fields[key] = value
        elif key in fmt.no_meaning:
            out.ignored.append(key)
        elif guess := close_match(key, [*fmt.meaningful, *ours]):
            raise FormatError(f"field '{key}': unknown field; did you mean {guess}?")
        else:
            out.ignored.append(key)
    _translate_tools(
        {k: front[k] for k in ("tools", "disallowedTools") if k in fmt.meaningful and k in front}, fmt, out
    )
    if "model" in fmt.meaningful:
        _translate_model(front.get("model"), fmt, out)
    return out
