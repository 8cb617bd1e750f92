"""A session as data: its statuses, its workspace, where an accepted change goes, and what a run hands back."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel

from tasks_lib.domain.fields import OnAccept


class SessionStatus(str, Enum):
    """Lifecycle of a session; every session ends in a terminal status with a reason."""

    pending = "pending"
    running = "running"
    completed = "completed"
    stopped = "stopped"
    failed = "failed"
    awaiting_review = "awaiting_review"
    delivering = "delivering"  # accepted by a reviewer; the commit is on its way to its target
    accepted = "accepted"
    rejected = "rejected"
    expired = "expired"
    cancelled = "cancelled"  # its flow run was cancelled in Prefect
    crashed = "crashed"  # its flow run crashed (process or worker died); the work so far is kept

    @property
    def terminal(self) -> bool:
        """True when the session will not change any more."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = {
    SessionStatus.completed,
    SessionStatus.stopped,
    SessionStatus.failed,
    SessionStatus.accepted,
    SessionStatus.rejected,
    SessionStatus.expired,
    SessionStatus.cancelled,
    SessionStatus.crashed,
}


class Workspace(BaseModel):
    """Where a session works: an isolated worktree on its own branch."""

    path: str
    work_branch: str
    base_branch: str
    base_commit: str
    mirror: str
    mirror_action: str  # cloned | fetched | fresh (fetched earlier in this flow run)


class SessionResult(BaseModel):
    """What a finished run hands back."""

    session_id: str
    status: SessionStatus
    reason: str
    work_branch: str | None = None
    base_commit: str | None = None
    workspace: str | None = None
    diffstat: str | None = None
    summary: str | None = None


class DeliveryTarget(BaseModel):
    """Where an accepted change is being delivered: recorded before anything is pushed."""

    mode: OnAccept
    repository: str
    branch: str  # the base branch for a merge, else the work branch
    commit: str

    def describe(self) -> str:
        """Where the commit goes, in words."""
        if self.mode == "merge":
            return f"merge into {self.branch} of {self.repository}"
        if self.mode == "pull_request":
            return f"pull request from {self.branch} on {self.repository}"
        return f"branch {self.branch} in {self.repository}"
