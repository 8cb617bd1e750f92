"""Resume a session's paused flow run with a review decision, through the Prefect API (CLI and review page).

Who sends it travels as a grant: checked here (in team mode: a person who may decide), recorded in the store, and
only its id put in the run input; the review gate honours the decision as that person's (review/gate.py).
"""

from __future__ import annotations

import time
from typing import Any

from tasks_lib.domain.people import Decider, PeopleError, refusal
from tasks_lib.domain.session import SessionStatus
from tasks_lib.domain.words import plain
from tasks_lib.errors import AgentTasksError
from tasks_lib.review.comments import comment_problems
from tasks_lib.review.form import LineComment, review_payload
from tasks_lib.store import Store
from tasks_lib.store.people import find_person, issue_grant, list_people, record_refusal, session_starter, team_mode

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
    decider: Decider | None = None,
) -> dict[str, Any]:
    """The validated run input for a decision on a session waiting for review, with a grant naming ``decider``;
    ResumeRefused says what is wrong.

    In single-user mode the decider is the local user unless given; in team mode it must be a person (found by
    their token) who may decide on this session.
    """
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
        payload = review_payload(decision, feedback, instructions, comments, candidate)
    except ValueError as exc:
        errors = getattr(exc, "errors", lambda: [])()
        raise ResumeRefused(plain(errors[0]["msg"]) if errors else str(exc)) from None
    decider = check_decider(store, row.id, row.reviewer, decider, payload["decision"])
    payload["grant"] = issue_grant(store, row.id, row.review_key or "", payload["decision"], decider)
    return payload


def check_decider(
    store: Store, session_id: str, reviewer: str | None, decider: Decider | None, decision: str = "accept"
) -> Decider:
    """The decider to grant the decision to; ResumeRefused (one line) when, in team mode, there is no person, they
    may not decide on this session, or they started it and it needs an independent review (accept only)."""
    if not team_mode(store):
        return decider or Decider(auth="local")
    if decider is None or decider.person is None:
        why = (
            "this store has people, so a decision needs one of them: `agent-tasks login` (or set "
            "AGENT_TASKS_TOKEN) and decide with `agent-tasks review`, or sign in on the review pages"
        )
    else:
        try:
            person = find_person(store, decider.person)
        except PeopleError as exc:
            why = str(exc)
        else:
            people = list_people(store)
            starter, independent = session_starter(store, session_id, people)
            why = refusal(
                person, reviewer, people, session_id, decision=decision, starter=starter, independent=independent
            )
    if why:
        record_refusal(store, session_id, decision, why, decider)  # every refused decision is in the audit
        raise ResumeRefused(why)
    return decider


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
        if "grant" in payload and not _form_takes_grant(client, row.flow_run_id, run.state.state_details):
            payload = {k: v for k, v in payload.items() if k != "grant"}  # paused by a release without grants
        result = client.resume_flow_run(row.flow_run_id, run_input=payload)
    if result.status.value != "ACCEPT":
        raise ResumeRefused(f"the run refused the review input: {getattr(result.details, 'reason', result.details)}")


def _form_takes_grant(client: Any, flow_run_id: str, details: Any) -> bool:
    """Whether the paused run's form has a grant field (runs paused by an older release refuse unknown fields)."""
    import json

    key = (details.run_input_keyset or {}).get("schema")
    if not key:
        return True
    try:
        schema = client.read_flow_run_input(flow_run_id, key)
    except Exception:  # no schema saved: the server checks nothing, and the gate reads the grant
        return True
    schema = json.loads(schema) if isinstance(schema, str) else schema
    return "grant" in (schema or {}).get("properties", {})
