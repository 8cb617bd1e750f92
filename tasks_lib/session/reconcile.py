"""Settle sessions whose flow run ended (or can no longer go on) without the flow saying so.

Three sources, all ending sessions through the state machine's guarded transitions:
- Prefect's own state of the flow run — Cancelled, Crashed, Failed, a pause that expired — read by
  the flow's state hooks, by the `settle-sessions` flow (scheduled and triggered by flow-run state
  events in `agent-tasks up`) and by the CLI before it shows sessions;
- the review deadline passing while a run is suspended;
- the local fast path: a run started from the CLI on this host whose process (`host:pid`) is gone.
A session cut off mid-work keeps its diff; one cut off mid-delivery is settled by looking for its
commit on the target.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tasks_lib.domain.session import DeliveryTarget, SessionStatus
from tasks_lib.git.cli import run_git
from tasks_lib.git.diff import capture_workspace_diff
from tasks_lib.security.secrets import Redactor
from tasks_lib.session.lifecycle import settle
from tasks_lib.session.runner import runner_gone
from tasks_lib.store import SessionRow, Store, orphaned, overdue_reviews, unsettled

# Prefect flow-run state types that end a session, and the status each leads to
ENDING_STATES = {"CANCELLED": SessionStatus.cancelled, "CRASHED": SessionStatus.crashed, "FAILED": SessionStatus.failed}


def _keep_work(store: Store, row: SessionRow) -> str:
    """Store the workspace's diff of a session cut off mid-work; says what was kept."""
    if row.status != SessionStatus.running.value:
        return "diff and work branch kept"
    if not (row.workspace and row.base_commit and os.path.isdir(row.workspace)):
        return "its workspace is not on this machine; the diff of its last review is kept"
    try:
        diff = capture_workspace_diff(row.workspace, row.base_commit)
    except Exception as exc:  # a damaged workspace must not stop the session from ending
        return f"its diff could not be read ({type(exc).__name__}); the workspace {row.workspace} is left as it was"
    store.save_diff(row.id, diff, row.iteration)
    return f"the changes made so far are kept ({diff.diffstat()})"


def delivery_landed(mirrors_dir: Path, target: DeliveryTarget) -> bool:
    """True when the target branch in the origin contains the commit (fetched fresh into the mirror)."""
    from tasks_lib.git.repo import RepositoryError, update_mirror

    try:
        mirror, _ = update_mirror(target.repository, mirrors_dir)
    except RepositoryError:
        return False
    ref = f"refs/remotes/origin/{target.branch}"
    return run_git("merge-base", "--is-ancestor", target.commit, ref, cwd=mirror, check=False).returncode == 0


def end_session(store: Store, row: SessionRow, to: SessionStatus, why: str, by: str) -> bool:
    """End one unfinished session as ``to`` (accepted instead if its delivery had landed); True when it changed."""
    redact = Redactor.from_env()
    if row.status == SessionStatus.delivering.value and row.delivery_target:
        from tasks_lib.config import load_settings

        target = DeliveryTarget.model_validate_json(row.delivery_target)
        if delivery_landed(load_settings().mirrors_dir, target):
            reason = f"accepted: {target.commit[:10]} → {target.describe()} (found on the target after {why})"
            return settle(
                store,
                row.id,
                SessionStatus.accepted,
                redact(reason),
                by,
                delivered_commit=target.commit,
                delivered_to=target.describe(),
            )
        why += f"; its commit {target.commit[:10]} is not on the target ({target.describe()}), work branch kept"
    return settle(store, row.id, to, redact(f"{why}; {_keep_work(store, row)}"), by)


def settle_flow_run(
    store: Store, flow_run_id: str, state_type: str, message: str = "", by: str = "prefect"
) -> str | None:
    """End the session of a flow run that Prefect reports Cancelled, Crashed or Failed; returns its id if it changed."""
    to = ENDING_STATES.get(state_type.upper())
    row = store.session_for_flow_run(flow_run_id)
    if to is None or row is None or SessionStatus(row.status).terminal:
        return None
    detail = " ".join((message or "").split())[:300]
    why = f"its flow run was {state_type.lower()} in Prefect" + (f" ({detail})" if detail else "")
    if to is SessionStatus.failed and row.status == SessionStatus.awaiting_review.value:
        to, why = SessionStatus.expired, f"no review decision reached it: {why}"  # Prefect fails a pause that timed out
    return row.id if end_session(store, row, to, why, by) else None


def settle_from_prefect(store: Store) -> list[str]:
    """Settle every unfinished session whose flow run Prefect reports as ended; returns the ids it changed."""
    rows = {r.flow_run_id: r for r in unsettled(store) if r.flow_run_id}
    if not rows:
        return []
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    ids = []
    for run_id in rows:
        try:
            ids.append(UUID(run_id))
        except ValueError:
            continue
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids))
    changed = []
    for run in runs:
        if run.state is not None:
            sid = settle_flow_run(store, str(run.id), run.state.type.value, run.state.message or "", by="prefect")
            if sid:
                changed.append(sid)
    return changed


LOST_START_AFTER = timedelta(minutes=10)  # a run's process proposes Running within seconds of being started


def reschedule_lost_starts(store: Store, older_than: timedelta = LOST_START_AFTER) -> list[str]:
    """Put back in Scheduled the agent-task runs stuck in Pending with no session; returns their flow run ids.

    A worker that dies between handing a run to a new process and that process starting leaves the
    run Pending for ever (no process, no heartbeat, no session) and holding a pool slot. Running it
    again is safe: the session is created on the run's first entry.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Scheduled

    cutoff = datetime.now(timezone.utc) - older_than
    moved = []
    with get_client(sync_client=True) as client:
        pending = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["agent-task"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PENDING]))
            ),
        )
        for run in pending:
            since = run.state.timestamp if run.state else None
            if since is None or since > cutoff or store.session_for_flow_run(str(run.id)) is not None:
                continue
            client.set_flow_run_state(
                run.id,
                Scheduled(
                    message=f"rescheduled: Pending since {since:%H:%M:%S} with no "
                    "process (its worker died while starting it)"
                ),
                force=True,
            )
            moved.append(str(run.id))
    return moved


def end_orphans(store: Store, session_id: str | None = None) -> list[str]:
    """End the unfinished sessions (all, or just this one) whose process on this host is gone; returns their ids."""
    ended = []
    for row in orphaned(store, runner_gone, session_id):
        if row.status == SessionStatus.awaiting_review.value:
            why = (
                f"the process waiting for its review ({row.runner}) ended, so no decision can reach it — "
                "start a new run to continue"
            )
        else:
            why = f"the process running it ({row.runner}) ended without finishing it (killed or crashed)"
        if end_session(store, row, SessionStatus.crashed, why, by="reconcile"):
            ended.append(row.id)
    return ended


def expire_overdue(store: Store) -> list[str]:
    """Expire the sessions whose review deadline has passed; returns their ids."""
    reason = "no review decision before the deadline; diff and work branch kept"
    return [sid for sid in overdue_reviews(store) if settle(store, sid, SessionStatus.expired, reason, by="reconcile")]


def refresh(store: Store, ask_prefect: bool = False) -> None:
    """Settle sessions that ended outside their flow: overdue reviews expire, orphans end, and (with
    ``ask_prefect``) runs Prefect reports as ended end their sessions."""
    expire_overdue(store)
    end_orphans(store)
    if ask_prefect:
        import httpx
        from prefect.exceptions import PrefectException

        try:
            settle_from_prefect(store)
        except (httpx.HTTPError, PrefectException, OSError):
            pass  # Prefect unreachable: shown as stored; the settle-sessions flow catches up when it runs
