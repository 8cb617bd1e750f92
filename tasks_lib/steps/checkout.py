"""Prefect task: check out an isolated workspace for a session on a new work branch."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger

from tasks_lib.domain.session import Workspace
from tasks_lib.git.repo import branch_head, create_workspace, default_branch, slugify, update_mirror
from tasks_lib.security.secrets import Redactor
from tasks_lib.steps import step


def work_branch_name(prefix: str, instructions: str, session_id: str) -> str:
    """``<prefix>/<slug-of-instructions>-<short-id>``."""
    return f"{prefix.strip('/') or 'agent'}/{slugify(instructions)}-{session_id.replace('-', '')[:8]}"


@step("checkout")
def checkout(
    repository: str,
    branch: str | None,
    instructions: str,
    session_id: str,
    mirrors_dir: Path,
    workspaces_dir: Path,
    branch_prefix: str = "agent",
) -> Workspace:
    """Update the repository's mirror and check out a workspace on a new branch from the chosen branch's head.

    The source repository is only read from; the workspace has its own git directory, and the work
    branch exists there alone until the work is accepted.
    """
    logger = get_run_logger()
    redact = Redactor.from_env()
    mirror, action = update_mirror(repository, mirrors_dir)
    shown = "fresh (fetched earlier in this run)" if action == "fresh" else action
    logger.info("mirror %s: %s", shown, redact(repository))
    base_branch = branch or default_branch(mirror)
    base_commit = branch_head(mirror, base_branch)
    work_branch = work_branch_name(branch_prefix, instructions, session_id)
    path = workspaces_dir / session_id
    create_workspace(mirror, path, work_branch, base_commit, repository)
    logger.info("workspace %s on %s from %s@%s", path, work_branch, base_branch, base_commit[:10])
    return Workspace(
        path=str(path),
        work_branch=work_branch,
        base_branch=base_branch,
        base_commit=base_commit,
        mirror=str(mirror),
        mirror_action=action,
    )
