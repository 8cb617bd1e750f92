"""Opening a store's database: one engine per address and process, its schema brought to this version first.

Migrating runs the revisions in ``migrations/`` under a lock shared by every process that opens the store (a
PostgreSQL advisory lock, or a lock file beside a SQLite database); a store made before versioning is adopted
and stamped, and a store at a revision this version does not know is refused with ``StoreError``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Column, Connection, Table, create_engine, event
from sqlalchemy.engine import Engine

from tasks_lib.errors import AgentTasksError
from tasks_lib.store import migrations

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
MIGRATION_LOCK_KEY = 0x6167_7461_736B  # pg_advisory_xact_lock key of schema migrations ("agtask")


def open_engine(url: str) -> Engine:
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


class StoreError(AgentTasksError, RuntimeError):
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
        raise StoreError(
            f"the store at {_where(engine)} records {len(versions)} schema revisions ({versions}), "
            "expected one; it was not made by agent-tasks"
        )
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
        for table in baseline.sorted_tables
        if table.name in existing
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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Set each new SQLite connection to WAL, NORMAL sync and enforced foreign keys."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL with synchronous=NORMAL: a commit survives the process dying (killed runs keep their steps) and
    # costs no fsync; only a power loss can drop the last commits. FULL cost ~8 ms per step here.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
