"""Notifications: `notify:` entries of the workflows file become Prefect automations that POST to a webhook.

    notify:                          # global: every session (workflows and on-demand runs)
      - url_env: SLACK_WEBHOOK_URL   # or url: https://…; the address is a secret either way
        format: slack                # or generic (default)
        on: [awaiting_review, failed, accepted]   # the default
    workflows:
      - name: fix-issues
        notify: [{url: "https://ci.example.com/hooks/agent", format: generic, on: [failed]}]

Each entry becomes one automation (named `agent-tasks notify: <workflow or all> → <format> #<hash>`)
triggered by the session events of tasks_lib/session/events.py — only those of its workflow for a workflow's
entry — whose action is Prefect's CallWebhook. The address lives in a `Webhook` block
(`agent-tasks-notify-<hash>`, url and headers stored as secrets), so neither the automation nor its
name shows it. The body is a Jinja template Prefect renders from the event: a generic JSON object, or
a Slack message (`text` and `blocks`, links as `<url|label>`). `sync_notifications` makes the server
match the file: it creates and updates ours, and deletes ours (by prefix) that the file no longer has.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks_lib.errors import AgentTasksError
from tasks_lib.session.events import EVENT_NAMES, EVENT_PREFIX, PAYLOAD_FIELDS

AUTOMATION_PREFIX = "agent-tasks notify: "
BLOCK_PREFIX = "agent-tasks-notify-"
NOTIFY_EVENTS = tuple(status.value for status in EVENT_NAMES)  # awaiting_review, failed, crashed, …
DEFAULT_ON = ("awaiting_review", "failed", "accepted")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TITLES = {
    "awaiting_review": "Waiting for review",
    "failed": "Failed",
    "crashed": "Crashed",
    "expired": "Expired",
    "cancelled": "Cancelled",
    "accepted": "Accepted",
    "rejected": "Rejected",
}


class NotifyError(AgentTasksError, ValueError):
    """A notification that cannot be set up; the message names the entry, never its address."""


class Notify(BaseModel):
    """One `notify:` entry: where to POST (url, or url_env naming a variable holding it), in which format, on which events."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, description="The webhook address (http or https). A secret: prefer url_env.")
    url_env: str | None = Field(default=None, description="The environment variable holding the webhook address.")
    format: Literal["generic", "slack"] = "generic"
    on: list[str] = Field(default_factory=lambda: list(DEFAULT_ON), description="Session events to notify on.")

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, data: Any) -> Any:
        """YAML 1.1 reads an unquoted `on:` key as the boolean true: take it back as `on`."""
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """An http(s) address with a host (the error never repeats the address: it may hold a token)."""
        if value is None:
            return None
        value = value.strip()
        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value.strip()):
            raise ValueError("must be the name of an environment variable, e.g. SLACK_WEBHOOK_URL")
        return value.strip() if value is not None else None

    @field_validator("on", mode="before")
    @classmethod
    def _known_events(cls, value: Any) -> Any:
        """A non-empty list of session events (awaiting-review and awaiting_review both work), without repeats."""
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected a non-empty list of events ({', '.join(NOTIFY_EVENTS)})")
        events = list(dict.fromkeys(v.strip().lower().replace("-", "_") for v in value))
        unknown = [v for v in events if v not in NOTIFY_EVENTS]
        if unknown:
            raise ValueError(f"unknown event(s) {', '.join(unknown)}; known: {', '.join(NOTIFY_EVENTS)}")
        return events

    @model_validator(mode="after")
    def _one_address(self) -> Notify:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url or url_env")
        return self

    def resolve_url(self, env: Mapping[str, str] | None = None) -> str:
        """The webhook address: `url`, or the value of `url_env` (NotifyError when unset or not an http(s) address)."""
        if self.url is not None:
            return self.url
        value = ((os.environ if env is None else env).get(self.url_env or "") or "").strip()
        if not value:
            raise NotifyError(f"url_env: the environment variable {self.url_env} is not set")
        problem = url_problem(value)
        if problem:
            raise NotifyError(f"url_env: {self.url_env} {problem}")
        return value

    def where(self) -> str:
        """Where it posts, safe to print: `$VARIABLE`, or the address's scheme and host only."""
        if self.url_env:
            return f"${self.url_env}"
        parts = urlsplit(self.url or "")
        return f"{parts.scheme}://{parts.hostname}/…"


