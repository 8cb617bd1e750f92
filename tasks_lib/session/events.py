"""Session events: what Prefect automations (the `notify:` webhooks, or your own) see when a session changes status.

One event per status that needs someone's attention, named `agent-tasks.session.<kind>`:

    awaiting_review → agent-tasks.session.awaiting-review   (emitted by the flow once the review form is ready)
    failed · crashed · expired · cancelled · accepted · rejected → agent-tasks.session.<status>

Every event has the same shape: the session as resource (`agent-tasks.session.<id>`), its repository,
reviewer, workflow and flow run as related resources (roles `repository`, `reviewer`, `workflow`,
`flow-run`), and a payload with the session's id, status, reason, repository, workflow, reviewer,
iteration, summary line, diffstat and the links to its review page and its Prefect run. Text is masked
with the process's Redactor and repository URLs lose their credentials: events carry no secrets.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pydantic import BaseModel

from tasks_lib.config import Settings, load_settings
from tasks_lib.domain.records import files_stat
from tasks_lib.domain.session import SessionStatus as S
from tasks_lib.security.secrets import Redactor, strip_credentials
from tasks_lib.store import Store

EVENT_PREFIX = "agent-tasks.session."
EVENT_NAMES: dict[S, str] = {
    S.awaiting_review: "agent-tasks.session.awaiting-review",  # the name automations already use
    S.failed: "agent-tasks.session.failed",
    S.crashed: "agent-tasks.session.crashed",
    S.expired: "agent-tasks.session.expired",
    S.cancelled: "agent-tasks.session.cancelled",
    S.accepted: "agent-tasks.session.accepted",
    S.rejected: "agent-tasks.session.rejected",
}
# The flow emits these itself, after its move, once what the reviewer needs is in place (tasks_lib/review/form.py).
EMITTED_BY_FLOW = frozenset({S.awaiting_review})
PAYLOAD_FIELDS = (
    "session_id",
    "short_id",
    "status",
    "reason",
    "repository",
    "workflow",
    "reviewer",
    "iteration",
    "summary",
    "diffstat",
    "review_url",
    "prefect_run_url",
)
SUMMARY_CHARS = 200
REASON_CHARS = 500
_LINE_MARK = re.compile(r"^(?:[-*+]\s+|>\s*)+")  # bullets and quotes opening a line
_INLINE = re.compile(r"(?<!\*)\*\*(?!\*)(.+?)(?<!\*)\*\*(?!\*)|(?<!_)__(?!_)(.+?)(?<!_)__(?!_)|`([^`]+)`")  # not ***
logger = logging.getLogger("agent-tasks.events")


class SessionEvent(BaseModel):
    """A session event as it is sent to Prefect (the arguments of ``emit_event``)."""

    event: str
    resource: dict[str, str]
    related: list[dict[str, str]]
    payload: dict[str, Any]


def event_name(status: S | str) -> str | None:
    """The event a session emits on reaching ``status``, or None when that status has none."""
    return EVENT_NAMES.get(S(status))


def summary_line(markdown: str | None, fallback: str = "") -> str:
    """The first line of text of a summary (headings and markup left out), else the first line of ``fallback``."""
    for text in ((markdown or "").splitlines(), fallback.splitlines()):
        for raw in text:
            line = raw.strip()
            if not line or line.startswith("#") or set(line) <= set("-*_=`"):
                continue
            line = _plain(line)
            if line:
                return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"
    return ""


def _plain(line: str) -> str:
    """A markdown line as plain text: no bullet or quote marker, no bold or code markers (a masked `***` stays)."""
    text = _INLINE.sub(lambda m: next(g for g in m.groups() if g is not None), _LINE_MARK.sub("", line))
    return " ".join(text.split())


def prefect_ui_url() -> str | None:
    """The Prefect UI's base address: PREFECT_UI_URL, else PREFECT_API_URL without its /api (as Prefect derives it)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    if ui:
        return str(ui).rstrip("/")
    api = PREFECT_API_URL.value()
    if not api:
        return None
    return str(api).rstrip("/").removesuffix("/api")


def prefect_run_url(flow_run_id: str | None) -> str | None:
    """The address of a flow run's page in the Prefect UI, when the run and the UI are known."""
    base = prefect_ui_url() if flow_run_id else None
    return f"{base}/runs/flow-run/{flow_run_id}" if base else None


