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

from tasks_lib.session.events import emit_after_transition
from tasks_lib.domain.session import SessionStatus as S
from tasks_lib.store import Store

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


class TransitionRefused(RuntimeError):
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


class Claim(BaseModel):
    """What a flow run does with the session it finds in the store for its id."""

    session_id: str
    mode: Literal["new", "continue", "review", "deliver", "ended"]


def claim_session(store: Store, flow_run_id: str | None, request: dict[str, Any], workflow: str | None) -> Claim:
    """The session of this flow run: a new one for a first run, else the one it started (one session per run).

    A re-entered run (resumed after a suspend, rescheduled after its worker died, retried) finds its
    own session and carries on from where the store says it stopped.
    """
    existing = store.session_for_flow_run(flow_run_id) if flow_run_id else None
    if existing is None:
        return Claim(session_id=store.create_session(request, flow_run_id=flow_run_id, workflow=workflow), mode="new")
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


def refusal(decision: str, row: Any, settings: Any, budget_line: str | None) -> str | None:
    """Why a request for another iteration cannot be carried out (a notice for the reviewer), or None.

    Change requests and retries are capped by rounds, and both need budget left for the session.
    """
    if decision == "request_changes" and row.change_rounds >= settings.max_change_rounds:
        return f"no change rounds left ({row.change_rounds} of {settings.max_change_rounds} used): accept, reject or retry"
    retries = row.retry_rounds or 0
    if decision == "retry" and retries >= settings.max_retry_rounds:
        return f"no retries left ({retries} of {settings.max_retry_rounds} used): accept, reject or request changes"
    if budget_line:
        return f"the session's budget is used up ({budget_line}): accept or reject, or start a new run"
    return None
