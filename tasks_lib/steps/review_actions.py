"""Prefect tasks that carry out review decisions on a session's workspace."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger

from tasks_lib.git import delivery
from tasks_lib.git.cli import GitError
from tasks_lib.steps import step


@step("commit-changes")
def commit_changes(workspace: str, mirror: str, message: str, session_id: str, work_branch: str) -> str:
    """Commit the work on its branch and hand the commit to the repository's mirror; returns the commit.

    DeliveryError (with git's message) when that fails; the session can then be decided again.
    """
    try:
        commit = delivery.commit_workspace(workspace, message, session_id)
        delivery.hand_to_mirror(workspace, mirror, commit, work_branch)
    except GitError as exc:
        raise delivery.DeliveryError(str(exc)) from None
    return commit


@step("deliver-changes")
def deliver_changes(
    mirror: str,
    repository: str,
    on_accept: str,
    commit: str,
    work_branch: str,
    base_branch: str,
    base_commit: str,
    message: str,
) -> str:
    """Deliver a committed change as configured (branch, merge or pull request); returns where it went.

    DeliveryError (with git's or the network's message) when any step fails; the session can then be
    decided again.
    """
    import httpx

    try:
        if on_accept == "merge":
            where = delivery.deliver_merge(mirror, repository, base_branch, base_commit, commit, work_branch)
        elif on_accept == "pull_request":
            title, _, body = message.partition("\n\n")
            where = delivery.deliver_pull_request(mirror, repository, commit, work_branch, base_branch, title, body)
        else:
            where = delivery.deliver_branch(mirror, repository, commit, work_branch)
    except GitError as exc:
        raise delivery.DeliveryError(str(exc)) from None
    except httpx.HTTPError as exc:  # the pull request API unreachable or too slow
        raise delivery.DeliveryError(f"the pull request could not be opened: {type(exc).__name__}: {exc}") from None
    get_run_logger().info("accepted as %s: %s", commit[:10], where)
    return where


@step("discard-changes")
def discard_changes(mirror: str, workspace: str, work_branch: str) -> None:
    """Remove the workspace and the work branch."""
    delivery.discard_workspace(mirror, workspace, work_branch)
    get_run_logger().info("removed workspace %s and branch %s", workspace, work_branch)


@step("reset-workspace")
def reset_workspace(workspace: str, base_commit: str) -> None:
    """Throw the workspace's changes away, back to the base commit."""
    delivery.reset_workspace(workspace, base_commit)


@step("restore-workspace")
def restore_workspace(
    repository: str, mirrors_dir: Path, workspace: str, work_branch: str, base_commit: str, patch: bytes
) -> str:
    """Make sure the workspace exists with the session's changes, rebuilding it from base + patch if needed."""
    how = delivery.ensure_workspace(repository, mirrors_dir, workspace, work_branch, base_commit, patch)
    get_run_logger().info("workspace %s: %s", workspace, how)
    return how
