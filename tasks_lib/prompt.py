"""The system prompt: the agent's prompt, its rules, the repository's conventions files and the task."""

from __future__ import annotations

from pathlib import Path

from tasks_lib.agents import AgentFileError, AgentSpec, split_front_matter

CONVENTIONS_CAP = 24_000  # characters of conventions files taken into the prompt, all files together
CONVENTION_FILES = ("AGENTS.md", ".continue/rules/*.md", "CLAUDE.md", ".cursorrules", ".github/copilot-instructions.md")


def conventions(workspace: str | Path, cap: int = CONVENTIONS_CAP) -> tuple[list[tuple[str, str]], list[str]]:
    """The repository's conventions files that exist, as (path, text), and notes on what the cap cut."""
    root = Path(workspace)
    found: list[Path] = []
    for pattern in CONVENTION_FILES:
        found += sorted(p for p in root.glob(pattern) if p.is_file())
    sections: list[tuple[str, str]] = []
    notes: list[str] = []
    room = cap
    for path in found:
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8", errors="replace")
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


def build_system_prompt(agent: AgentSpec, workspace: str | Path, instructions: str) -> tuple[str, list[str]]:
    """The system prompt for one session, and notes on anything the size cap cut."""
    parts = [agent.prompt.strip() or "You are a careful software engineer working in a git repository."]
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
