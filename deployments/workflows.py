"""Workflows: the one definition from which both the served deployments and prefect.yaml are made."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deployments.notify import Notify, NotifyError, notify_targets
from tasks_lib.config import load_settings
from tasks_lib.domain.egress import EgressLayer
from tasks_lib.domain.fields import EnvNames, NetworkSetting
from tasks_lib.domain.limits import LimitsLayer
from tasks_lib.errors import AgentTasksError

ENTRYPOINT = "flows/agent_task.py:agent_task"
SHIPPED_WORKFLOWS = Path(__file__).with_name("workflows.yaml")
WORK_POOL = "local-process"
PREFECT_VERSION = "3.9.1"  # the version prefect.yaml was written for (kept fixed so renders are stable)
REQUEST_FIELDS = {
    "repository",
    "branch",
    "instructions",
    "agent",
    "model",
    "models",
    "reviewer",
    "review",
    "on_accept",
    "attempts",
    "stop_at_first_green",
    "hidden_check",
    "independent_review",
}
# What every event-started session records about the event that started it.
TRIGGER_RECORD = {
    "event": "{{ event.event }}",
    "id": "{{ event.id | string }}",  # single expressions get `| tojson`: UUIDs and datetimes must be strings
    "occurred": "{{ event.occurred | string }}",
    "resource": "{{ event.resource.id }}",
    "url": "{{ event.payload.url | default(none) }}",
    "title": "{{ event.payload.title | default(none) }}",
    "number": "{{ event.payload.number | default(none) }}",
    "sender": "{{ event.payload.sender | default(none) }}",  # mapped to a person for independent review
}
# Who may start a GitHub-triggered workflow: the GitHub `author_association` of whoever wrote the text
# that drives the agent (the relay labels events with it as `github.author_association`).
AUTHOR_LABEL = "github.author_association"
DEFAULT_AUTHORS = ("OWNER", "MEMBER", "COLLABORATOR")
AUTHOR_ASSOCIATIONS = (*DEFAULT_AUTHORS, "CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "FIRST_TIMER", "MANNEQUIN", "NONE")


class WorkflowError(AgentTasksError, ValueError):
    """The workflows file cannot be used; the message says where and why."""


class Schedule(BaseModel):
    """When a workflow runs: exactly one of cron, interval (seconds) or rrule."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = None
    interval: int | None = Field(default=None, gt=0)
    rrule: str | None = None
    timezone: str | None = None
    active: bool = True

    @model_validator(mode="after")
    def _exactly_one(self) -> Schedule:
        if sum(x is not None for x in (self.cron, self.interval, self.rrule)) != 1:
            raise ValueError("a schedule needs exactly one of cron, interval or rrule")
        return self

    def describe(self) -> str:
        """The schedule in a few words, e.g. 'cron 0 6 * * 1 (UTC)'."""
        what = (
            f"cron {self.cron}" if self.cron else f"every {self.interval} s" if self.interval else f"rrule {self.rrule}"
        )
        return what + (f" ({self.timezone})" if self.timezone else "")


class Trigger(BaseModel):
    """Which event starts a workflow, optionally only for events whose resource has these labels.

    GitHub triggers (`github.*` events) also only fire for authors whose association is in `authors`
    (default OWNER, MEMBER, COLLABORATOR); `authors: any` turns that off explicitly.
    """

    model_config = ConfigDict(extra="forbid")

    event: str
    match: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    authors: list[str] | Literal["any"] | None = None

    @field_validator("authors", mode="before")
    @classmethod
    def _known_authors(cls, value: Any) -> Any:
        """`any`, or a non-empty list of GitHub author associations (case-insensitive, upper-cased)."""
        if value is None or value == "any":
            return value
        known = ", ".join(AUTHOR_ASSOCIATIONS)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected `any` or a non-empty list of author associations ({known})")
        upper = list(dict.fromkeys(v.strip().upper() for v in value))
        unknown = [v for v in upper if v not in AUTHOR_ASSOCIATIONS]
        if unknown:
            raise ValueError(f"unknown author association(s) {', '.join(unknown)}; known: {known}")
        return upper

    @model_validator(mode="after")
    def _authors_only_for_github(self) -> Trigger:
        if AUTHOR_LABEL in self.match:
            raise ValueError(f"match: set trigger.authors instead of matching {AUTHOR_LABEL}")
        if self.authors is not None and not self.event.startswith("github."):
            raise ValueError("authors: only GitHub triggers (github.* events) have authors")
        return self

    def allowed_authors(self) -> list[str] | None:
        """The author associations this trigger fires for; None when it fires for anyone."""
        if not self.event.startswith("github.") or self.authors == "any":
            return None
        return list(self.authors or DEFAULT_AUTHORS)