def url_problem(url: str) -> str | None:
    """Why a webhook address cannot be used (without repeating it), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "needs a host (http://host[:port]/path)"
    if any(c.isspace() for c in url):
        return "must not contain spaces"
    return None


class NotifyTarget(BaseModel):
    """A notify entry with its scope: every session (scope None), or one workflow's sessions."""

    scope: str | None = None
    notify: Notify

    @property
    def key(self) -> str:
        """A short hash naming this entry's automation and block: the scope, the address (or its variable), the format."""
        identity = json.dumps([self.scope, self.notify.url_env or self.notify.url, self.notify.format])
        return hashlib.sha256(identity.encode()).hexdigest()[:10]

    @property
    def automation_name(self) -> str:
        """The automation's name: the common prefix, the scope, the format and the key (never the address)."""
        return f"{AUTOMATION_PREFIX}{self.scope or 'all'} → {self.notify.format} #{self.key}"

    @property
    def block_name(self) -> str:
        """The name of the Webhook block that holds the address."""
        return f"{BLOCK_PREFIX}{self.key}"

    def describe(self) -> str:
        """The entry in a few words, safe to log."""
        scope = f"workflow {self.scope}" if self.scope else "every session"
        return f"{scope} → {self.notify.format} to {self.notify.where()} on {', '.join(self.notify.on)}"


def notify_targets(global_notify: Iterable[Notify], workflows: Iterable[Any]) -> list[NotifyTarget]:
    """The global entries and each workflow's own as targets; NotifyError when one appears twice in a scope."""
    targets = [NotifyTarget(notify=n) for n in global_notify]
    targets += [NotifyTarget(scope=w.name, notify=n) for w in workflows for n in w.notify]
    seen: set[str] = set()
    for target in targets:
        if target.key in seen:
            where = f"workflow {target.scope}" if target.scope else "the global notify list"
            raise NotifyError(f"{where}: the same address and format appear twice (merge their `on:` lists)")
        seen.add(target.key)
    return targets


# --- the body templates (Jinja, rendered by Prefect from the event) ---------------------------------


def _field(name: str) -> str:
    return f"{{{{ event.payload.{name} | default(none) | tojson }}}}"


def generic_template() -> str:
    """The generic JSON body: the event's name and time, then every payload field (null when unknown)."""
    fields = ", ".join(f'"{name}": {_field(name)}' for name in PAYLOAD_FIELDS)
    return (
        '{"event": {{ event.event | tojson }}, "occurred": {{ event.occurred.isoformat() | tojson }}, ' + fields + "}"
    )


_SLACK_ESCAPE = '| replace("&", "&amp;") | replace("<", "&lt;") | replace(">", "&gt;")'


def slack_template() -> str:
    """The Slack body: `text` (the fallback every client shows) and `blocks`: headline, summary line, reason, links."""
    esc = lambda expr: f"{{{{ ({expr} or '') | string {_SLACK_ESCAPE} }}}}"  # noqa: E731  (mrkdwn escapes)
    return (
        "{%- set p = event.payload -%}"
        f"{{%- set titles = {json.dumps(TITLES)} -%}}"
        "{%- set head -%}*" + esc("titles.get(p.status, p.status)") + "* · session `{{ p.short_id }}`"
        "{% if p.workflow %} · " + esc("p.workflow") + "{% endif %}{%- endset -%}"
        "{%- set summary -%}" + esc("p.summary") + "{%- endset -%}"
        "{%- set reason -%}{% if p.reason and p.status != 'awaiting_review' %}_" + esc("p.reason") + "_{% endif %}"
        "{%- endset -%}"
        "{%- set links -%}{% if p.review_url %}<{{ p.review_url }}|Review page>{% endif %}"
        "{% if p.review_url and p.prefect_run_url %} · {% endif %}"
        "{% if p.prefect_run_url %}<{{ p.prefect_run_url }}|Prefect run>{% endif %}{%- endset -%}"
        "{%- set facts -%}" + esc("p.repository") + "{% if p.diffstat %} · " + esc("p.diffstat") + "{% endif %}"
        "{% if p.reviewer %} · reviewer " + esc("p.reviewer") + "{% endif %}{%- endset -%}"
        "{%- set body -%}{{ head }}{% if summary %}\n{{ summary }}{% endif %}{% if reason %}\n{{ reason }}{% endif %}"
        "{% if links %}\n{{ links }}{% endif %}{%- endset -%}"
        '{"text": {{ body | tojson }}, "blocks": ['
        '{"type": "section", "text": {"type": "mrkdwn", "text": {{ body | tojson }}}}, '
        '{"type": "context", "elements": [{"type": "mrkdwn", "text": {{ (facts or "agent-tasks") | tojson }}}]}]}'
    )


