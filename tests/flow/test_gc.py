"""agent-tasks gc: ended sessions' workspaces go, live ones stay intact, mirrors are tidied, old deliveries forgotten."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from tasks_lib.config import load_settings
from tasks_lib.session.gc import KEEP_REF, collect
from tasks_lib.store import DeliveryRow, SessionRow, record_delivery, utcnow
from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.helpers import run_task

FINISH = calls(tool("finish", summary="done"))


def _age(store, table, where, days: float, column: str) -> None:
    """Move a row's time back (the test's stand-in for waiting ``days``)."""
    with store.engine.begin() as db:
        db.execute(update(table).where(where).values({column: utcnow() - timedelta(days=days)}))


def test_gc_removes_only_old_ended_workspaces_and_keeps_live_ones_usable(repo, scripted, store):
    scripted(
        [
            calls(tool("write_file", path=f"f{i}.txt", content=f"{i}\n")) if j == 0 else FINISH
            for i in range(2)
            for j in range(2)
        ]
    )
    old, recent = (run_task(repo, f"gc task {i}") for i in range(2))
    settings = load_settings()
    _age(store, SessionRow, SessionRow.id == old.session_id, 20, "finished_at")
    old_ws, recent_ws = settings.workspaces_dir / old.session_id, settings.workspaces_dir / recent.session_id
    assert old_ws.is_dir() and recent_ws.is_dir()
    left_attempt = settings.workspaces_dir / f"{old.session_id}.attempt-2"  # as a best-of-N run cut off leaves it
    (left_attempt / "sub").mkdir(parents=True)
    (left_attempt / "sub" / "f.txt").write_text("partial work\n")
    mirror = Path(store.get_session(recent.session_id).workspace).parent.parent / "mirrors"
    mirror = next(m for m in mirror.glob("*.git") if git(m, "config", "remote.origin.url") == str(repo))
    stale = mirror.parent / "stale-worktree"
    git(mirror, "worktree", "add", "-q", "--detach", str(stale), "refs/remotes/origin/main")
    subprocess.run(["rm", "-rf", str(stale)], check=True)
    assert "stale-worktree" in git(mirror, "worktree", "list")
    record_delivery(store, "github:old-delivery")
    record_delivery(store, "github:new-delivery")
    _age(store, DeliveryRow, DeliveryRow.id == "github:old-delivery", 40, "received_at")

    preview = collect(store, settings, older_than_days=14, dry_run=True)
    assert preview.workspaces_removed == [old.session_id] and old_ws.is_dir(), "a dry run removes nothing"

    report = collect(store, settings, older_than_days=14)
    assert report.workspaces_removed == [old.session_id] and report.bytes_freed > 0
    assert not old_ws.exists() and not left_attempt.exists() and recent_ws.is_dir()
    assert mirror.name in report.mirrors_maintained and report.mirror_problems == []
    assert "stale-worktree" not in git(mirror, "worktree", "list")
    base = store.get_session(recent.session_id).base_commit
    assert git(mirror, "for-each-ref", "--format=%(refname)", KEEP_REF) == f"{KEEP_REF}{base}"
    assert git(recent_ws, "fsck", "--connectivity-only", "--no-dangling") == ""  # the live workspace lost nothing
    assert "src/app.py" in git(recent_ws, "ls-tree", "-r", "--name-only", base) and (recent_ws / "f1.txt").is_file()
    assert record_delivery(store, "github:old-delivery") is True, "the old delivery was forgotten"
    assert record_delivery(store, "github:new-delivery") is False, "the recent one is remembered"
    assert store.get_session(old.session_id).status == "completed", "the record stays"


def test_gc_from_the_cli_reports_what_it_did(repo, scripted):
    scripted([calls(tool("write_file", path="a.txt", content="a\n")), FINISH])
    run_task(repo, "gc cli")
    proc = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "gc", "--older-than", "0"],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    removed = next(line for line in proc.stdout.splitlines() if line.startswith("workspaces removed"))
    assert int(removed.split()[2]) >= 1
    assert "mirrors maintained" in proc.stdout
