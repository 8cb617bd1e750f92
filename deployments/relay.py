"""Webhook relay: turns signed GitHub deliveries and named webhooks into Prefect events.

OSS Prefect has no webhooks, so this small ASGI app receives them, checks who sent them, and hands
one event per accepted delivery to Prefect through Prefect's own events client (so a server behind
``PREFECT_API_AUTH_STRING`` basic auth, or Prefect Cloud with ``PREFECT_API_KEY``, works as it does for
workers), where deployment triggers pick them up.

    uvicorn deployments.relay:app --host 127.0.0.1 --port 8765

- ``POST /webhooks/github``: ``X-Hub-Signature-256`` must be the HMAC-SHA256 of the body with
  ``AGENT_TASKS_WEBHOOK_SECRET`` (without a secret every delivery is refused). The delivery becomes
  the event ``github.<event>.<action>`` (``issues`` is called ``issue``) on the resource
  ``github.repo.<owner>/<name>``, labelled ``github.author_association`` (from the ``comment``, else the
  ``pull_request``, else the ``issue``; ``NONE`` when there is none). A delivery whose association no
  workflow for that event accepts (trigger.authors; default OWNER, MEMBER, COLLABORATOR) is answered
  200 ``{"ignored": ...}`` and emits nothing. ``X-GitHub-Delivery`` and the SHA-256 of the body both
  de-duplicate (the signature does not cover the delivery id, so a replayed body is caught by its hash),
  and the event id is derived from the body hash, so Prefect drops a repeat too.
- ``POST /webhooks/{name}``: authenticated by ``AGENT_TASKS_WEBHOOK_SECRET_<NAME>`` as a bearer token or
  as ``X-Signature-256: sha256=<hmac>``; becomes ``webhook.<name>`` with the JSON body as payload;
  ``X-Delivery-Id`` / ``Idempotency-Key`` de-duplicate and fix the event id.
- ``GET /healthz``.
"""

from __future__ import annotations

import tasks_lib  # noqa: F401  (sets quiet defaults before Prefect and litellm read their settings)

# isort: split
import hashlib
import hmac
import json
import os
import re
import uuid
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prefect.events import Event
from prefect.events.clients import EventsClient, PrefectCloudEventsClient, PrefectEventsClient
from prefect.settings import PREFECT_CLOUD_API_URL
from starlette.concurrency import run_in_threadpool

from deployments.workflows import AUTHOR_LABEL, DEFAULT_AUTHORS, WorkflowError, load_workflows
from tasks_lib.config import load_settings
from tasks_lib.errors import AgentTasksError

MAX_BODY = 1024 * 1024
EMIT_ATTEMPTS = 2  # reconnections before a delivery is answered 502 (GitHub redelivers on request)
MAX_KEY = 250  # longer delivery keys are stored as their hash (the store's column holds 300 characters)
# Event ids are uuid5 in this namespace, so one delivery always becomes the same Prefect event id.
EVENT_NAMESPACE = uuid.UUID("6f1d3a52-7c0e-5b8a-9d4e-2a61c0b7e913")
GITHUB_EVENT_NAMES = {"issues": "issue"}
HOOK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

app = FastAPI(title="agent-tasks webhook relay", docs_url=None, redoc_url=None, openapi_url=None)


def refuse(status: int, reason: str) -> JSONResponse:
    """A short error answer; nothing is emitted."""
    return JSONResponse({"error": reason}, status_code=status)