class Workflow(BaseModel):
    """An agent + a repository/branch + an instructions template + a reviewer + a schedule or trigger."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str = ""
    agent: str = "default"
    request: dict[str, Any] = Field(default_factory=dict)
    schedule: Schedule | None = None
    trigger: Trigger | None = None
    tags: list[str] = Field(default_factory=list)
    concurrency_limit: int | None = Field(default=None, ge=1)
    # How the runs' commands are confined (see the README's security model); unset: the agent's settings.
    sandbox: Literal["auto", "bwrap", "docker", "none"] | None = None
    image: str | None = None  # sandbox: docker — the project image the runs' commands use
    network: NetworkSetting = None
    env: EnvNames = Field(default_factory=list)
    setup_command: str | None = None
    limits: LimitsLayer = None
    egress: EgressLayer = None
    setup_network: NetworkSetting = None
    shadow_builtins: bool = False
    # Webhooks to POST to when this workflow's sessions wait for review, fail, are accepted… (deployments/notify.py)
    notify: list[Notify] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Workflow:
        unknown = set(self.request) - REQUEST_FIELDS
        if unknown:
            raise ValueError(
                f"request: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(REQUEST_FIELDS))}"
            )
        attempts = self.request.get("attempts")
        if attempts is not None and not (isinstance(attempts, int) and 1 <= attempts <= 8):
            raise ValueError(f"request: attempts: {attempts!r} is not a number of attempts from 1 to 8")
        if self.schedule and self.trigger:
            raise ValueError("a workflow has a schedule or a trigger, not both")
        if self.sandbox_settings() and not self.request:
            fields = ", ".join(self.sandbox_settings())
            raise ValueError(f"the sandbox settings ({fields}) apply to the runs a request starts: add a request")
        return self

    def sandbox_settings(self) -> dict[str, Any]:
        """The sandbox settings this workflow sets, as request fields."""
        values = {
            "sandbox": self.sandbox,
            "image": self.image,
            "network": self.network,
            "env": self.env or None,
            "setup_command": self.setup_command,
            "limits": self.limits,
            "egress": self.egress.model_dump() if self.egress else None,
            "setup_network": self.setup_network,
            "shadow_builtins": self.shadow_builtins or None,
        }
        return {k: v for k, v in values.items() if v is not None}

    def request_parameters(self) -> dict[str, Any] | None:
        """The flow's `request` parameter for this workflow (templates left for Prefect to render).

        Runs a trigger or a schedule starts carry what started them, so they count as unattended.
        """
        if not self.request:
            return None
        request = {"agent": self.agent, **self.request, **self.sandbox_settings()}
        if self.trigger:
            request["trigger"] = dict(TRIGGER_RECORD)
        elif self.schedule:
            request["trigger"] = {"event": "schedule", "title": self.schedule.describe()}
        return request

    @property
    def all_tags(self) -> list[str]:
        """Deployment tags: agent-tasks, the agent, and the workflow's own."""
        return ["agent-tasks", f"agent:{self.agent}", *self.tags]


def workflows_file() -> Path | None:
    """The workflows file chosen with AGENT_TASKS_WORKFLOWS, if any."""
    return load_settings().workflows


def _read_file(path: Path | None) -> tuple[str, Any]:
    """The workflows file's name (for messages) and its parsed YAML (AGENT_TASKS_WORKFLOWS, or the shipped one)."""
    path = path or workflows_file()
    source = str(path) if path else "deployments/workflows.yaml"
    try:
        text = (path or SHIPPED_WORKFLOWS).read_text()
        return source, yaml.safe_load(text) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise WorkflowError(f"{source}: {exc}") from None


