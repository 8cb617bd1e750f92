"""The system prompt: the agent's prompt, its rules, the repository's AGENTS.md and the task."""

from __future__ import annotations

from pathlib import Path

from tasks_lib.agents import AgentSpec

CONVENTIONS_CAP = 20_000  # characters of AGENTS.md taken into the prompt


def build_system_prompt(agent: AgentSpec, workspace: str | Path, instructions: str) -> str:
    """Assemble the system prompt for one session."""
    parts = [agent.prompt.strip() or "You are a careful software engineer working in a git repository."]
    if agent.rule_list:
        parts.append("## Rules\n" + "\n".join(f"- {rule.strip()}" for rule in agent.rule_list))
    agents_md = Path(workspace) / "AGENTS.md"
    if agents_md.is_file():
        text = agents_md.read_text(encoding="utf-8", errors="replace").strip()
        if len(text) > CONVENTIONS_CAP:
            text = text[:CONVENTIONS_CAP] + f"\n[... AGENTS.md cut at {CONVENTIONS_CAP} characters]"
        parts.append("## Repository conventions (AGENTS.md)\n" + text)
    parts.append("## Task\n" + instructions.strip())
    return "\n\n".join(parts)


def initial_messages(system_prompt: str) -> list[dict[str, str]]:
    """The conversation the loop starts from."""
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": "Carry out the task described above. Call finish when you are done."},
    ]
