"""Questions asked across sessions: usage totals, the audit trail, and the sessions that settling and garbage
collection act on.

Plain functions over a Store (they read through its transactions); reading and writing one session's record is the
Store's job.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import defer

from tasks_lib.domain.people import AuditEvent, starter_of
from tasks_lib.domain.request import trigger_line
from tasks_lib.domain.session import TERMINAL_STATUSES, SessionStatus
from tasks_lib.store.people import list_people
from tasks_lib.store.store import Store
from tasks_lib.store.tables import AuditRow, ReviewRow, SessionRow, utcnow

# Statuses in which a live process is working on the session (or blocking on its review).
ORPHANABLE = (SessionStatus.pending, SessionStatus.running, SessionStatus.awaiting_review, SessionStatus.delivering)


def usage_by(store: Store, by: str) -> list[dict[str, Any]]:
    """Sessions, steps, tokens and cost summed by agent, workflow or day (newest day first)."""
    columns = (
        SessionRow.agent,
        SessionRow.workflow,
        SessionRow.created_at,
        SessionRow.steps_used,
        SessionRow.prompt_tokens,
        SessionRow.completion_tokens,
        SessionRow.cached_tokens,
        SessionRow.cost_usd,
    )
    with store.transaction() as db:
        rows = db.execute(select(*columns)).all()
    groups: dict[str, dict[str, Any]] = {}
    for agent, workflow, created, steps, prompt, completion, cached, cost in rows:
        key = {"agent": agent, "workflow": workflow or "(manual)", "day": created.date().isoformat()}[by]
        g = groups.setdefault(
            key,
            {
                "key": key,
                "sessions": 0,
                "steps": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cached_tokens": 0,
                "cost_usd": None,
                "unpriced_sessions": 0,
            },
        )
        g["sessions"] += 1
        g["steps"] += steps or 0
        g["prompt_tokens"] += prompt or 0
        g["completion_tokens"] += completion or 0
        g["cached_tokens"] += cached or 0
        if cost is None:
            g["unpriced_sessions"] += 1 if (prompt or 0) else 0
        else:
            g["cost_usd"] = (g["cost_usd"] or 0.0) + cost
    return sorted(groups.values(), key=lambda g: g["key"], reverse=by == "day")


def unsettled(store: Store) -> list[SessionRow]:
    """Sessions not yet in a terminal status (without their conversations)."""
    query = (
        select(SessionRow)
        .options(defer(SessionRow.conversation), defer(SessionRow.request), defer(SessionRow.agent_spec))
        .where(SessionRow.status.not_in([s.value for s in TERMINAL_STATUSES]))
    )
    with store.transaction() as db:
        return list(db.scalars(query).all())


def orphaned(store: Store, is_gone: Callable[[str], bool], session_id: str | None = None) -> list[SessionRow]:
    """Unfinished sessions (all, or just this one) whose recorded runner process is gone (as judged by is_gone)."""
    query = select(SessionRow).where(
        SessionRow.status.in_([s.value for s in ORPHANABLE]), SessionRow.runner.is_not(None)
    )
    if session_id is not None:
        query = query.where(SessionRow.id == session_id)
    with store.transaction() as db:
        return [row for row in db.scalars(query).all() if is_gone(row.runner)]


def overdue_reviews(store: Store, now: datetime | None = None) -> list[str]:
    """Ids of sessions waiting for a review whose deadline has passed."""
    now = now or utcnow()
    query = select(SessionRow.id, SessionRow.review_deadline).where(
        SessionRow.status == SessionStatus.awaiting_review.value, SessionRow.review_deadline.is_not(None)
    )
    with store.transaction() as db:
        rows = db.execute(query).all()
    return [
        sid for sid, deadline in rows if (deadline if deadline.tzinfo else deadline.replace(tzinfo=timezone.utc)) < now
    ]


def ended_before(store: Store, cutoff: datetime) -> list[tuple[str, str | None]]:
    """(id, workspace) of sessions that ended before ``cutoff``."""
    query = select(SessionRow.id, SessionRow.workspace).where(
        SessionRow.status.in_([s.value for s in TERMINAL_STATUSES]), SessionRow.finished_at < cutoff
    )
    with store.transaction() as db:
        return [(sid, ws) for sid, ws in db.execute(query).all()]


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def audit_events(store: Store, since: datetime | None = None) -> list[AuditEvent]:
    """Sessions started (by whom), decisions (who, how known, what, the commit), decisions refused (who tried, how,
    why) and changes to the people (who changed whose record, and what), oldest first."""
    started = select(
        SessionRow.id, SessionRow.created_at, SessionRow.started_by, SessionRow.request, SessionRow.workflow
    )
    decided = select(ReviewRow).order_by(ReviewRow.id)
    other = select(AuditRow).order_by(AuditRow.id)
    if since is not None:
        started = started.where(SessionRow.created_at >= since)
        decided = decided.where(ReviewRow.decided_at >= since)
        other = other.where(AuditRow.at >= since)
    events: list[AuditEvent] = []
    people = list_people(store)
    with store.transaction() as db:
        for sid, created, by, request, workflow in db.execute(started).all():
            trigger = (request or {}).get("trigger")
            how = "cli" if by else "trigger" if trigger else "local"
            events.append(
                AuditEvent(
                    at=_aware(created),
                    kind="started",
                    session_id=sid,
                    person=starter_of(by, trigger, people),  # for a trigger: the sender, when they are a person
                    auth=how,
                    detail=trigger_line(trigger) if trigger else (f"workflow {workflow}" if workflow else ""),
                )
            )
        for r in db.scalars(decided).all():
            events.append(
                AuditEvent(
                    at=_aware(r.decided_at),
                    kind="decided",
                    session_id=r.session_id,
                    person=r.decided_by,
                    auth=r.auth or "unrecorded",
                    decision=r.decision,
                    commit=r.commit,
                    detail=r.outcome,
                )
            )
        for a in db.scalars(other).all():
            refused = a.kind == "refused"
            events.append(
                AuditEvent(
                    at=_aware(a.at),
                    kind="refused" if refused else "people",
                    session_id=a.session_id,
                    person=a.person,
                    auth=a.auth or "none",
                    decision=(a.action or None) if refused else None,
                    detail=a.detail,
                    refused=refused,
                    via=a.via if refused else None,  # type: ignore[arg-type]
                    action=None if refused else a.action,
                    subject=a.subject,
                )
            )
    return sorted(events, key=lambda e: e.at)
