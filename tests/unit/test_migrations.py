"""The store's schema is made and changed by Alembic revisions, once, under a lock, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from tasks_lib.domain.request import TaskRequest
from tasks_lib.store import Base, Store, StoreError, migrate, migrations

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    """The address of a store that does not exist yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


def stored_revisions(url: str) -> list[str]:
    """The rows of the store's alembic_version table, read without the store's code."""
    engine = create_engine(url)
    try:
        with engine.connect() as db:
            return list(db.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def forget_engine(url: str) -> None:
    """Make the next Store(url) of this process open the store afresh, as a new process would."""
    migrate._engines.pop(url).dispose()


def test_the_revisions_are_named_by_their_files_and_form_one_line():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrations.HERE))
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == [migrations.head()]
    assert [r.revision for r in script.walk_revisions()] == list(reversed(migrations.revisions()))
    for path in migrations.VERSIONS.glob("*.py"):
        if path.name != "__init__.py":
            assert script.get_revision(path.name[:4]).path == str(path)


def test_a_new_store_is_made_by_the_migrations_and_matches_the_models(url: str):
    """Revision 0001 written out by hand and the models agree, column for column and index for index."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = Store(url)
    assert stored_revisions(url) == [migrations.head()]
    with store.engine.connect() as db:
        differences = compare_metadata(MigrationContext.configure(db), Base.metadata)
    assert differences == []
    sid = store.create_session(TaskRequest(repository="/r", instructions="new"))
    assert [t.to_status for t in store.transitions(sid)] == ["pending"]


OLD_TYPES = {
    "sqlite": {"when": "DATETIME", "bytes": "BLOB"},
    "postgresql": {"when": "TIMESTAMP WITH TIME ZONE", "bytes": "BYTEA"},
}


def make_unversioned_store(url: str) -> None:
    """A store as an older agent-tasks left it: no alembic_version, no transitions, diffs or checks table,
    sessions without the columns added later (all optional) and without two of its indexes."""
    engine = create_engine(url)
    kinds = OLD_TYPES[engine.dialect.name]
    with engine.begin() as db:
        db.execute(
            text(f"""CREATE TABLE sessions (
            id VARCHAR(36) PRIMARY KEY, created_at {kinds["when"]} NOT NULL, updated_at {kinds["when"]} NOT NULL,
            finished_at {kinds["when"]}, status VARCHAR(32) NOT NULL, status_reason TEXT NOT NULL,
            request JSON NOT NULL, agent VARCHAR(200) NOT NULL, model VARCHAR(200), repository TEXT NOT NULL,
            branch VARCHAR(255), instructions TEXT NOT NULL, reviewer VARCHAR(200), workflow VARCHAR(200),
            base_commit VARCHAR(64), work_branch VARCHAR(255), workspace TEXT, flow_run_id VARCHAR(36),
            iteration INTEGER NOT NULL, end_reason VARCHAR(32), steps_used INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL,
            cost_usd FLOAT, lines_added INTEGER NOT NULL, lines_removed INTEGER NOT NULL,
            files_changed INTEGER NOT NULL, agent_spec JSON, conversation JSON, review_key VARCHAR(64),
            review_deadline {kinds["when"]}, change_rounds INTEGER NOT NULL, delivered_commit VARCHAR(64),
            delivered_to TEXT)""")
        )
        db.execute(text("CREATE INDEX ix_sessions_created_at ON sessions (created_at)"))
        db.execute(text("CREATE INDEX ix_sessions_status ON sessions (status)"))
        db.execute(text("CREATE INDEX ix_sessions_reviewer ON sessions (reviewer)"))
        db.execute(
            text("""CREATE TABLE steps (id INTEGER PRIMARY KEY, session_id VARCHAR(36) NOT NULL
            REFERENCES sessions (id) ON DELETE CASCADE, iteration INTEGER NOT NULL, "index" INTEGER NOT NULL,
            record JSON NOT NULL)""")
        )
        db.execute(text("CREATE INDEX ix_steps_session_id ON steps (session_id)"))
        db.execute(
            text(f"""CREATE TABLE deliveries (id VARCHAR(300) PRIMARY KEY,
            received_at {kinds["when"]} NOT NULL)""")
        )
        db.execute(
            text("""INSERT INTO sessions (id, created_at, updated_at, status, status_reason, request, agent,
            repository, instructions, workflow, iteration, steps_used, prompt_tokens, completion_tokens,
            cached_tokens, lines_added, lines_removed, files_changed, change_rounds)
            VALUES ('old-1', '2025-01-02 03:04:05', '2025-01-02 03:04:05', 'accepted', 'done', '{}', 'default',
            '/srv/repo', 'an old session', 'nightly', 1, 3, 100, 20, 0, 4, 1, 2, 0)""")
        )
    engine.dispose()


def test_a_store_made_before_versioning_is_brought_to_the_baseline_and_stamped(url: str):
    make_unversioned_store(url)
    store = Store(url)
    assert stored_revisions(url) == [migrations.head()]
    old = store.get_session("old-1")
    assert (old.instructions, old.workflow, old.steps_used, old.runner, old.delivery_target) == (
        "an old session",
        "nightly",
        3,
        None,
        None,
    )
    inspector = inspect(store.engine)
    assert {"transitions", "diffs", "summaries", "reviews", "checks"} <= set(inspector.get_table_names())
    assert {"runner", "sandbox", "iteration_start", "agent_seconds", "retry_rounds", "delivery_target"} <= {
        c["name"] for c in inspector.get_columns("sessions")
    }
    assert {"ix_sessions_workflow", "ix_sessions_flow_run_id", "ix_sessions_status"} <= {
        i["name"] for i in inspector.get_indexes("sessions")
    }
    store.update_session("old-1", runner="host:1", delivery_target="origin/main")
    sid = store.create_session(TaskRequest(repository="/r", instructions="new"))
    assert [t.to_status for t in store.transitions(sid)] == ["pending"]

    forget_engine(url)
    again = Store(url)
    assert again.get_session("old-1").runner == "host:1" and stored_revisions(url) == [migrations.head()]


def test_a_migration_that_fails_leaves_the_store_as_it_was(url: str):
    """Everything a migration does is one transaction, on SQLite too: here the index it would create has its
    name taken by a table, after the missing columns were added; the columns are gone again."""
    from sqlalchemy.exc import DBAPIError

    make_unversioned_store(url)
    engine = create_engine(url)
    with engine.begin() as db:
        db.execute(text("CREATE TABLE ix_sessions_workflow (x INTEGER)"))
    with pytest.raises(DBAPIError, match="ix_sessions_workflow"):
        Store(url)
    inspector = inspect(engine)
    assert "runner" not in {c["name"] for c in inspector.get_columns("sessions")}
    assert not {"alembic_version", "transitions"} & set(inspector.get_table_names())
    engine.dispose()


def test_an_unversioned_store_missing_a_required_column_is_refused_and_left_as_it_was(tmp_path):
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE sessions (id VARCHAR(36) PRIMARY KEY, status VARCHAR(32), runner TEXT)")
    with pytest.raises(
        StoreError,
        match=r"made by another version of agent-tasks \(missing sessions\.created_at, "
        r"sessions\.updated_at",
    ):
        Store(f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"sessions"}


def test_a_store_at_a_revision_this_version_does_not_know_is_refused_by_name(tmp_path):
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    Store(url)
    engine = create_engine(url)
    with engine.begin() as db:
        db.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()
    forget_engine(url)
    with pytest.raises(
        StoreError,
        match=r"is at schema revision 0999, which this version of agent-tasks does "
        rf"not know \(it knows up to {migrations.head()}\)",
    ):
        Store(url)
    assert stored_revisions(url) == ["0999"]


CHILD = """
import sys, time
from pathlib import Path
from tasks_lib.store import Store