async def read_body(request: Request) -> bytes | JSONResponse:
    """The request body, or 413 past 1 MiB (checked before and while reading)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        return refuse(413, "payload larger than 1 MiB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return refuse(413, "payload larger than 1 MiB")
    return bytes(body)


def signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of a `sha256=<hex>` HMAC header."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.strip())


def author_association(body: dict[str, Any]) -> str:
    """The GitHub author_association of who wrote the text that drives the agent: the comment's, else
    the pull request's, else the issue's; NONE when the delivery has none (e.g. a check run)."""
    for key in ("comment", "pull_request", "issue"):
        subject = body.get(key)
        if isinstance(subject, dict):
            value = subject.get("author_association")
            return value if isinstance(value, str) and value else "NONE"
    return "NONE"


def github_event(event: str, delivery: str, body: dict[str, Any]) -> dict[str, Any]:
    """A GitHub delivery as a Prefect event: name, resource labels and the useful payload fields."""
    action = body.get("action")
    name = f"github.{GITHUB_EVENT_NAMES.get(event, event)}" + (f".{action}" if action else "")
    repo = body.get("repository") or {}
    full_name = repo.get("full_name") or "unknown/unknown"
    issue = body.get("issue") or {}
    pull = body.get("pull_request") or {}
    check = body.get("check_run") or {}
    subject = pull or issue
    payload: dict[str, Any] = {
        "delivery": delivery,
        "action": action,
        "repository": full_name,
        "clone_url": repo.get("clone_url") or f"https://github.com/{full_name}.git",
        "default_branch": repo.get("default_branch") or "main",
        "sender": (body.get("sender") or {}).get("login"),
    }
    if subject:
        payload.update(
            number=subject.get("number"),
            title=subject.get("title") or "",
            body=subject.get("body") or "",
            url=subject.get("html_url"),
        )
    if pull:
        payload.update(branch=(pull.get("head") or {}).get("ref"), base_branch=(pull.get("base") or {}).get("ref"))
    if check:
        suite = check.get("check_suite") or {}
        output = check.get("output") or {}
        payload.update(
            title=check.get("name") or "",
            url=check.get("html_url"),
            conclusion=check.get("conclusion"),
            branch=suite.get("head_branch"),
            head_sha=check.get("head_sha"),
            body=(output.get("title") or "") + ("\n\n" + output["summary"] if output.get("summary") else ""),
        )
    if body.get("label"):
        payload["label"] = body["label"].get("name")
    resource = {
        "prefect.resource.id": f"github.repo.{full_name}",
        "prefect.resource.name": full_name,
        "github.repo": full_name,
        "github.event": event,
        AUTHOR_LABEL: author_association(body),
    }
    if payload.get("label"):
        resource["github.label"] = payload["label"]
    if payload.get("conclusion"):
        resource["github.conclusion"] = payload["conclusion"]
    return {"event": name, "resource": resource, "payload": payload}


def webhook_event(name: str, body: Any) -> dict[str, Any]:
    """A named webhook's JSON body as a Prefect event."""
    text = json.dumps(body, indent=2, ensure_ascii=False)
    return {
        "event": f"webhook.{name}",
        "resource": {"prefect.resource.id": f"webhook.{name}", "prefect.resource.name": name},
        "payload": {"body": body, "body_text": text[:20_000]},
    }


def ignore_reason(event: dict[str, Any]) -> str | None:
    """Why no workflow would start on this GitHub event's author association; None when one would.

    The workflows whose trigger expects this event decide (the union of their `trigger.authors`); when
    none expects it, or the workflows file cannot be read, the default allow-list applies.
    """
    from prefect.events.schemas.events import matches

    association = event["resource"][AUTHOR_LABEL]
    try:
        triggers = [w.trigger for w in load_workflows() if w.trigger and matches(w.trigger.event, event["event"])]
    except WorkflowError:
        triggers = []
    allowed: list[str] = [] if triggers else list(DEFAULT_AUTHORS)
    for trigger in triggers:
        authors = trigger.allowed_authors()
        if authors is None:
            return None
        allowed += [a for a in authors if a not in allowed]
    if association in allowed:
        return None
    return f"author association {association} may not start {event['event']} (allowed: {', '.join(allowed)})"


def delivery_key(source: str, value: str) -> str:
    """The store key of a delivery: `<source>:<value>`, with over-long values replaced by their hash."""
    if len(value) > MAX_KEY:
        value = "sha256-" + hashlib.sha256(value.encode()).hexdigest()
    return f"{source}:{value}"


def event_id_for(key: str | None) -> str:
    """The Prefect event id for a delivery key: the same key always gives the same id; random without one."""
    return str(uuid.uuid5(EVENT_NAMESPACE, key) if key else uuid.uuid4())


def record_keys(keys: list[str]) -> bool:
    """Record every key of a delivery; False as soon as one was seen before (a duplicate)."""
    from tasks_lib.store import open_store, record_delivery

    store = open_store()
    return all(record_delivery(store, key) for key in keys)


def forget_keys(keys: list[str]) -> None:
    """Forget a delivery's keys after a failed emit, so a redelivery can succeed."""
    from tasks_lib.store import forget_delivery, open_store

    store = open_store()
    for key in keys:
        forget_delivery(store, key)


def prefect_api() -> str:
    """The Prefect API to send events to (PREFECT_API_URL or Prefect's configured server)."""
    api = os.environ.get("PREFECT_API_URL")
    if not api:
        from prefect.settings import PREFECT_API_URL

        api = PREFECT_API_URL.value()
    if not api:
        raise RuntimeError("PREFECT_API_URL is not set: the relay needs a Prefect server to send events to")
    return api


