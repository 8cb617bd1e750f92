"""The system prompt: the agent's prompt, its rules, the repository's conventions files and the task."""

from __future__ import annotations

import re
from pathlib import Path

from tasks_lib.agent.files import split_front_matter
from tasks_lib.agent.spec import AgentFileError, AgentSpec
from tasks_lib.security.confine import PathRefused, resolve_inside

CONVENTIONS_CAP = 24_000  # characters of conventions files taken into the prompt, all files together
CONVENTION_FILE_BYTES = 256 * 1024  # bytes read of any one conventions file
NAMED_FILES = 3  # files named in the task that are shown with it
NAMED_FILE_LINES = 200
CONVENTION_FILES = ("AGENTS.md", ".continue/rules/*.md", "CLAUDE.md", ".cursorrules", ".github/copilot-instructions.md")


def _read_confined(root: Path, rel: str) -> str:
    """The start of a file inside the workspace, read as the file tools would (PathRefused if it leads out)."""
    real = resolve_inside(root, rel)
    if not real.is_file():
        raise PathRefused(f"{rel}: not a regular file")
    with open(real, "rb") as handle:
        return handle.read(CONVENTION_FILE_BYTES).decode("utf-8", errors="replace")


def conventions(workspace: str | Path, cap: int = CONVENTIONS_CAP) -> tuple[list[tuple[str, str]], list[str]]:
    """The repository's conventions files that exist, as (path, text), and notes on what was cut or refused.

    Files are repository content: they are read with the file tools' confinement (no symlink out of
    the workspace, nothing in `.git`) and a size bound.
    """
    root = Path(workspace).resolve()
    found: list[str] = []
    for pattern in CONVENTION_FILES:
        found += sorted(p.relative_to(root).as_posix() for p in root.glob(pattern) if p.is_file() or p.is_symlink())
    sections: list[tuple[str, str]] = []
    notes: list[str] = []
    room = cap
    for rel in found:
        try:
            text = _read_confined(root, rel)
        except (PathRefused, OSError) as exc:
            notes.append(f"{rel} left out: {exc}")
            continue
        if rel.startswith(".continue/rules/"):
            try:
                text = split_front_matter(text, rel)[1]
            except AgentFileError:
                pass
        text = text.strip()
        if not text:
            continue
        if room <= 0:
            notes.append(f"{rel} left out: the conventions cap of {cap} characters was reached")
            continue
        if len(text) > room:
            notes.append(f"{rel} cut at {room} of {len(text)} characters (conventions cap {cap})")
            text = text[:room] + f"\n[... {rel} cut here: conventions cap of {cap} characters ...]"
        room -= len(text)
        sections.append((rel, text))
    return sections, notes


def tools_section(tool_names: tuple[str, ...]) -> str:
    """How to call the tools when they are described in the prompt instead of the API (tool_protocol: text)."""
    from tasks_lib.agent.tool_calls import CALL_FORMAT
    from tasks_lib.agent.tool_specs import TOOL_DESCRIPTIONS, tool_signature

    lines = [f"- {tool_signature(name)}: {TOOL_DESCRIPTIONS[name]}" for name in tool_names]
    return "## Tools\nTo use a tool, reply with " + CALL_FORMAT + "\n" + "\n".join(lines)


def build_system_prompt(agent: AgentSpec, workspace: str | Path) -> tuple[str, list[str]]:
    """The system prompt for one session (the agent, its rules, the repository's conventions), and notes on what was cut."""
    parts = [agent.prompt.strip() or "You are a careful software engineer working in a git repository."]
    if agent.loop == "edit":
        from tasks_lib.agent.edit_loop import EDIT_FORMAT

        parts.append(EDIT_FORMAT)
    elif agent.tool_protocol == "text":
        parts.append(tools_section(agent.tool_names))
    if agent.edit_format == "whole" and "write_file" in agent.tool_names:
        parts.append(
            "## Changing files\nChange a file by writing it whole with write_file: read it first, then write every "
            "line of its new version (there is no partial edit tool)."
        )
    if agent.rule_list:
        parts.append("## Rules\n" + "\n".join(f"- {rule.strip()}" for rule in agent.rule_list))
    sections, notes = conventions(workspace)
    for rel, text in sections:
        parts.append(f"## Repository conventions: {rel}\n{text}")
    return "\n\n".join(parts), notes


def named_files(workspace: str | Path, instructions: str) -> list[tuple[str, str]]:
    """Short text files of the workspace that the task names (e.g. `calc.py`), as (path, text), read confined.

    Handing them over with the task saves a step, and spares small models editing text they never read.
    """
    root = Path(workspace).resolve()
    mentioned = re.findall(r"[\w./-]+\.[A-Za-z0-9]{1,8}\b", instructions)
    found: list[tuple[str, str]] = []
    for rel in dict.fromkeys(m.strip("./") for m in mentioned):
        try:
            text = _read_confined(root, rel)
        except (PathRefused, OSError):
            continue
        if "\0" not in text and text.count("\n") <= NAMED_FILE_LINES:
            found.append((rel, text))
        if len(found) == NAMED_FILES:
            break
    return found


TOOLS_CLOSING = (
    "Use the tools one call at a time; read code before you change it. When the task is done, call finish with a "
    "short summary of what you changed and why; if it cannot be done, call finish and say what stopped you."
)


def initial_messages(
    system_prompt: str, instructions: str, files: list[tuple[str, str]] | None = None, closing: str = TOOLS_CLOSING
) -> list[dict[str, str]]:
    """The conversation the loop starts from: the system prompt, then the task (with the files it names)."""
    task = f"## Task\n{instructions.strip()}"
    for rel, text in files or []:
        task += f"\n\n## {rel} (as it is now)\n```\n{text.rstrip()}\n```"
    return [
        {"role": "system", "content": system_prompt},
        {
            "role": "user",
            "content": f"{task}\n\n{closing}",
        },
    ]