def _problem(exc: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """The first validation error as `field.path: message` (never the input: it may be a secret address)."""
    err = exc.errors()[0]
    where = "".join(f"{p}: " for p in [".".join(str(p) for p in (*prefix, *err["loc"]))] if p)
    return f"{where}{err['msg'].removeprefix('Value error, ')}"


def load_workflows(path: Path | None = None) -> list[Workflow]:
    """Read the workflows file (AGENT_TASKS_WORKFLOWS, or the one shipped in deployments/); its notify: entries too."""
    source, data = _read_file(path)
    items = data.get("workflows") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise WorkflowError(f"{source}: expected a top-level 'workflows:' list")
    workflows = []
    for i, item in enumerate(items):
        try:
            workflows.append(Workflow.model_validate(item))
        except ValidationError as exc:
            name = item.get("name", f"#{i + 1}") if isinstance(item, dict) else f"#{i + 1}"
            raise WorkflowError(f"{source}: workflow {name}: {_problem(exc)}") from None
    names = [w.name for w in workflows]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise WorkflowError(f"{source}: duplicate workflow names: {', '.join(sorted(duplicates))}")
    try:
        notify_targets(_global_notify(source, data), workflows)
    except NotifyError as exc:
        raise WorkflowError(f"{source}: {exc}") from None
    return workflows


def load_global_notify(path: Path | None = None) -> list[Notify]:
    """The file's top-level `notify:` entries: webhooks for every session (workflows and on-demand runs)."""
    return _global_notify(*_read_file(path))


def _global_notify(source: str, data: Any) -> list[Notify]:
    from pydantic import TypeAdapter

    raw = data.get("notify") if isinstance(data, dict) else None
    if raw is None:
        return []
    try:
        return TypeAdapter(list[Notify]).validate_python(raw)
    except ValidationError as exc:
        raise WorkflowError(f"{source}: {_problem(exc, ('notify',))}") from None


def trigger_spec(workflow: Workflow) -> dict[str, Any] | None:
    """The event trigger of a workflow in prefect.yaml's shape (also used to build served triggers)."""
    if workflow.trigger is None:
        return None
    match: dict[str, str | list[str]] = {
        "prefect.resource.id": _resource_pattern(workflow.trigger.event),
        **workflow.trigger.match,
    }
    authors = workflow.trigger.allowed_authors()
    if authors is not None:
        match[AUTHOR_LABEL] = authors  # a list: Prefect fires when the label is any one of them
    spec: dict[str, Any] = {
        "type": "event",
        "name": f"{workflow.name}-trigger",
        "enabled": workflow.trigger.enabled,
        "expect": [workflow.trigger.event],
        "match": match,
    }
    params = workflow.request_parameters()
    if params:
        spec["parameters"] = {"request": params}
    return spec


def _resource_pattern(event: str) -> str:
    """The resource id pattern that events of this kind carry (see the relay)."""
    if event.startswith("github."):
        return "github.repo.*"
    if event.startswith("webhook."):
        return f"webhook.{event.split('.', 1)[1]}"
    return "*"


def schedule_spec(workflow: Workflow) -> dict[str, Any] | None:
    """The schedule of a workflow in prefect.yaml's shape."""
    if workflow.schedule is None:
        return None
    return workflow.schedule.model_dump(exclude_none=True)


def deployment_spec(workflow: Workflow) -> dict[str, Any]:
    """One `deployments:` entry of prefect.yaml."""
    spec: dict[str, Any] = {
        "name": workflow.name,
        "description": workflow.description,
        "entrypoint": ENTRYPOINT,
        "tags": workflow.all_tags,
        "work_pool": {"name": WORK_POOL},
    }
    params = workflow.request_parameters()
    if params and not workflow.trigger:
        spec["parameters"] = {"request": params}
    if workflow.schedule:
        spec["schedules"] = [schedule_spec(workflow)]
    if workflow.trigger:
        spec["triggers"] = [trigger_spec(workflow)]
    if workflow.concurrency_limit:
        spec["concurrency_limit"] = workflow.concurrency_limit
    return spec


def render_prefect_yaml(workflows: list[Workflow]) -> str:
    """prefect.yaml for `prefect deploy --all`, made from the workflows."""
    document = {
        "name": "prefect-agent-tasks",
        "prefect-version": PREFECT_VERSION,
        "build": None,
        "push": None,
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $AGENT_TASKS_PROJECT_DIR }}"}}],
        "deployments": [deployment_spec(w) for w in workflows],
    }
    header = (
        "# Generated from deployments/workflows.yaml by `agent-tasks workflows render`; do not edit by hand.\n"
        "# Deploy: prefect work-pool create local-process --type process\n"
        "#         AGENT_TASKS_PROJECT_DIR=$PWD prefect --no-prompt deploy --all\n"
        "# Workers: AGENT_TASKS_PROJECT_DIR=/path/to/this/checkout prefect worker start --pool local-process\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, width=100, allow_unicode=True)


def runner_deployments(workflows: list[Workflow]):
    """The workflows as deployments for `serve()` (same names, parameters, schedules and triggers)."""
    from prefect.events import DeploymentEventTrigger
    from prefect.schedules import Schedule as PrefectSchedule

    from flows.agent_task import agent_task

    deployments = []
    for w in workflows:
        schedules = None
        if w.schedule:
            s = w.schedule
            every = timedelta(seconds=s.interval) if s.interval else None
            schedules = [
                PrefectSchedule(cron=s.cron, interval=every, rrule=s.rrule, timezone=s.timezone, active=s.active)
            ]
        triggers = None
        if w.trigger:
            spec = trigger_spec(w)
            triggers = [
                DeploymentEventTrigger(
                    name=spec["name"],
                    enabled=spec["enabled"],
                    expect=set(spec["expect"]),
                    match=spec["match"],
                    parameters=spec.get("parameters"),
                )
            ]
        params = w.request_parameters()
        deployments.append(
            agent_task.to_deployment(
                name=w.name,
                description=w.description,
                tags=w.all_tags,
                parameters={"request": params} if params and not w.trigger else None,
                schedules=schedules,
                triggers=triggers,
                concurrency_limit=w.concurrency_limit,
            )
        )
    return deployments
