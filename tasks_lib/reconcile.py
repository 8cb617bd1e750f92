"""Bring stored sessions up to date with the world before they are shown or acted on.

Two things can end a session without its flow saying so: the review deadline passing while the run
is suspended, and the process running the session disappearing (killed outright, machine rebooted).
Both are settled here, so the inbox never shows a session as running or waiting when it cannot be.
"""

from __future__ import annotations

import os

from tasks_lib.diff import capture_workspace_diff
from tasks_lib.models import SessionStatus
from tasks_lib.runner import runner_gone
from tasks_lib.secrets import Redactor
from tasks_lib.store import SessionRow, Store


def _keep_work(store: Store, row: SessionRow) -> str:
    """Store the workspace's diff of a session cut off mid-work; says what was kept."""
    if not (row.workspace and row.base_commit and os.path.isdir(row.workspace)):
        return "no workspace was left to keep"
    try:
        diff = capture_workspace_diff(row.workspace, row.base_commit)
    except Exception as exc:  # a damaged workspace must not stop the session from ending
        return f"its diff could not be read ({type(exc).__name__}); the workspace {row.workspace} is left as it was"
    store.save_diff(row.id, diff, row.iteration)
    return f"the changes made so far are kept ({diff.diffstat()})"


def end_orphans(store: Store, session_id: str | None = None) -> list[str]:
    """End, as failed, the unfinished sessions (all, or just this one) whose process on this host is gone.

    Returns the ids of the sessions it ended.
    """
    ended = []
    redact = Redactor.from_env()
    for row in store.orphaned(runner_gone, session_id):
        if row.status == SessionStatus.awaiting_review.value:
            reason = (f"the process waiting for its review ({row.runner}) ended, so no decision can reach it; "
                      "diff and work branch kept — start a new run to continue")
        else:
            reason = (f"the process running it ({row.runner}) ended without finishing it (killed or crashed); "
                      + _keep_work(store, row))
        store.finish_session(row.id, SessionStatus.failed, redact(reason))
        ended.append(row.id)
    return ended


def refresh(store: Store) -> None:
    """Settle sessions that ended outside their flow: overdue reviews expire, orphans fail."""
    store.expire_overdue()
    end_orphans(store)
