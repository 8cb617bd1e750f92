"""The session store on SQLite and on a real PostgreSQL server: the same code, no dialect SQL."""

from __future__ import annotations

import socket
import subprocess
from datetime import timedelta

import pytest

from tasks_lib.domain.records import DiffResult, FileChange, StepRecord, ToolCallRecord, Usage
from tasks_lib.domain.request import TaskRequest
from tasks_lib.domain.session import SessionStatus
from tasks_lib.session.lifecycle import move
from tasks_lib.session.reconcile import expire_overdue
from tasks_lib.store import (
    STEP_RESULT_CAP,
    SessionNotFound,
    Store,
    StoreError,
    forget_delivery,
    orphaned,
    record_delivery,
    usage_by,
    utcnow,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path) -> Store:
    if request.param == "sqlite":
        return Store(f"sqlite:///{tmp_path / 'store.db'}")
    return Store(request.getfixturevalue("postgres_url"))


def test_a_session_round_trips_through_the_store(backend: Store):
    store = backend
    sid = store.create_session(
        TaskRequest(repository="/srv/repo", instructions="Fix it", reviewer="ann"),
        flow_run_id="run-1",
        workflow="nightly",
    )
    store.update_session(sid, agent_spec={"name": "default"}, conversation=[{"role": "user", "content": "hi"}])
    move(store, sid, SessionStatus.running, "started")
    long_result = "r" * (STEP_RESULT_CAP + 100)
    step = StepRecord(
        index=1,
        started_at=utcnow(),
        prompt_tokens=5,
        tool_calls=[ToolCallRecord(id="c1", name="read_file", arguments={"path": "a"}, result=long_result)],
    )
    store.add_step(sid, step, Usage(steps=1, prompt_tokens=5, completion_tokens=2), 1)
    patch = b"diff --git a/x b/x\n\x00\xff binary-safe"
    store.save_diff(
        sid, DiffResult(base_commit="abc", files=[FileChange(path="x", kind="added", added=1)], added=1, patch=patch), 1
    )
    store.save_summary(sid, "## Summary", {"files_changed": 1}, 1)
    store.add_review(sid, 1, "request_changes", feedback="more tests")
    store.add_usage(sid, 10, 3, 1, 0.25)

    row = store.get_session(sid[:8])
    assert row.id == sid and row.reviewer == "ann" and row.workflow == "nightly"
    assert (row.steps_used, row.prompt_tokens, row.completion_tokens, row.cached_tokens, row.cost_usd) == (
        1,
        15,
        5,
        1,
        0.25,
    )
    assert row.conversation == [{"role": "user", "content": "hi"}] and row.agent_spec == {"name": "default"}
    assert store.latest_diff(sid).patch == patch and store.latest_diff(sid).files[0]["path"] == "x"
    stored = store.steps(sid)[0].tool_calls[0].result
    assert stored.startswith("r" * 100) and stored.endswith("[... 100 more characters not stored]")
    assert [r.decision for r in store.reviews(sid)] == ["request_changes"]
    assert [r.id for r in store.list_sessions(reviewer="ann", repository="srv/re")] == [sid]
    assert store.list_sessions(status="accepted") == []
    assert store.session_for_flow_run("run-1").id == sid
    with pytest.raises(SessionNotFound):
        store.get_session("zzzz")

    groups = {g["key"]: g for g in usage_by(store, "workflow")}
    assert groups["nightly"]["prompt_tokens"] == 15 and groups["nightly"]["cost_usd"] == 0.25

    assert record_delivery(store, "github:d1") is True and record_delivery(store, "github:d1") is False
    forget_delivery(store, "github:d1")
    assert record_delivery(store, "github:d1") is True

    move(store, sid, SessionStatus.awaiting_review, "waiting", review_deadline=utcnow() - timedelta(seconds=1))
    assert expire_overdue(store) == [sid] and store.get_session(sid).status == "expired"
    assert [(t.from_status, t.to_status) for t in store.transitions(sid)] == [
        (None, "pending"),
        ("pending", "running"),
        ("running", "awaiting_review"),
        ("awaiting_review", "expired"),
    ]


def test_a_store_made_by_another_version_is_refused_with_a_clear_message(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE sessions (id VARCHAR(36) PRIMARY KEY, status VARCHAR(32))")
    with pytest.raises(StoreError, match=r"was made by another version of agent-tasks \(missing sessions\.created_at"):
        Store(f"sqlite:///{path}")


def test_a_store_missing_only_optional_columns_is_upgraded_in_place(tmp_path):
    """A store made before versioning and before an optional column was added keeps its sessions and gains
    the column."""
    import sqlite3

    path = tmp_path / "older.db"
    first = Store(f"sqlite:///{path}")
    sid = first.create_session(TaskRequest(repository="/r", instructions="old session"))
    first.engine.dispose()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE sessions DROP COLUMN runner")
        db.execute("DROP TABLE alembic_version")  # as stores were before migrations
    from tasks_lib.store import migrate

    migrate._engines.pop(f"sqlite:///{path}")
    upgraded = Store(f"sqlite:///{path}")
    assert upgraded.get_session(sid).instructions == "old session" and upgraded.get_session(sid).runner is None
    upgraded.update_session(sid, runner="host:1")
    assert upgraded.get_session(sid).runner == "host:1"


def test_runner_liveness_is_judged_only_for_processes_on_this_host():
    from tasks_lib.session.runner import current_runner, runner_gone

    finished = subprocess.Popen(["true"])
    finished.wait()
    host = socket.gethostname()
    assert runner_gone(f"{host}:{finished.pid}") is True
    assert runner_gone(current_runner()) is False
    assert runner_gone(f"another-host-{host}:{finished.pid}") is False  # cannot be seen from here
    assert runner_gone(None) is False and runner_gone("garbage") is False


def test_orphaned_sessions_are_found_all_at_once_or_one_at_a_time(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'orphans.db'}")
    dead, alive, done = (store.create_session(TaskRequest(repository="/r", instructions=n)) for n in "abc")
    for sid, runner in ((dead, "h:1"), (alive, "h:2"), (done, "h:1")):
        move(store, sid, SessionStatus.running, "started", runner=runner)
    move(store, alive, SessionStatus.awaiting_review, "waiting")
    move(store, done, SessionStatus.completed, "done")
    gone = lambda runner: runner == "h:1"  # noqa: E731
    assert [r.id for r in orphaned(store, gone)] == [dead]
    assert [r.id for r in orphaned(store, gone, dead)] == [dead] and orphaned(store, gone, alive) == []
