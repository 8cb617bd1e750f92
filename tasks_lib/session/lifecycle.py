"""A session's life: its statuses, the transitions allowed between them, and how a flow run claims its session.

Every status change is a compare-and-set in the store (`Store.transition`): it happens only from a
status this table allows, a terminal status is final, and each change is recorded with its reason and
who made it (the flow, the reconciler, Prefect's state hooks, the CLI).

    pending ─► running ─► awaiting_review ─► delivering ─► accepted
                  │  ▲            │  ▲  │          │
                  │  └────────────┘  └──┼──────────┘ (delivery failed: a notice, decide again)
                  ▼                     ▼
     completed · stopped · failed · rejected · expired · cancelled · crashed   (terminal)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from tasks_lib.config import Settings, deployment_store_problem
from tasks_lib.domain.request import TaskRequest
from tasks_lib.domain.session import SessionStatus as S
from tasks_lib.errors import AgentTasksError
from tasks_lib.security.secrets import Redactor
from tasks_lib.session.events import emit_after_transition
from tasks_lib.store import Store, open_store

ENDINGS = frozenset({S.failed, S.cancelled, S.crashed})  # a session can end this way from any live status

NEXT: dict[S, frozenset[S]] = {
    S.pending: frozenset({S.running}) | ENDINGS,
    S.running: frozenset({S.running, S.awaiting_review, S.completed, S.stopped}) | ENDINGS,
    S.awaiting_review: frozenset({S.awaiting_review, S.running, S.delivering, S.rejected, S.expired}) | ENDINGS,
    S.delivering: frozenset({S.accepted, S.awaiting_review}) | ENDINGS,
}


def allowed_from(to: S) -> frozenset[S]:
    """The statuses a session may move to ``to`` from."""
    return frozenset(s for s, nexts in NEXT.items() if to in nexts)


class TransitionRefused(AgentTasksError, RuntimeError):
    """A status change the session's current status does not allow (it ended, or moved on, elsewhere)."""

    def __init__(self, session_id: str, to: S, current: S, current_reason: str):
        self.session_id, self.to, self.current, self.current_reason = session_id, to, current, current_reason
        super().__init__(
            f"session {session_id[:8]} cannot become {to.value}: it is {current.value}"
            + (f" ({current_reason})" if current_reason else "")
        )


def move(store: Store, session_id: str, to: S, reason: str, by: str = "flow", **fields: Any) -> S:
    """Change a session's status (and ``fields``) if its current status allows it; returns the status it left.

    Raises TransitionRefused when the session is in a status that does not lead to ``to`` — for
    example it was cancelled or expired while this process was working on it.
    """
    came_from = store.transition(session_id, to, reason, allowed_from(to), by, **fields)
    if came_from is None:
        row = store.get_session(session_id)
        raise TransitionRefused(session_id, to, S(row.status), row.status_reason)
    emit_after_transition(store, session_id, to)  # best effort: the session events automations notify on
    return S(came_from)


def settle(store: Store, session_id: str, to: S, reason: str, by: str, **fields: Any) -> bool:
    """End (or move) a session unless it already left every status leading there; True when it changed."""
    changed = store.transition(session_id, to, reason, allowed_from(to), by, **fields) is not None
    if changed:
        emit_after_transition(store, session_id, to)  # best effort: the session events automations notify on
    return changed


class StoreRefused(AgentTasksError, RuntimeError):
    """The configured store cannot serve this run (a deployment run on a machine-local SQLite file)."""


def open_run_store(settings: Settings, deployment_run: bool) -> Store:
    """The store a flow run records its session in; StoreRefused when a deployment run would use a machine-local file."""
    if deployment_run and (problem := deployment_store_problem(settings)):
        raise StoreRefused(problem)
    return open_store(settings.db_url)


CLAIM_NOTES = {
    "new": "",
    "review": " (resumed for its review)",
    "continue": " (continued: this flow run was restarted while the agent worked)",
    "deliver": " (continued: this flow run was restarted while delivering an accepted change)",
    "ended": " (already ended)",
}


class Claim(BaseModel):
    """What a flow run does with the session it finds in the store for its id."""

    session_id: str
    mode: Literal["new", "continue", "review", "deliver", "ended"]

    @property
    def note(self) -> str:
        """How the run takes its session up, for the log (empty for a new session)."""
        return CLAIM_NOTES[self.mode]


def claim_session(
    store: Store, flow_run_id: str | None, request: TaskRequest | dict[str, Any] | None, workflow: str | None
) -> Claim:
    """The session of this flow run: a new one for a first run, else the one it started (one session per run).

    A new session records the request as given (a request that is not valid is recorded too, and fails when the
    session starts), its secrets masked. A re-entered run (resumed after a suspend, rescheduled after its worker
    died, retried) finds its own session and carries on from where the store says it stopped.
    """
    existing = store.session_for_flow_run(flow_run_id) if flow_run_id else None
    if existing is None:
        data = request.model_dump() if isinstance(request, TaskRequest) else dict(request or {})
        session_id = store.create_session(Redactor.from_env().deep(data), flow_run_id=flow_run_id, workflow=workflow)
        return Claim(session_id=session_id, mode="new")
    status = S(existing.status)
    if status.terminal:
        mode = "ended"
    elif status is S.awaiting_review:
        mode = "review"
    elif status is S.delivering:
        mode = "deliver"
    elif status is S.running and existing.base_commit:
        mode = "continue"
    else:  # pending, or running but stopped before its workspace existed: start it properly
        mode = "new"
    return Claim(session_id=existing.id, mode=mode)
