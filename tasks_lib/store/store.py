"""The Store: every read and write of one session's record, through SQLAlchemy 2 sessions.

SQLite by default, portable to PostgreSQL (no dialect SQL); the tables are in ``tables``, opening and migrating
the database in ``migrate``, questions across sessions in ``queries``, webhook deliveries in ``deliveries``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, defer, sessionmaker

from tasks_lib.domain.records import CheckResult, DiffResult, StepRecord, Usage
from tasks_lib.domain.request import TaskRequest
from tasks_lib.domain.session import SessionStatus
from tasks_lib.errors import AgentTasksError
from tasks_lib.store.migrate import open_engine
from tasks_lib.store.tables import (
    CheckRow,
    DiffRow,
    ReviewRow,
    SessionRow,
    StepRow,
    SummaryRow,
    TransitionRow,
    utcnow,
)

STEP_RESULT_CAP = 200_000  # characters of a tool result kept in the store


class SessionNotFound(AgentTasksError, LookupError):
    """No session matches the id given."""


class Store:
    """Reads and writes a session's record: the session, its transitions, steps, diffs, checks, summaries, reviews
    and usage (and finds sessions by id, flow run or recency)."""

    def __init__(self, url: str) -> None:
        """Open the store at ``url`` (a SQLite file's folder is made if missing), migrating it if it is behind."""
        if url.startswith("sqlite:///"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.engine = open_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _db(self) -> Session:
        """A session in a transaction that commits when its ``with`` block ends (rolls back on an error); for this
        class (and ``deliveries``): the store's other modules use `transaction`."""
        return self._sessions.begin()  # type: ignore[return-value]

    def transaction(self) -> AbstractContextManager[Session]:
        """``with store.transaction() as db:`` a SQLAlchemy session in one transaction, committed when the block
        ends (rolled back on an error): how the store's other modules (``people``, ``queries``, ``teachings``) read
        and write their questions across sessions. (Named for what it is: a "session" here is an agent's.)"""
        return self._sessions.begin()

    def create_session(
        self, request: TaskRequest | dict[str, Any], flow_run_id: str | None = None, workflow: str | None = None
    ) -> str:
        """Record a new session for a request and return its id."""
        data = request.model_dump() if isinstance(request, TaskRequest) else dict(request)
        session_id = str(uuid.uuid4())
        with self._db() as db:
            db.add(
                SessionRow(
                    id=session_id,
                    status=SessionStatus.pending.value,
                    request=data,
                    agent=str(data.get("agent") or "default"),
                    model=data.get("model"),
                    repository=str(data.get("repository") or ""),
                    branch=data.get("branch"),
                    instructions=str(data.get("instructions") or ""),
                    reviewer=data.get("reviewer"),
                    flow_run_id=flow_run_id,
                    workflow=workflow,
                )
            )
            db.flush()
            db.add(
                TransitionRow(
                    session_id=session_id,
                    from_status=None,
                    to_status=SessionStatus.pending.value,
                    reason="created",
                    by="flow",
                )
            )
        return session_id

    def update_session(self, session_id: str, **fields: Any) -> None:
        """Set columns of a session other than its status (statuses change only through ``transition``)."""
        if {"status", "status_reason", "finished_at"} & fields.keys():
            raise ValueError("a session's status changes only through Store.transition")
        with self._db() as db:
            row = db.get(SessionRow, session_id)
            if row is None:
                raise SessionNotFound(session_id)
            for key, value in fields.items():
                setattr(row, key, value)

    def transition(
        self,
        session_id: str,
        to: SessionStatus,
        reason: str,
        allowed_from: Iterable[SessionStatus],
        by: str,
        **fields: Any,
    ) -> str | None:
        """Move a session to ``to`` if, and only if, its status is one of ``allowed_from`` (compare-and-set).

        Sets ``fields`` in the same write and records the transition; a terminal status also sets
        ``finished_at``. Returns the status it came from, or None when the session was in another status
        (nothing is written then).
        """
        allowed = [s.value for s in allowed_from]
        values = {**fields, "status": to.value, "status_reason": reason, "updated_at": utcnow()}
        if to.terminal:
            values["finished_at"] = utcnow()
        for _ in range(5):  # the status read and the guarded write; repeat if another writer got in between
            with self._db() as db:
                current = db.scalar(select(SessionRow.status).where(SessionRow.id == session_id))
                if current is None:
                    raise SessionNotFound(session_id)
                if current not in allowed:
                    return None
                done = db.execute(
                    update(SessionRow).where(SessionRow.id == session_id, SessionRow.status == current).values(**values)
                ).rowcount
                if done == 1:
                    db.add(
                        TransitionRow(
                            session_id=session_id, from_status=current, to_status=to.value, reason=reason[:4000], by=by
                        )
                    )
                    return current
        return None

    def transitions(self, session_id: str) -> list[TransitionRow]:
        """The session's status changes, oldest first."""
        query = select(TransitionRow).where(TransitionRow.session_id == session_id).order_by(TransitionRow.id)
        with self._db() as db:
            return list(db.scalars(query).all())

    @staticmethod
    def _apply_usage(row: SessionRow, usage: Usage) -> None:
        """Set the session's usage columns to ``usage``."""
        row.steps_used, row.prompt_tokens, row.completion_tokens = (
            usage.steps,
            usage.prompt_tokens,
            usage.completion_tokens,
        )
        row.cached_tokens, row.cost_usd = usage.cached_tokens, usage.cost_usd

    def add_step(
        self,
        session_id: str,
        step: StepRecord,
        usage: Usage,
        iteration: int = 1,
        conversation: list[dict[str, Any]] | None = None,
    ) -> None:
        """Append one step (tool results kept up to the store's cap), the session's usage so far and, if
        given, the conversation up to this step."""
        record = step.model_dump(mode="json")
        for call in record["tool_calls"]:
            if len(call["result"]) > STEP_RESULT_CAP:
                cut = len(call["result"]) - STEP_RESULT_CAP
                call["result"] = call["result"][:STEP_RESULT_CAP] + f"\n[... {cut} more characters not stored]"
        with self._db() as db:
            db.add(StepRow(session_id=session_id, iteration=iteration, index=step.index, record=record))
            row = db.get(SessionRow, session_id)
            self._apply_usage(row, usage)
            if conversation is not None:
                row.conversation = conversation

    def save_diff(self, session_id: str, diff: DiffResult, iteration: int = 1, scope: str = "cumulative") -> None:
        """Store a diff of an iteration; the cumulative one also sets the session's totals."""
        with self._db() as db:
            db.add(
                DiffRow(
                    session_id=session_id,
                    iteration=iteration,
                    scope=scope,
                    base_commit=diff.base_commit,
                    files=[f.model_dump() for f in diff.files],
                    added=diff.added,
                    removed=diff.removed,
                    patch=diff.patch,
                )
            )
            if scope == "cumulative":
                row = db.get(SessionRow, session_id)
                row.lines_added, row.lines_removed, row.files_changed = diff.added, diff.removed, len(diff.files)

    def save_check(self, session_id: str, iteration: int, check: CheckResult) -> None:
        """Record one run of the check command (a CheckResult)."""
        with self._db() as db:
            db.add(
                CheckRow(
                    session_id=session_id,
                    iteration=iteration,
                    fix_round=check.fix_rounds,
                    command=check.command,
                    passed=check.passed,
                    exit_code=check.exit_code,
                    duration_s=check.duration_s,
                    output_tail=check.output_tail,
                )
            )

    def checks(self, session_id: str) -> list[CheckRow]:
        """Every check run of a session, oldest first."""
        query = select(CheckRow).where(CheckRow.session_id == session_id).order_by(CheckRow.id)
        with self._db() as db:
            return list(db.scalars(query).all())

    def add_usage(
        self, session_id: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int, cost_usd: float | None
    ) -> None:
        """Add a model call outside the agent loop (the summary) to the session's totals."""
        with self._db() as db:
            row = db.get(SessionRow, session_id)
            row.prompt_tokens += prompt_tokens
            row.completion_tokens += completion_tokens
            row.cached_tokens += cached_tokens
            if cost_usd is not None:
                row.cost_usd = (row.cost_usd or 0.0) + cost_usd

    def save_summary(self, session_id: str, markdown: str, facts: dict[str, Any], iteration: int = 1) -> None:
        """Store the summary of an iteration."""
        with self._db() as db:
            db.add(SummaryRow(session_id=session_id, iteration=iteration, markdown=markdown, facts=facts))

    def get_session(self, id_or_prefix: str) -> SessionRow:
        """The session with this id, or the only one whose id starts with it."""
        with self._db() as db:
            row = db.get(SessionRow, id_or_prefix)
            if row is not None:
                return row
            rows = db.scalars(select(SessionRow).where(SessionRow.id.startswith(id_or_prefix)).limit(2)).all()
        if len(rows) != 1:
            raise SessionNotFound(
                f"no session matches {id_or_prefix!r}" if not rows else f"{id_or_prefix!r} matches several sessions"
            )
        return rows[0]

    def session_for_flow_run(self, flow_run_id: str) -> SessionRow | None:
        """The session a flow run created, if any (the first one, should an older version have made several)."""
        query = select(SessionRow).where(SessionRow.flow_run_id == flow_run_id).order_by(SessionRow.created_at)
        with self._db() as db:
            return db.scalars(query).first()

    def list_sessions(
        self,
        limit: int = 50,
        status: str | None = None,
        reviewer: str | None = None,
        repository: str | None = None,
        workflow: str | None = None,
        offset: int = 0,
    ) -> list[SessionRow]:
        """Most recent sessions first, optionally filtered (repository: a substring of its address), skipping
        the first ``offset`` of them (paging)."""
        query = (
            select(SessionRow)
            .options(defer(SessionRow.conversation), defer(SessionRow.agent_spec))
            .order_by(SessionRow.created_at.desc())
            .limit(limit)
            .offset(max(0, offset))
        )
        if status:
            query = query.where(SessionRow.status == status)
        if reviewer:
            query = query.where(SessionRow.reviewer == reviewer)
        if repository:
            query = query.where(SessionRow.repository.contains(repository, autoescape=True))
        if workflow:
            query = query.where(SessionRow.workflow == workflow)
        with self._db() as db:
            return list(db.scalars(query).all())

    def steps(self, session_id: str) -> list[StepRecord]:
        """The session's steps in order."""
        query = select(StepRow).where(StepRow.session_id == session_id).order_by(StepRow.iteration, StepRow.index)
        with self._db() as db:
            return [StepRecord.model_validate({**r.record, "iteration": r.iteration}) for r in db.scalars(query).all()]

    def latest_diff(self, session_id: str, scope: str = "cumulative", with_patch: bool = True) -> DiffRow | None:
        """The diff of the session's latest iteration (cumulative against the base, or its increment);
        ``with_patch=False`` reads only its files and counts (the patch may be megabytes)."""
        query = (
            select(DiffRow).where(DiffRow.session_id == session_id, DiffRow.scope == scope).order_by(DiffRow.id.desc())
        )
        if not with_patch:
            query = query.options(defer(DiffRow.patch, raiseload=True))
        with self._db() as db:
            return db.scalars(query).first()

    def diffs(self, session_id: str) -> list[DiffRow]:
        """Every diff of a session, oldest first."""
        query = select(DiffRow).where(DiffRow.session_id == session_id).order_by(DiffRow.id)
        with self._db() as db:
            return list(db.scalars(query).all())

    def summaries(self, session_id: str) -> list[SummaryRow]:
        """Every summary of a session, oldest first."""
        query = select(SummaryRow).where(SummaryRow.session_id == session_id).order_by(SummaryRow.id)
        with self._db() as db:
            return list(db.scalars(query).all())

    def add_review(
        self,
        session_id: str,
        iteration: int,
        decision: str,
        feedback: str = "",
        instructions: str = "",
        outcome: str = "",
        comments: list[dict[str, Any]] | None = None,
        decided_by: str | None = None,
        auth: str | None = None,
        commit: str | None = None,
    ) -> None:
        """Record a reviewer's decision (with its line comments), who made it and how they were known, and what
        came of it (for an accept, the commit)."""
        with self._db() as db:
            db.add(
                ReviewRow(
                    session_id=session_id,
                    iteration=iteration,
                    decision=decision,
                    feedback=feedback,
                    instructions=instructions,
                    outcome=outcome,
                    comments=comments or None,
                    decided_by=decided_by,
                    auth=auth,
                    commit=commit,
                )
            )

    def reviews(self, session_id: str) -> list[ReviewRow]:
        """The session's review decisions, oldest first."""
        query = select(ReviewRow).where(ReviewRow.session_id == session_id).order_by(ReviewRow.id)
        with self._db() as db:
            return list(db.scalars(query).all())

    def latest_summary(self, session_id: str) -> SummaryRow | None:
        """The summary of the session's latest iteration."""
        query = select(SummaryRow).where(SummaryRow.session_id == session_id).order_by(SummaryRow.id.desc())
        with self._db() as db:
            return db.scalars(query).first()


def open_store(url: str | None = None) -> Store:
    """The store configured by AGENT_TASKS_DB_URL (or the default SQLite file)."""
    if url is None:
        from tasks_lib.config import load_settings

        url = load_settings().db_url
    return Store(url)
