"""Resume a session's paused flow run with a review decision, through the Prefect API (CLI and review page)."""

from __future__ import annotations

import time
from typing import Any

from tasks_lib.domain.session import SessionStatus
from tasks_lib.domain.words import plain
from tasks_lib.errors import AgentTasksError
from tasks_lib.review.comments import comment_problems
from tasks_lib.review.form import LineComment, review_payload
from tasks_lib.store import Store

PAUSE_WAIT_S = 15  # the session is marked awaiting review just before its run pauses


class ResumeRefused(AgentTasksError, RuntimeError):
    """A decision that cannot be sent: the session is not waiting, the input is invalid, or the run refused it."""


def decision_payload(
    store: Store,
    session_id: str,
    decision: str,
    feedback: str = "",
    instructions: str = "",
    comments: list[LineComment] | None = None,
    candidate: int | None = None,
) -> dict[str, Any]:
    """The validated run input for a decision on a session waiting for review; ResumeRefused says what is wrong."""
    row = store.get_session(session_id)
    if row.status != SessionStatus.awaiting_review.value:
        where = f" ({row.delivered_to})" if row.delivered_to else ""
        raise ResumeRefused(f"session {row.id[:8]} is {row.status}{where}, not awaiting review")
    if comments:
        diff = store.latest_diff(session_id, with_patch=False)
        problems = comment_problems(comments, [f["path"] for f in (diff.files if diff else [])])
        if problems:
            raise ResumeRefused("; ".join(problems))
    if candidate is not None:
        found = row.candidates or {}
        attempts = [c["attempt"] for c in found.get("ranked", [])] if found.get("iteration") == row.iteration else []
        if candidate not in attempts:
            have = f"attempts {', '.join(map(str, sorted(attempts)))}" if attempts else "one attempt"
            raise ResumeRefused(
                f"session {row.id[:8]} has no attempt {candidate}: iteration {row.iteration} has {have}"
            )
    try:
        return review_payload(decision, feedback, instructions, comments, candidate)
    except ValueError as exc:
        errors = getattr(exc, "errors", lambda: [])()
        raise ResumeRefused(plain(errors[0]["msg"]) if errors else str(exc)) from None


def resume_review(store: Store, session_id: str, payload: dict[str, Any]) -> None:
    """Resume the session's paused run with ``payload`` (from `decision_payload`); ResumeRefused if it can't be."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType

    row = store.get_session(session_id)
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + PAUSE_WAIT_S
        while True:
            run = client.read_flow_run(row.flow_run_id)
            ready = (
                run.state is not None
                and run.state.type == StateType.PAUSED
                and run.state.state_details.pause_key == row.review_key
            )
            if ready or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        if not ready:
            raise ResumeRefused(
                f"session {row.id[:8]}: its flow run is {run.state.name if run.state else 'unknown'}, not paused"
            )
        result = client.resume_flow_run(row.flow_run_id, run_input=payload)
    if result.status.value != "ACCEPT":
        raise ResumeRefused(f"the run refused the review input: {getattr(result.details, 'reason', result.details)}")
