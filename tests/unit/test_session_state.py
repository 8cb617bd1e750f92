"""The session state machine on the store: guarded transitions, racing writers, a delivery cut off.

Flow runs restarted, cancelled, crashed or settled from Prefect's states are in
tests/flow/test_session_state.py.
"""

from __future__ import annotations

import socket
import threading

import pytest

from tasks_lib.domain.request import TaskRequest
from tasks_lib.domain.session import DeliveryTarget
from tasks_lib.domain.session import SessionStatus as S
from tasks_lib.session.lifecycle import NEXT, TransitionRefused, move, settle
from tasks_lib.session.reconcile import end_orphans
from tasks_lib.store import Store
from tests.conftest import git

WAY_TO = {
    S.pending: [],
    S.running: [S.running],
    S.awaiting_review: [S.running, S.awaiting_review],
    S.delivering: [S.running, S.awaiting_review, S.delivering],
    S.accepted: [S.running, S.awaiting_review, S.delivering, S.accepted],
    S.rejected: [S.running, S.awaiting_review, S.rejected],
    S.expired: [S.running, S.awaiting_review, S.expired],
}


def _new_session(store: Store, status: S, **fields) -> str:
    """A session walked to ``status`` through allowed transitions."""
    sid = store.create_session(TaskRequest(repository="/r", instructions="x"))
    for step in WAY_TO.get(status, [S.running, status]):
        move(store, sid, step, f"to {step.value}")
    if fields:
        store.update_session(sid, **fields)
    return sid


def test_terminal_statuses_are_final_and_every_change_is_recorded(store):
    for terminal in [s for s in S if s.terminal]:
        sid = _new_session(store, terminal)
        before = store.get_session(sid)
        for target in S:
            with pytest.raises(TransitionRefused, match=f"it is {terminal.value}"):
                move(store, sid, target, "late writer", by="test")
        after = store.get_session(sid)
        assert (after.status, after.status_reason, after.finished_at) == (
            before.status,
            before.status_reason,
            before.finished_at,
        )
        assert store.transitions(sid)[-1].to_status == terminal.value
    # Only the table's edges are allowed: a pending session cannot be accepted, a running one cannot expire.
    with pytest.raises(TransitionRefused):
        move(store, _new_session(store, S.pending), S.accepted, "skip ahead")
    with pytest.raises(TransitionRefused):
        move(store, _new_session(store, S.running), S.expired, "not waiting")
    assert all(not s.terminal for s in NEXT)
    with pytest.raises(ValueError, match="only through Store.transition"):
        store.update_session(_new_session(store, S.running), status="completed")


def test_racing_writers_end_a_session_exactly_once(store):
    sid = _new_session(store, S.awaiting_review)
    barrier = threading.Barrier(8)
    wins: list[S] = []

    def end(status: S) -> None:
        barrier.wait()
        if settle(store, sid, status, f"by {status.value}", by="test"):
            wins.append(status)

    threads = [threading.Thread(target=end, args=(s,)) for s in [S.expired, S.failed, S.cancelled, S.rejected] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    row = store.get_session(sid)
    assert len(wins) == 1 and row.status == wins[0].value and row.status_reason == f"by {wins[0].value}"
    assert [t.to_status for t in store.transitions(sid)].count(row.status) == 1
    assert sum(S(t.to_status).terminal for t in store.transitions(sid)) == 1


def test_a_session_cut_off_mid_delivery_is_settled_by_looking_for_its_commit(repo, store, tmp_path):
    git(repo, "checkout", "-q", "-b", "agent/landed")
    (repo / "landed.txt").write_text("landed\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "landed")
    landed_commit = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    gone = f"{socket.gethostname()}:999999"  # a process of this host that does not exist
    on_target = _new_session(
        store,
        S.delivering,
        runner=gone,
        delivery_target=DeliveryTarget(
            mode="branch", repository=str(repo), branch="agent/landed", commit=landed_commit
        ).model_dump_json(),
    )
    missing = _new_session(
        store,
        S.delivering,
        runner=gone,
        delivery_target=DeliveryTarget(
            mode="merge", repository=str(repo), branch="main", commit=landed_commit
        ).model_dump_json(),
    )
    ended = end_orphans(store)
    assert sorted(ended) == sorted([on_target, missing])
    row = store.get_session(on_target)
    assert (
        row.status == "accepted"
        and row.delivered_commit == landed_commit
        and "found on the target" in row.status_reason
    )
    row = store.get_session(missing)
    assert row.status == "crashed" and "is not on the target" in row.status_reason
