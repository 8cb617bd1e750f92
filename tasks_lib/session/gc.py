"""Clean up what ended sessions leave on a machine: workspaces, sandbox dirs, stale worktrees, old deliveries.

Stores, diffs, summaries and logs stay (they are the record); what goes is the disk a session no
longer needs. Mirrors are kept small with `git maintenance`, after pinning the base commit of every
workspace still on disk (its git directory borrows the mirror's objects), so no live workspace loses
an object.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

from tasks_lib.config import Settings
from tasks_lib.git.cli import GitError, run_git
from tasks_lib.git.repo import RepositoryError, locked, mirror_dir, normalize_repository
from tasks_lib.store import SessionNotFound, Store, ended_before, forget_deliveries_before, utcnow

KEEP_REF = "refs/agent-tasks/keep/"  # pins a live workspace's base commit in its mirror
MAINTENANCE_TIMEOUT_S = 1800


class GcReport(BaseModel):
    """What a clean-up removed or tidied."""

    workspaces_removed: list[str] = []
    bytes_freed: int = 0
    mirrors_maintained: list[str] = []
    mirror_problems: list[str] = []
    deliveries_forgotten: int = 0

    def lines(self) -> list[str]:
        """The report, one fact per line."""
        lines = [
            f"workspaces removed   {len(self.workspaces_removed)} ({self.bytes_freed / 1e6:.1f} MB)",
            f"mirrors maintained   {len(self.mirrors_maintained)}",
            f"deliveries forgotten {self.deliveries_forgotten}",
        ]
        return lines + [f"mirror problem       {p}" for p in self.mirror_problems]


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def remove_ended_workspaces(
    store: Store, settings: Settings, cutoff: datetime, report: GcReport, dry_run: bool
) -> None:
    """Remove this machine's workspaces and sandbox dirs of sessions that ended before ``cutoff``."""
    for session_id, _ in ended_before(store, cutoff):
        left_by_attempts = sorted(settings.workspaces_dir.glob(f"{session_id}.attempt-*"))  # a best-of-N run cut off
        dirs = [
            d
            for d in (settings.workspaces_dir / session_id, *left_by_attempts, settings.sandboxes_dir / session_id)
            if d.exists()
        ]
        if not dirs:
            continue
        report.workspaces_removed.append(session_id)
        for directory in dirs:
            report.bytes_freed += _size(directory)
            if not dry_run:
                shutil.rmtree(directory, ignore_errors=True)


def pin_live_bases(store: Store, settings: Settings) -> dict[Path, set[str]]:
    """The base commit of every workspace still on disk, by mirror (what maintenance must keep)."""
    pins: dict[Path, set[str]] = {}
    if not settings.workspaces_dir.is_dir():
        return pins
    for workspace in settings.workspaces_dir.iterdir():
        try:
            row = store.get_session(workspace.name)
        except SessionNotFound:
            continue
        if row.id != workspace.name or not row.base_commit:
            continue
        try:
            mirror = mirror_dir(settings.mirrors_dir, normalize_repository(row.repository))
        except RepositoryError:
            continue
        pins.setdefault(mirror, set()).add(row.base_commit)
    return pins


def maintain_mirror(mirror: Path, keep: set[str]) -> None:
    """Under the mirror's lock: pin ``keep``, drop pins no longer needed, prune worktrees, run git maintenance."""
    with locked(mirror):
        pinned = run_git("for-each-ref", "--format=%(refname)", KEEP_REF, cwd=mirror).text.split()
        for ref in pinned:
            if ref.removeprefix(KEEP_REF) not in keep:
                run_git("update-ref", "-d", ref, cwd=mirror)
        for commit in keep:
            run_git(
                "update-ref", f"{KEEP_REF}{commit}", commit, cwd=mirror, check=False
            )  # gone already: nothing to pin
        run_git("worktree", "prune", cwd=mirror)
        run_git("maintenance", "run", "--task=gc", cwd=mirror, timeout_s=MAINTENANCE_TIMEOUT_S)


def collect(
    store: Store,
    settings: Settings,
    older_than_days: float,
    deliveries_days: float = 30,
    dry_run: bool = False,
    now: datetime | None = None,
) -> GcReport:
    """Remove workspaces of sessions ended more than ``older_than_days`` ago, tidy every mirror, forget
    webhook deliveries older than ``deliveries_days``. With ``dry_run``, only say what would go."""
    now = now or utcnow()
    report = GcReport()
    remove_ended_workspaces(store, settings, now - timedelta(days=older_than_days), report, dry_run)
    if dry_run:
        return report
    pins = pin_live_bases(store, settings)
    mirrors = sorted(settings.mirrors_dir.glob("*.git")) if settings.mirrors_dir.is_dir() else []
    for mirror in mirrors:
        try:
            maintain_mirror(mirror, pins.get(mirror, set()))
            report.mirrors_maintained.append(mirror.name)
        except (GitError, RepositoryError) as exc:
            report.mirror_problems.append(f"{mirror.name}: {exc}")
    report.deliveries_forgotten = forget_deliveries_before(store, now - timedelta(days=deliveries_days))
    return report
