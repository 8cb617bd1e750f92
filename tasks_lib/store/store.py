"""The session store: SQLAlchemy 2 over SQLite by default, portable to PostgreSQL (no dialect SQL)."""

from __future__ import annotations

import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, defer, mapped_column, sessionmaker

from tasks_lib.store import migrations
from tasks_lib.domain.session import TERMINAL_STATUSES, SessionStatus
from tasks_lib.domain.records import DiffResult, StepRecord, Usage
from tasks_lib.domain.request import TaskRequest

STEP_RESULT_CAP = 200_000  # characters of a tool result kept in the store
# Statuses in which a live process is working on the session (or blocking on its review).
ORPHANABLE = (SessionStatus.pending, SessionStatus.running, SessionStatus.awaiting_review, SessionStatus.delivering)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class SessionRow(Base):
    """One run of a task: its request, where it works, how it ended and what it used."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(32), index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    agent: Mapped[str] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    repository: Mapped[str] = mapped_column(Text)
    branch: Mapped[str | None] = mapped_column(String(255))
    instructions: Mapped[str] = mapped_column(Text)
    reviewer: Mapped[str | None] = mapped_column(String(200), index=True)
    workflow: Mapped[str | None] = mapped_column(String(200), index=True)
    base_commit: Mapped[str | None] = mapped_column(String(64))
    work_branch: Mapped[str | None] = mapped_column(String(255))
    workspace: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    iteration: Mapped[int] = mapped_column(Integer, default=1)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    steps_used: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    lines_added: Mapped[int] = mapped_column(Integer, default=0)
    lines_removed: Mapped[int] = mapped_column(Integer, default=0)
    files_changed: Mapped[int] = mapped_column(Integer, default=0)
    agent_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    conversation: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    review_key: Mapped[str | None] = mapped_column(String(64))
    review_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    change_rounds: Mapped[int] = mapped_column(Integer, default=0)
    delivered_commit: Mapped[str | None] = mapped_column(String(64))
    delivered_to: Mapped[str | None] = mapped_column(Text)
    runner: Mapped[str | None] = mapped_column(String(255))  # host:pid of the process working on it
    sandbox: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the SandboxSpec its commands run under
    iteration_start: Mapped[int | None] = mapped_column(Integer)  # messages of the conversation before this iteration
    agent_seconds: Mapped[float | None] = mapped_column(Float)  # wall time the agent loop used, all iterations
    retry_rounds: Mapped[int | None] = mapped_column(Integer)  # retries a reviewer asked for
    delivery_target: Mapped[str | None] = mapped_column(Text)  # where an accept is delivering (set before pushing)
    candidates: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # best-of-N: {iteration, chosen, ranked: [...]}

    def usage(self) -> Usage:
        """What the session has used so far, all iterations."""
        return Usage(steps=self.steps_used, prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                     cached_tokens=self.cached_tokens, cost_usd=self.cost_usd)


class TransitionRow(Base):
    """One change of a session's status: from what, to what, why, and who made it."""

    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str] = mapped_column(String(32), default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StepRow(Base):
    """One model turn of a session, with the tool calls it made."""

    __tablename__ = "steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    iteration: Mapped[int] = mapped_column(Integer, default=1)
    index: Mapped[int] = mapped_column(Integer)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)


class DiffRow(Base):
    """The diff of one iteration: the re-appliable patch and its per-file stats."""

    __tablename__ = "diffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    iteration: Mapped[int] = mapped_column(Integer, default=1)
    scope: Mapped[str] = mapped_column(String(16), default="cumulative")  # cumulative | increment
    base_commit: Mapped[str] = mapped_column(String(64))
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    added: Mapped[int] = mapped_column(Integer)
    removed: Mapped[int] = mapped_column(Integer)
    patch: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SummaryRow(Base):
    """The summary of one iteration: the model's prose plus the facts code computed."""

    __tablename__ = "summaries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    iteration: Mapped[int] = mapped_column(Integer, default=1)
    markdown: Mapped[str] = mapped_column(Text)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewRow(Base):
    """One review decision on a session."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    iteration: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(32))
    feedback: Mapped[str] = mapped_column(Text, default="")
    instructions: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(Text, default="")
    comments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)  # line comments
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CheckRow(Base):
    """One run of the agent's check command."""

    __tablename__ = "checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    iteration: Mapped[int] = mapped_column(Integer)
    fix_round: Mapped[int] = mapped_column(Integer, default=0)
    command: Mapped[str] = mapped_column(Text)
    passed: Mapped[bool] = mapped_column(Boolean)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    output_tail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DeliveryRow(Base):
    """A webhook delivery the relay has already turned into an event."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
MIGRATION_LOCK_KEY = 0x6167_7461_736B  # pg_advisory_xact_lock key of schema migrations ("agtask")


def _engine(url: str) -> Engine:
    """The engine of ``url``, made once per process, its store brought to this version's schema."""
    with _engines_lock:
        if url not in _engines:
            if url.startswith("sqlite"):
                engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True)
            try:
                _migrate(engine)
            except BaseException:
                engine.dispose()
                raise
            _engines[url] = engine
        return _engines[url]


