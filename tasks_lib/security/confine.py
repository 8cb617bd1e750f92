"""Paths the orchestrator touches on the agent's behalf: always inside the workspace, never in `.git`."""

from __future__ import annotations

from pathlib import Path

from tasks_lib.errors import AgentTasksError


class PathRefused(AgentTasksError, ValueError):
    """A path that leaves the workspace or enters a git directory; the message is for the model."""


def resolve_inside(root: Path, path: str, for_write: bool = False) -> Path:
    """The real path of ``path`` under ``root``; refuses absolute paths, `..`, symlinks out and `.git` at any depth.

    The checks apply to the resolved path, so a symlink cannot lead around them.
    """
    if not path or "\x00" in path:
        raise PathRefused("a path is required")
    candidate = Path(path)
    if candidate.is_absolute():
        raise PathRefused(f"{path}: absolute paths are not allowed; use a path relative to the repository root")
    if ".." in candidate.parts:
        raise PathRefused(f"{path}: '..' is not allowed; paths must stay inside the repository")
    resolved = (root / candidate).resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise PathRefused(f"{path}: resolves outside the repository (through a symlink)")
    parts = resolved.relative_to(root).parts
    if any(part.lower() == ".git" for part in (*candidate.parts, *parts)):
        raise PathRefused(f"{path}: git directories (.git) are off limits")
    if for_write and resolved == root:
        raise PathRefused(f"{path}: not a file path")
    return resolved


def relative(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` in POSIX form ('.' for the root itself)."""
    return path.relative_to(root).as_posix() or "."
