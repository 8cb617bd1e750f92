"""The system prompt: the agent's prompt, its rules, the repository's conventions files and the task."""

from __future__ import annotations

from pathlib import Path

from tasks_lib.agent.files import AgentFileError, AgentSpec, split_front_matter
from tasks_lib.confine import PathRefused, resolve_inside

CONVENTIONS_CAP = 24_000  # characters of conventions files taken into the prompt, all files together
CONVENTION_FILE_BYTES = 256 * 1024  # bytes read of any one conventions file
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
    from tasks_lib.agent.tools import TOOL_DESCRIPTIONS, tool_signature

    lines = [f"- {tool_signature(name)}: {TOOL_DESCRIPTIONS[name]}" for name in tool_names]
    return "## Tools\nTo use a tool, reply with " + CALL_FORMAT + "\n" + "\n".join(lines)


def build_system_prompt(agent: AgentSpec, workspace: str | Path, instructions: str) -> tuple[str, list[str]]:
    """The system prompt for one session, and notes on anything the size cap cut."""
    parts = [agent.prompt.strip() or "You are a careful software engineer working in a git repository."]
    if agent.tool_protocol == "text":
        parts.append(tools_section(agent.tool_names))
    if agent.rule_list:
        parts.append("## Rules\n" + "\n".join(f"- {rule.strip()}" for rule in agent.rule_list))
    sections, notes = conventions(workspace)
    for rel, text in sections:
        parts.append(f"## Repository conventions: {rel}\n{text}")
    parts.append("## Task\n" + instructions.strip())
    return "\n\n".join(parts), notes


def initial_messages(system_prompt: str) -> list[dict[str, str]]:
    """The conversation the loop starts from."""
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": "Carry out the task described above. Call finish when you are done."},
    ]