class StoreError(RuntimeError):
    """The store cannot be used (for example, it was made by another version)."""


def _where(engine: Engine) -> str:
    """The store's address for messages, without its password."""
    return engine.url.render_as_string(hide_password=True)


def _migrate(engine: Engine) -> None:
    """Bring the store to this version's schema, once, under a lock; cheap when it is already there.

    All of it is one transaction, so a migration that fails leaves the store as it was.
    """
    seen = _probe_revision(engine)
    if seen == migrations.head():
        return
    _refuse_unknown(seen, engine)
    with _migration_lock(engine) as db:
        current = _stored_revision(db, engine)  # another process may have migrated while this one waited
        _refuse_unknown(current, engine)
        if current is None and _adopt_unversioned(db, engine):
            current = migrations.BASELINE
        if current != migrations.head():
            migrations.upgrade(db)


def _probe_revision(engine: Engine) -> str | None:
    """The schema revision recorded in the store, read once without a lock; None when that read fails or is
    not one revision (no table yet, or being made: the locked path looks again)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as db:
            versions = db.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except DBAPIError:
        return None
    return versions[0] if len(versions) == 1 else None


def _stored_revision(db: Connection, engine: Engine) -> str | None:
    """The schema revision recorded in the store, or None when it records none (new, or made before versioning)."""
    from sqlalchemy import inspect, text

    if not inspect(db).has_table("alembic_version"):
        return None
    versions = db.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(versions) != 1:
        raise StoreError(f"the store at {_where(engine)} records {len(versions)} schema revisions ({versions}), "
                         "expected one; it was not made by agent-tasks")
    return versions[0]


def _refuse_unknown(revision: str | None, engine: Engine) -> None:
    """Refuse a store at a schema revision this version does not know (made by a newer version)."""
    if revision is not None and revision not in migrations.revisions():
        raise StoreError(
            f"the store at {_where(engine)} is at schema revision {revision}, which this version of agent-tasks "
            f"does not know (it knows up to {migrations.head()}): it was made by a newer version; upgrade "
            "agent-tasks or set AGENT_TASKS_DB_URL to another database"
        )


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the store's migration lock (across processes) until it ends."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy import text

        with engine.begin() as db:
            db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            yield db
        return
    with _file_lock(engine), engine.begin() as db:
        if engine.dialect.name == "sqlite":
            db.exec_driver_sql("BEGIN IMMEDIATE")  # else pysqlite commits each DDL statement on its own
        yield db


@contextmanager
def _file_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on ``<database file>.migrate.lock`` (nothing to lock for a database in memory)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    import fcntl

    with open(f"{database}.migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _adopt_unversioned(db: Connection, engine: Engine) -> bool:
    """Bring a store made before versioning to the baseline revision's shape and stamp it; False if it is new.

    Columns of the baseline that may be empty are added in place, and missing tables and indexes are
    created; a missing column that may not be empty means the store was made by an incompatible version.
    """
    from sqlalchemy import inspect

    baseline = migrations.baseline_schema()
    inspector = inspect(db)
    existing = set(inspector.get_table_names())
    if not existing & set(baseline.tables):
        return False
    missing = [
        (table, column)
        for table in baseline.sorted_tables if table.name in existing
        for column in table.columns
        if column.name not in {c["name"] for c in inspector.get_columns(table.name)}
    ]
    _refuse_required(missing, engine)
    _add_columns(db, [column for _, column in missing])
    for table in baseline.sorted_tables:
        table.create(db, checkfirst=True)
        for index in table.indexes:
            index.create(db, checkfirst=True)
    migrations.stamp(db, migrations.BASELINE)
    return True


def _refuse_required(missing: list[tuple[Table, Column[Any]]], engine: Engine) -> None:
    """Refuse a store missing a column that may not be empty (it cannot be added in place)."""
    if all(c.nullable and not c.primary_key and c.server_default is None for _, c in missing):
        return
    names = [f"{t.name}.{c.name}" for t, c in missing]
    shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
    raise StoreError(
        f"the store at {_where(engine)} was made by another version of agent-tasks (missing {shown}); "
        "move it aside or set AGENT_TASKS_DB_URL to a new database"
    )


def _add_columns(db: Connection, columns: list[Column[Any]]) -> None:
    """Add columns that may be empty to their existing tables."""
    from sqlalchemy import text

    quote = db.dialect.identifier_preparer.quote
    for column in columns:
        kind = column.type.compile(dialect=db.dialect)
        db.execute(text(f"ALTER TABLE {quote(column.table.name)} ADD COLUMN {quote(column.name)} {kind}"))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL with synchronous=NORMAL: a commit survives the process dying (killed runs keep their steps) and
    # costs no fsync; only a power loss can drop the last commits. FULL cost ~8 ms per step here.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class SessionNotFound(LookupError):
    """No session matches the id given."""


class Store:
    """Reads and writes sessions, steps, diffs and summaries."""

    def __init__(self, url: str):
        if url.startswith("sqlite:///"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.engine = _engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _db(self) -> Session:
        return self._sessions.begin()  # type: ignore[return-value]

    def create_session(self, request: TaskRequest | dict[str, Any], flow_run_id: str | None = None,
                       workflow: str | None = None) -> str:
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
            db.add(TransitionRow(session_id=session_id, from_status=None, to_status=SessionStatus.pending.value,
                                 reason="created", by="flow"))
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

    def transition(self, session_id: str, to: SessionStatus, reason: str, allowed_from: Iterable[SessionStatus],
                   by: str, **fields: Any) -> str | None:
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
                    db.add(TransitionRow(session_id=session_id, from_status=current, to_status=to.value,
                                         reason=reason[:4000], by=by))
                    return current
        return None

    def transitions(self, session_id: str) -> list[TransitionRow]:
        """The session's status changes, oldest first."""
        query = select(TransitionRow).where(TransitionRow.session_id == session_id).order_by(TransitionRow.id)
        with self._db() as db:
            return list(db.scalars(query).all())

    @staticmethod
    def _apply_usage(row: SessionRow, usage: Usage) -> None:
        row.steps_used, row.prompt_tokens, row.completion_tokens = usage.steps, usage.prompt_tokens, usage.completion_tokens
        row.cached_tokens, row.cost_usd = usage.cached_tokens, usage.cost_usd

    def add_step(self, session_id: str, step: StepRecord, usage: Usage, iteration: int = 1,
                 conversation: list[dict[str, Any]] | None = None) -> None:
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

    def save_check(self, session_id: str, iteration: int, check) -> None:
        """Record one run of the check command (a CheckResult)."""
        with self._db() as db:
            db.add(CheckRow(session_id=session_id, iteration=iteration, fix_round=check.fix_rounds, command=check.command,
                            passed=check.passed, exit_code=check.exit_code, duration_s=check.duration_s,
                            output_tail=check.output_tail))

    def checks(self, session_id: str) -> list[CheckRow]:
        """Every check run of a session, oldest first."""
        query = select(CheckRow).where(CheckRow.session_id == session_id).order_by(CheckRow.id)
        with self._db() as db:
            return list(db.scalars(query).all())

    def add_usage(self, session_id: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int,
                  cost_usd: float | None) -> None:
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

    def unsettled(self) -> list[SessionRow]:
        """Sessions not yet in a terminal status (without their conversations)."""
        query = (select(SessionRow).options(defer(SessionRow.conversation), defer(SessionRow.request),
                                            defer(SessionRow.agent_spec))
                 .where(SessionRow.status.not_in([s.value for s in TERMINAL_STATUSES])))
        with self._db() as db:
            return list(db.scalars(query).all())

    def list_sessions(self, limit: int = 50, status: str | None = None, reviewer: str | None = None,
                      repository: str | None = None, workflow: str | None = None, offset: int = 0) -> list[SessionRow]:
        """Most recent sessions first, optionally filtered (repository: a substring of its address), skipping
        the first ``offset`` of them (paging)."""
        query = (select(SessionRow).options(defer(SessionRow.conversation), defer(SessionRow.agent_spec))
                 .order_by(SessionRow.created_at.desc()).limit(limit).offset(max(0, offset)))
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
            select(DiffRow)
            .where(DiffRow.session_id == session_id, DiffRow.scope == scope)
            .order_by(DiffRow.id.desc())
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

    def add_review(self, session_id: str, iteration: int, decision: str, feedback: str = "",
                   instructions: str = "", outcome: str = "", comments: list[dict[str, Any]] | None = None) -> None:
        """Record a reviewer's decision (with its line comments) and what came of it."""
        with self._db() as db:
            db.add(ReviewRow(session_id=session_id, iteration=iteration, decision=decision, feedback=feedback,
                             instructions=instructions, outcome=outcome, comments=comments or None))

    def reviews(self, session_id: str) -> list[ReviewRow]:
        """The session's review decisions, oldest first."""
        query = select(ReviewRow).where(ReviewRow.session_id == session_id).order_by(ReviewRow.id)
        with self._db() as db:
            return list(db.scalars(query).all())

    def record_delivery(self, delivery_id: str) -> bool:
        """Remember a webhook delivery; False when it was seen before (a redelivery)."""
        from sqlalchemy.exc import IntegrityError

        try:
            with self._db() as db:
                db.add(DeliveryRow(id=delivery_id))
        except IntegrityError:
            return False
        return True

    def forget_delivery(self, delivery_id: str) -> None:
        """Forget a delivery whose event could not be emitted, so a redelivery is accepted."""
        with self._db() as db:
            row = db.get(DeliveryRow, delivery_id)
            if row is not None:
                db.delete(row)

    def usage_by(self, by: str) -> list[dict[str, Any]]:
        """Sessions, steps, tokens and cost summed by agent, workflow or day (newest day first)."""
        columns = (SessionRow.agent, SessionRow.workflow, SessionRow.created_at, SessionRow.steps_used,
                   SessionRow.prompt_tokens, SessionRow.completion_tokens, SessionRow.cached_tokens, SessionRow.cost_usd)
        with self._db() as db:
            rows = db.execute(select(*columns)).all()
        groups: dict[str, dict[str, Any]] = {}
        for agent, workflow, created, steps, prompt, completion, cached, cost in rows:
            key = {"agent": agent, "workflow": workflow or "(manual)", "day": created.date().isoformat()}[by]
            g = groups.setdefault(key, {"key": key, "sessions": 0, "steps": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                        "cached_tokens": 0, "cost_usd": None, "unpriced_sessions": 0})
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

    def overdue_reviews(self, now: datetime | None = None) -> list[str]:
        """Ids of sessions waiting for a review whose deadline has passed."""
        now = now or utcnow()
        query = select(SessionRow.id, SessionRow.review_deadline).where(
            SessionRow.status == SessionStatus.awaiting_review.value, SessionRow.review_deadline.is_not(None)
        )
        with self._db() as db:
            rows = db.execute(query).all()
        return [sid for sid, deadline in rows if (deadline if deadline.tzinfo else deadline.replace(tzinfo=timezone.utc)) < now]

    def orphaned(self, is_gone: Callable[[str], bool], session_id: str | None = None) -> list[SessionRow]:
        """Unfinished sessions (all, or just this one) whose recorded runner process is gone (as judged by is_gone)."""
        query = select(SessionRow).where(
            SessionRow.status.in_([s.value for s in ORPHANABLE]), SessionRow.runner.is_not(None)
        )
        if session_id is not None:
            query = query.where(SessionRow.id == session_id)
        with self._db() as db:
            return [row for row in db.scalars(query).all() if is_gone(row.runner)]

    def ended_before(self, cutoff: datetime) -> list[tuple[str, str | None]]:
        """(id, workspace) of sessions that ended before ``cutoff``."""
        query = select(SessionRow.id, SessionRow.workspace).where(
            SessionRow.status.in_([s.value for s in TERMINAL_STATUSES]), SessionRow.finished_at < cutoff)
        with self._db() as db:
            return [(sid, ws) for sid, ws in db.execute(query).all()]

    def forget_deliveries_before(self, cutoff: datetime) -> int:
        """Forget webhook deliveries received before ``cutoff`` (redeliveries that old are not expected); how many."""
        from sqlalchemy import delete

        with self._db() as db:
            return db.execute(delete(DeliveryRow).where(DeliveryRow.received_at < cutoff)).rowcount

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
