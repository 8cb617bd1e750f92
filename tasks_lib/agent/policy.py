"""Which tools an agent may use, and with which arguments (`run_command(pytest *)`, `write_file(docs/**)`)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

ALL_TOOLS = ("list_files", "read_file", "search", "edit_file", "write_file", "run_command", "finish")
# Continue's (and similar tools') names for the same tools, compared case-insensitively.
TOOL_ALIASES = {
    "read": "read_file",
    "list": "list_files",
    "ls": "list_files",
    "search": "search",
    "grep": "search",
    "edit": "edit_file",
    "multiedit": "edit_file",
    "write": "write_file",
    "bash": "run_command",
    "builtin_read_file": "read_file",
    "builtin_ls": "list_files",
    "builtin_exact_search": "search",
    "builtin_grep_search": "search",
    "builtin_edit_existing_file": "edit_file",
    "builtin_create_new_file": "write_file",
    "builtin_run_terminal_command": "run_command",
}
ALL_MARKERS = {"built_in", "builtin", "all", "*"}
PATTERN_ARGUMENT = {
    "run_command": "command",
    "read_file": "path",
    "write_file": "path",
    "edit_file": "path",
    "list_files": "path",
    "search": "path",
}
PATH_TOOLS = tuple(name for name, argument in PATTERN_ARGUMENT.items() if argument == "path")
SHELL_CHAINING = re.compile(r"[;&|`<>\n]|\$\(")
ENTRY = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_*-]*)\s*(?:\((?P<pattern>.*)\))?\s*$")


def canonical_tool(name: str) -> str:
    """Our name for a tool name (ours or an alias); ValueError for unknown names."""
    if name in ALL_TOOLS:
        return name
    mapped = TOOL_ALIASES.get(name.lower())
    if mapped is None:
        raise ValueError(
            f"unknown tool {name!r}; known: {', '.join(ALL_TOOLS)} (or Read, List, Search, Edit, MultiEdit, Write, Bash)"
        )
    return mapped


def split_entries(text: str) -> list[str]:
    """Split 'Read, Bash(git diff, git log)' on the commas outside parentheses."""
    entries, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            entries.append(current)
            current = ""
        else:
            current += ch
    entries.append(current)
    return [e.strip() for e in entries if e.strip()]


def glob_regex(pattern: str, for_path: bool) -> re.Pattern[str]:
    """A glob as a regex: for paths `*` stays within a directory and `**` crosses them; for commands `*` is anything.

    A trailing `:*` (as in `npm test:*`) means "this command with any arguments".
    """
    pattern = pattern.strip()
    if pattern.endswith(":*"):
        pattern = pattern[:-2] + "*"
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):  # `docs/**/x` also matches `docs/x`
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        ch = pattern[i]
        out += (
            ("[^/]*" if for_path else ".*")
            if ch == "*"
            else ("[^/]" if for_path else ".")
            if ch == "?"
            else re.escape(ch)
        )
        i += 1
    return re.compile(f"^{out}$")


class ToolPolicy(BaseModel):
    """Allowed tools with optional argument patterns; tools not in ``allowed`` are excluded (not offered)."""

    allowed: dict[str, list[str] | None]

    @classmethod
    def parse(cls, value: Any) -> ToolPolicy:
        """Read the ``tools`` field of an agent file (ValueError with a readable message when it is wrong).

        Accepted: absent or ``built_in`` (all tools); a list or comma-separated string of entries like
        ``read_file``, ``Read``, ``run_command(pytest *)`` (an allow-list); or a mapping of tool to
        ``allow``, ``exclude`` or a list of patterns (tools not named stay allowed).
        """
        if value is None:
            return cls(allowed={t: None for t in ALL_TOOLS})
        if isinstance(value, dict):
            allowed: dict[str, list[str] | None] = {t: None for t in ALL_TOOLS}
            for raw, rule in value.items():
                name = canonical_tool(str(raw))
                if rule in ("allow", True):
                    allowed[name] = None
                elif rule in ("exclude", False):
                    allowed.pop(name, None)
                elif isinstance(rule, (list, str)):
                    allowed[name] = [rule] if isinstance(rule, str) else [str(p) for p in rule]
                else:
                    raise ValueError(f"{raw}: use allow, exclude or a list of argument patterns")
            allowed["finish"] = None
            return cls(allowed=allowed)
        entries = split_entries(value) if isinstance(value, str) else [str(v) for v in value]
        if any(e.strip().lower() in ALL_MARKERS for e in entries):
            return cls(allowed={t: None for t in ALL_TOOLS})
        allowed = {"finish": None}
        for entry in entries:
            match = ENTRY.match(entry)
            if not match:
                raise ValueError(f"cannot read tool entry {entry!r}; write name or name(pattern)")
            name = canonical_tool(match["name"])
            pattern = match["pattern"]
            if pattern is None or pattern.strip() in ("", "*", "**"):
                allowed[name] = None
            elif name in allowed and allowed[name] is None:
                continue
            else:
                allowed.setdefault(name, [])
                allowed[name].extend(split_entries(pattern))  # type: ignore[union-attr]
        return cls(allowed=allowed)

    @property
    def tools(self) -> tuple[str, ...]:
        """The tools offered to the model, in the canonical order."""
        return tuple(t for t in ALL_TOOLS if t in self.allowed)

    def check(self, name: str, arguments: dict[str, Any]) -> str | None:
        """None when the call is allowed, else why not (sent back to the model)."""
        patterns = self.allowed.get(name)
        if patterns is None:
            return None
        field = PATTERN_ARGUMENT.get(name)
        value = str(arguments.get(field) or ("." if field == "path" else ""))
        if name == "run_command":
            if SHELL_CHAINING.search(value):
                return (
                    f"run_command is limited to {', '.join(patterns)} for this agent; chaining, pipes and "
                    "redirection (; & | ` $( < >) are not allowed"
                )
            value = " ".join(value.split())
        else:
            value = value.strip().removeprefix("./").rstrip("/") or "."
        for_path = name != "run_command"
        if any(glob_regex(p, for_path).match(value) for p in patterns):
            return None
        return f"{name} is not allowed for {value!r} by this agent's rules; allowed: {', '.join(patterns)}"