def events_client(api: str) -> EventsClient:
    """Prefect's events client for this API: Prefect Cloud's (PREFECT_API_KEY) or a server's (PREFECT_API_AUTH_STRING).

    It confirms every event (a websocket ping after each) and gives up after a few quick reconnections.
    """
    if api.startswith(PREFECT_CLOUD_API_URL.value()):
        return PrefectCloudEventsClient(api_url=api, reconnection_attempts=EMIT_ATTEMPTS, checkpoint_every=1)
    return PrefectEventsClient(api_url=api, reconnection_attempts=EMIT_ATTEMPTS, checkpoint_every=1)


class EmitFailed(AgentTasksError):
    """Prefect did not take the event."""


async def emit(event: dict[str, Any], event_id: str) -> None:
    """Hand the event to Prefect; returns once the server has received it, else raises EmitFailed."""
    try:
        occurred = Event(id=event_id, occurred=datetime.now(timezone.utc), **event)
        async with events_client(prefect_api()) as client:
            await client.emit(occurred)
    except Exception as exc:  # connection refused, auth refused, a closed socket: all mean "not delivered"
        raise EmitFailed(str(exc) or type(exc).__name__) from exc


async def emit_once(keys: list[str], event_id: str, delivery: str | None, event: dict[str, Any]) -> JSONResponse:
    """Emit unless one of the delivery's keys was seen; a failed emit forgets them so a redelivery can succeed."""
    if keys and not await run_in_threadpool(record_keys, keys):
        return JSONResponse({"duplicate": True, "delivery": delivery}, status_code=200)
    try:
        await emit(event, event_id)
    except EmitFailed as exc:
        if keys:
            await run_in_threadpool(forget_keys, keys)
        return refuse(502, f"could not hand the event to Prefect: {exc}")
    return JSONResponse({"event_id": event_id}, status_code=202)


def _json(body: bytes) -> Any | JSONResponse:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return refuse(400, "body is not valid JSON")


@app.get("/healthz")
def healthz() -> dict[str, Any]:
    """Liveness, and whether a GitHub secret is configured."""
    return {"ok": True, "github_secret": bool(load_settings().webhook_secret)}


@app.post("/webhooks/github")
async def github(request: Request) -> JSONResponse:
    """Receive a GitHub delivery; 202 with the event id when accepted."""
    secret = load_settings().webhook_secret
    if not secret:
        return refuse(401, "no webhook secret configured (AGENT_TASKS_WEBHOOK_SECRET)")
    body = await read_body(request)
    if isinstance(body, JSONResponse):
        return body
    if not signature_ok(secret, body, request.headers.get("x-hub-signature-256")):
        return refuse(401, "missing or invalid X-Hub-Signature-256")
    event_name = request.headers.get("x-github-event")
    delivery = request.headers.get("x-github-delivery")
    if not event_name or not delivery:
        return refuse(400, "missing X-GitHub-Event or X-GitHub-Delivery")
    data = _json(body)
    if isinstance(data, JSONResponse):
        return data
    if not isinstance(data, dict):
        return refuse(400, "body must be a JSON object")
    if event_name == "ping":
        return JSONResponse({"ok": True, "pong": True}, status_code=200)
    event = github_event(event_name, delivery, data)
    reason = await run_in_threadpool(ignore_reason, event)
    if reason:
        return JSONResponse({"ignored": reason}, status_code=200)
    body_key = delivery_key("github-body", hashlib.sha256(body).hexdigest())
    return await emit_once([delivery_key("github", delivery), body_key], event_id_for(body_key), delivery, event)


@app.post("/webhooks/{name}")
async def named(name: str, request: Request) -> JSONResponse:
    """Receive a named webhook authenticated by its own secret; 202 with the event id when accepted."""
    if not HOOK_NAME.match(name):
        return refuse(400, "webhook names are lowercase letters, digits and dashes")
    secret = load_settings().named_webhook_secret(name)
    body = await read_body(request)
    if isinstance(body, JSONResponse):
        return body
    bearer = request.headers.get("authorization", "")
    authorized = bool(secret) and (
        hmac.compare_digest(bearer.encode(), f"Bearer {secret}".encode())
        or signature_ok(secret, body, request.headers.get("x-signature-256"))
    )
    if not authorized:
        return refuse(401, "unknown webhook or bad credentials")
    data = _json(body)
    if isinstance(data, JSONResponse):
        return data
    delivery = request.headers.get("x-delivery-id") or request.headers.get("idempotency-key")
    key = delivery_key(f"webhook.{name}", delivery) if delivery else None
    return await emit_once([key] if key else [], event_id_for(key), delivery, webhook_event(name, data))