def payload_template(fmt: str) -> str:
    """The body template of a format."""
    return slack_template() if fmt == "slack" else generic_template()


# --- the automations -------------------------------------------------------------------------------


def automation_for(target: NotifyTarget, block_document_id: Any):
    """The automation of a target: its session events (of its workflow, if scoped) → CallWebhook with the body template."""
    from datetime import timedelta

    from prefect.events.actions import CallWebhook
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    from tasks_lib.domain.session import SessionStatus

    match_related: dict[str, str] = {}
    if target.scope:
        match_related = {
            "prefect.resource.role": "workflow",
            "prefect.resource.id": f"agent-tasks.workflow.{target.scope}",
        }
    return AutomationCore(
        name=target.automation_name,
        description=f"agent-tasks notification: {target.describe()}. Made from the workflows file's notify: entries "
        "when the workflows are served; edit the file, not this automation.",
        enabled=True,
        trigger=EventTrigger(
            expect={EVENT_NAMES[SessionStatus(e)] for e in target.notify.on},
            match={"prefect.resource.id": f"{EVENT_PREFIX}*"},
            match_related=match_related,
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[CallWebhook(block_document_id=block_document_id, payload=payload_template(target.notify.format))],
    )


class SyncReport(BaseModel):
    """What a sync did, by automation name (no addresses)."""

    created: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list)  # url_env unset: left as it was (or not made)

    def line(self) -> str:
        """The report in one line."""
        return (
            f"notifications: {len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.deleted)} deleted, {len(self.skipped)} skipped"
        )


def save_webhook_block(target: NotifyTarget, url: str) -> Any:
    """Store the address in the target's Webhook block (made or overwritten); the block document's id."""
    from prefect.blocks.webhook import Webhook
    from prefect.types import SecretDict

    block = Webhook(url=url, headers=SecretDict({"Content-Type": "application/json"}))
    return block.save(target.block_name, overwrite=True)


def sync_notifications(targets: list[NotifyTarget], env: Mapping[str, str] | None = None) -> SyncReport:
    """Make the server's notify automations (and their Webhook blocks) match ``targets``: create, update, delete ours.

    Idempotent: re-running with the same targets updates in place. Automations and blocks are ours by
    their name prefix; nothing else is touched. An entry whose url_env is unset is skipped with a
    warning, and its automation, if one exists, is left as it was.
    """
    from prefect.client.orchestration import get_client
    from prefect.logging import get_logger

    logger = get_logger("agent-tasks")
    report = SyncReport()
    with get_client(sync_client=True) as client:
        existing = {a.name: a for a in client.read_automations() if a.name.startswith(AUTOMATION_PREFIX)}
        for target in targets:
            name = target.automation_name
            try:
                url = target.notify.resolve_url(env)
            except NotifyError as exc:
                logger.warning("notification for %s not set up: %s", target.describe(), exc)
                report.skipped.append(name)
                continue
            automation = automation_for(target, save_webhook_block(target, url))
            if name in existing:
                client.update_automation(existing[name].id, automation)
                report.updated.append(name)
            else:
                client.create_automation(automation)
                report.created.append(name)
        wanted = {t.automation_name for t in targets}
        for name, automation in existing.items():
            if name not in wanted:
                client.delete_automation(automation.id)
                report.deleted.append(name)
        _delete_stale_blocks(client, {t.block_name for t in targets})
    if report.created or report.updated or report.deleted or report.skipped:  # nothing to say when nothing is set up
        logger.info(report.line())
    return report


def _delete_stale_blocks(client: Any, wanted: set[str]) -> None:
    """Delete our Webhook blocks that no target uses any more."""
    for block in client.read_block_documents_by_type("webhook", include_secrets=False):
        if block.name and block.name.startswith(BLOCK_PREFIX) and block.name not in wanted:
            client.delete_block_document(block.id)
