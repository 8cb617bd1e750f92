"""Helpers shared by the tests."""

from __future__ import annotations

from pathlib import Path

from flows.agent_task import SessionFailed, agent_task
from tasks_lib.models import SessionResult, TaskRequest

MODEL = "openai/scripted-model"


def run_task(repo: Path | str, instructions: str = "Do the task", **fields) -> SessionResult:
    """Run the real flow on a repository with the scripted model."""
    fields.setdefault("model", MODEL)
    return agent_task(TaskRequest(repository=str(repo), instructions=instructions, **fields))


def run_failing(repo: Path | str, instructions: str = "Do the task", **fields) -> SessionFailed:
    """Run the flow expecting the session to fail; return the SessionFailed it raised."""
    try:
        run_task(repo, instructions, **fields)
    except SessionFailed as exc:
        return exc
    raise AssertionError("the session did not fail")


def write_agent(path: Path, front: str, body: str = "You are a test agent.") -> Path:
    """Write an agent file with the given YAML front matter."""
    path.write_text(f"---\n{front.strip()}\n---\n{body}\n")
    return path
