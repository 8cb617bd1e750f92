"""Per-key concurrency for agent runs: one Prefect global concurrency limit per key (an issue, a repository).

Runs that share a key (say ``acme/widgets#42``) take turns: a run holds one of the key's slots while it
works and gives it back when it ends or suspends for review. With ``supersede``, a new run first cancels
the unfinished runs of its key that were created before it (a newer push or edit makes them moot).
Each run carries its key as the tag ``agent-tasks-key:<key>`` so its siblings can be found.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from tasks_lib.session.context import SessionContext

KEY_TAG_PREFIX = "agent-tasks-key:"
LIMIT_PREFIX = "agent-tasks-key-"
LEASE_S = 300  # renewed while the run holds the slot; a run that dies gives its slot back after this


def limit_name(key: str) -> str:
    """The global concurrency limit's name for a key: readable, safe for Prefect names, unique per key."""
    slug = re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")[:60]
    return f"{LIMIT_PREFIX}{slug}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def key_tag(key: str) -> str:
    """The tag that marks a flow run as one of the key's runs."""
    return KEY_TAG_PREFIX + key[:200]


def default_key(repository: str, trigger: dict[str, Any] | None) -> str | None:
    """The key a run gets without one of its own: the repository and issue/PR number of the event that
    started it (``acme/widgets#42``); None (no per-key limit) for runs that no numbered event started."""
    number = (trigger or {}).get("number")
    if number in (None, "", "None"):
        return None
    name = re.sub(r"^(https?://[^/]+/|git@[^:]+:)", "", repository.strip()).removesuffix(".git").rstrip("/")
    return f"{name}#{number}"


def ensure_limit(client, key: str, limit: int) -> str:
    """Create the key's global concurrency limit (active, with ``limit`` slots) or set its size; its name."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = limit_name(key)
    try:
        current = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit, active=True))
            return name
        except ObjectAlreadyExists:  # another run of the key created it first
            current = client.read_global_concurrency_limit_by_name(name)
    if current.limit != limit or not current.active:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit, active=True))
    return name


def tag_run(client, flow_run_id: UUID, key: str) -> None:
    """Add the key's tag to a flow run (keeping its other tags)."""
    run = client.read_flow_run(flow_run_id)
    tag = key_tag(key)
    if tag not in run.tags:
        client.update_flow_run(flow_run_id, tags=[*run.tags, tag])


def cancel_superseded(client, flow_run_id: UUID, key: str) -> list[UUID]:
    """Cancel the key's unfinished runs created before this one; their ids.

    Runs with a process (pending, running) are set Cancelling so their worker stops them; the others
    (scheduled, paused, suspended for review) are Cancelled at once.
    """
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Cancelled, State

    me = client.read_flow_run(flow_run_id)
    unfinished = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]
    siblings = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[key_tag(key)]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=unfinished)),
        )
    )
    cancelled = []
    for run in siblings:
        if run.id == me.id or run.created is None or me.created is None or run.created >= me.created:
            continue
        message = f"superseded by flow run {me.name} ({me.id}) for {key}"
        with_process = run.state is not None and run.state.type in (StateType.PENDING, StateType.RUNNING)
        state = State(type=StateType.CANCELLING, message=message) if with_process else Cancelled(message=message)
        client.set_flow_run_state(run.id, state, force=True)
        cancelled.append(run.id)
    return cancelled


@contextmanager
def key_slot(
    key: str | None, limit: int = 1, supersede: bool = False, timeout_s: float | None = None
) -> Iterator[None]:
    """Run the body holding one of the key's ``limit`` slots, waiting for one if needed (up to timeout_s,
    else TimeoutError); with ``supersede``, first cancel the key's older unfinished runs. Call it inside a
    flow run. Without a key there is no limit."""
    if not key:
        yield
        return
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.runtime import flow_run

    run_id = UUID(flow_run.id) if flow_run.id else None
    with get_client(sync_client=True) as client:
        if run_id is not None:
            tag_run(client, run_id, key)
            if supersede:
                cancel_superseded(client, run_id, key)
        name = ensure_limit(client, key, limit)
    with concurrency(name, occupy=1, timeout_seconds=timeout_s, lease_duration=LEASE_S, strict=True):
        yield


@contextmanager
def session_slot(ctx: SessionContext, supersede: bool = False) -> Iterator[None]:
    """Hold a slot of the session's concurrency key (if it has one) while its agent works; never while it waits.

    ``supersede``: first cancel the key's older unfinished runs, when the request asks for it.
    """
    request = ctx.request
    key = request.concurrency_key or default_key(request.repository, request.trigger)
    if key:
        ctx.logger.info("concurrency key %s: waiting for one of its %d slots", key, request.concurrency_limit)
    with key_slot(key, request.concurrency_limit, supersede and request.cancel_superseded):
        yield