url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.001)
Store(url).create_session({"repository": "/r", "instructions": ready.name})
"""


def start_children(url: str, tmp_path: Path, count: int) -> tuple[list[subprocess.Popen], list[Path], Path]:
    """``count`` processes that each open the store at ``url`` once ``go`` exists, and record a session."""
    go = tmp_path / "go"
    readies = [tmp_path / f"ready-{n}" for n in range(count)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(r), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in readies
    ]
    return children, readies, go


def test_processes_opening_a_new_store_at_once_migrate_it_once(url: str, tmp_path: Path):
    children, readies, go = start_children(url, tmp_path, 4)
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in readies) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    results = [(child.wait(timeout=120), child.stderr.read()) for child in children]
    assert [code for code, _ in results] == [0, 0, 0, 0], [err[-2000:] for _, err in results]
    assert stored_revisions(url) == [migrations.head()]
    store = Store(url)
    assert sorted(row.instructions for row in store.list_sessions()) == [f"ready-{n}" for n in range(4)]


def test_a_store_at_head_is_opened_without_waiting_for_the_migration_lock(tmp_path: Path):
    """Opening a store that needs nothing takes no lock: it opens while another process holds it."""
    import fcntl

    path = tmp_path / "busy.db"
    Store(f"sqlite:///{path}")
    with open(f"{path}.migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        opened = subprocess.run(
            [sys.executable, "-c", f"from tasks_lib.store import Store; Store('sqlite:///{path}')"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert opened.returncode == 0, opened.stderr


def test_a_store_behind_waits_for_the_migration_lock(tmp_path: Path):
    """The counterpart of the test above: a store that needs migrating is migrated only under the lock."""
    import fcntl

    path = tmp_path / "behind.db"
    script = (
        f"from tasks_lib.store import Store; print('imported', flush=True); Store('sqlite:///{path}'); print('opened')"
    )
    with open(f"{path}.migrate.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline() == "imported\n"
        time.sleep(1.5)
        assert child.poll() is None and not inspect(create_engine(f"sqlite:///{path}")).has_table("sessions")
    assert child.wait(timeout=60) == 0 and child.stdout.read() == "opened\n"
    assert stored_revisions(f"sqlite:///{path}") == [migrations.head()]


def test_a_store_at_the_baseline_is_upgraded_revision_by_revision_keeping_its_rows(url: str):
    """0001 → head: reviews gain their comments column (0002); a review written at 0001 survives, without comments."""
    engine = create_engine(url)
    with engine.begin() as db:
        migrations.upgrade(db, "0001")
        db.execute(
            text("""INSERT INTO sessions (id, created_at, updated_at, status, status_reason, request, agent,
            repository, instructions, iteration, steps_used, prompt_tokens, completion_tokens, cached_tokens,
            lines_added, lines_removed, files_changed, change_rounds)
            VALUES ('s-1', '2025-01-02 03:04:05', '2025-01-02 03:04:05', 'accepted', 'done', '{}', 'default',
            '/srv/repo', 'old', 1, 1, 0, 0, 0, 0, 0, 0, 0)""")
        )
        db.execute(
            text("""INSERT INTO reviews (session_id, iteration, decision, feedback, instructions, outcome,
            decided_at) VALUES ('s-1', 1, 'request_changes', 'more tests', '', 'iteration 2', '2025-01-02 03:05:00')""")
        )
    assert "comments" not in {c["name"] for c in inspect(engine).get_columns("reviews")}
    engine.dispose()

    store = Store(url)
    assert stored_revisions(url) == [migrations.head()] and migrations.head() >= "0002"
    [old] = store.reviews("s-1")
    assert (old.feedback, old.comments) == ("more tests", None)
    store.add_review("s-1", 2, "request_changes", comments=[{"path": "a.py", "line": 3, "body": "why?"}])
    assert store.reviews("s-1")[1].comments == [{"path": "a.py", "line": 3, "body": "why?"}]