def build_session_event(
    store: Store, session_id: str, status: S | None = None, settings: Settings | None = None
) -> SessionEvent | None:
    """The event for a session reaching ``status`` (default: its current status), or None when that status has none."""
    row = store.get_session(session_id)
    status = S(status or row.status)
    name = event_name(status)
    if name is None:
        return None
    settings = settings or load_settings()
    redact = Redactor.from_env()
    summary = store.latest_summary(session_id)
    diff = store.latest_diff(session_id, with_patch=False)
    repository = redact(strip_credentials(row.repository or ""))
    payload: dict[str, Any] = {
        "session_id": row.id,
        "short_id": row.id[:8],
        "status": status.value,
        "reason": redact(row.status_reason or "")[:REASON_CHARS],
        "repository": repository,
        "workflow": row.workflow,
        "reviewer": row.reviewer,
        "iteration": row.iteration,
        "summary": redact(summary_line(summary.markdown if summary else None, row.instructions or "")),
        "diffstat": files_stat(len(diff.files), diff.added, diff.removed) if diff else None,
        "review_url": settings.review_page(row.id),
        "prefect_run_url": prefect_run_url(row.flow_run_id),
    }
    return SessionEvent(
        event=name,
        resource={
            "prefect.resource.id": f"{EVENT_PREFIX}{row.id}",
            "prefect.resource.name": row.id[:8],
            "agent-tasks.session.status": status.value,
        },
        related=_related(repository, row.reviewer, row.workflow, row.flow_run_id),
        payload=payload,
    )


def _related(
    repository: str, reviewer: str | None, workflow: str | None, flow_run_id: str | None
) -> list[dict[str, str]]:
    """The related resources of a session event; automations filter on the `workflow` one."""
    related = [{"prefect.resource.id": f"agent-tasks.repository.{repository}", "prefect.resource.role": "repository"}]
    if reviewer:
        related.append({"prefect.resource.id": f"agent-tasks.reviewer.{reviewer}", "prefect.resource.role": "reviewer"})
    if workflow:
        related.append(
            {
                "prefect.resource.id": f"agent-tasks.workflow.{workflow}",
                "prefect.resource.role": "workflow",
                "prefect.resource.name": workflow,
            }
        )
    if flow_run_id:
        related.append({"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"})
    return related


def can_emit() -> bool:
    """True when events reach a server: an API address is set, or this code runs inside a flow run.

    Without either, Prefect would start a throwaway local server just to receive the event.
    """
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value()) or FlowRunContext.get() is not None


def emit_session_event(session_id: str, status: S | None = None, store: Store | None = None):
    """Emit the event of a session reaching ``status`` (default: its current status); the Prefect Event, or None."""
    if not can_emit():
        return None
    from prefect.context import FlowRunContext
    from prefect.events import Event, emit_event

    store = store or _default_store()
    built = build_session_event(store, session_id, status)
    if built is None:
        return None
    if FlowRunContext.get() is not None:  # the run's events worker sends it (and is flushed when the run ends)
        return emit_event(event=built.event, resource=built.resource, related=built.related, payload=built.payload)
    event = Event(event=built.event, resource=built.resource, related=built.related, payload=built.payload)
    _send_now(event)
    return event


def _send_now(event: Any) -> None:
    """Send one event and wait until it is sent: a process outside a flow run (the CLI settling a session) may exit
    right after, and Prefect's background worker would then complain on stderr about what it still holds."""
    from prefect.events.clients import get_events_client
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def send() -> None:
        async with get_events_client(reconnection_attempts=1) as client:
            await client.emit(event)

    run_coro_as_sync(send())


def emit_after_transition(store: Store, session_id: str, to: S) -> None:
    """Best effort: emit the event of a status change just made (the flow emits its own awaiting-review event)."""
    if to not in EMITTED_BY_FLOW:
        emit_quietly(session_id, to, store)


def emit_quietly(session_id: str, status: S, store: Store | None = None) -> None:
    """Emit a session event if ``status`` has one; never raises, so a failing emit never breaks a transition or a run."""
    if status not in EVENT_NAMES:
        return
    try:
        emit_session_event(session_id, status, store)
    except Exception as exc:  # the status change stands; only the notification is lost
        logger.warning(
            "session %s: could not emit its %s event: %s",
            session_id[:8],
            status.value,
            Redactor.from_env()(f"{type(exc).__name__}: {exc}"),
        )


def _default_store() -> Store:
    from tasks_lib.store import open_store

    return open_store(load_settings().db_url)
