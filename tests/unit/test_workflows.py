"""Workflows: prefect.yaml is made from the workflows file, its errors name the workflow and field, and every
trigger renders a valid task request (Prefect's own matcher and templates, no server).

`prefect deploy`, the served deployments and `agent-tasks up` are in tests/flow/test_workflows.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from deployments.workflows import WorkflowError, load_workflows, render_prefect_yaml, trigger_spec

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = load_workflows()


def test_prefect_yaml_is_made_from_the_workflows():
    assert (ROOT / "prefect.yaml").read_text() == render_prefect_yaml(WORKFLOWS), (
        "prefect.yaml drifted from deployments/workflows.yaml: run `agent-tasks workflows render -o prefect.yaml`"
    )
    check = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "workflows", "check", "--file", str(ROOT / "prefect.yaml")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0


def test_workflows_file_errors_name_the_workflow_and_field(tmp_path, monkeypatch):
    bad = tmp_path / "workflows.yaml"
    bad.write_text("workflows:\n  - name: x\n    request: {repository: /r, colour: blue}\n")
    monkeypatch.setenv("AGENT_TASKS_WORKFLOWS", str(bad))
    proc = subprocess.run([sys.executable, "-m", "tasks_lib.cli", "workflows", "list"], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip() == (
        f"error: {bad}: workflow x: request: unknown field(s) colour; known: agent, attempts, branch, hidden_check, "
        "independent_review, instructions, "
        "model, models, on_accept, repository, review, reviewer, stop_at_first_green"
    )


def test_a_workflow_runs_best_of_n_attempts_from_its_request(tmp_path):
    from deployments.workflows import WorkflowError, load_workflows
    from tasks_lib.domain.request import TaskRequest

    good = tmp_path / "good.yaml"
    good.write_text(
        "workflows:\n  - name: tries\n    schedule: {cron: '0 3 * * *'}\n"
        "    request: {repository: /r, instructions: fix it, attempts: 3, stop_at_first_green: true}\n"
    )
    [workflow] = load_workflows(good)
    request = TaskRequest.model_validate(workflow.request_parameters())
    assert (request.attempts, request.stop_at_first_green) == (3, True)
    bad = tmp_path / "bad.yaml"
    bad.write_text("workflows:\n  - name: tries\n    request: {repository: /r, instructions: x, attempts: 20}\n")
    with pytest.raises(WorkflowError, match="attempts: 20 is not a number of attempts from 1 to 8"):
        load_workflows(bad)


def test_github_triggers_match_only_allowed_author_associations(tmp_path):
    specs = {w.name: trigger_spec(w) for w in WORKFLOWS if w.trigger}
    default = ["OWNER", "MEMBER", "COLLABORATOR"]
    assert specs["github-issue-labeled"]["match"] == {
        "prefect.resource.id": "github.repo.*",
        "github.label": "agent",
        "github.author_association": default,
    }
    assert specs["github-pull-request-review"]["match"]["github.author_association"] == default
    assert "github.author_association" not in specs["github-check-failed"]["match"]  # authors: any
    assert "github.author_association" not in specs["webhook-example"]["match"]
    assert (
        "      github.author_association:\n      - OWNER\n      - MEMBER\n      - COLLABORATOR\n"
        in (ROOT / "prefect.yaml").read_text()
    )
    custom = tmp_path / "workflows.yaml"
    custom.write_text(
        "workflows:\n  - name: mine\n    trigger: {event: github.issue.opened, authors: [owner, OWNER, member]}\n"
        "  - name: open\n    trigger: {event: github.issue.opened, authors: any}\n"
    )
    mine, open_ = load_workflows(custom)
    assert trigger_spec(mine)["match"]["github.author_association"] == ["OWNER", "MEMBER"]
    assert trigger_spec(open_)["match"] == {"prefect.resource.id": "github.repo.*"}


@pytest.mark.parametrize(
    "trigger, error",
    [
        (
            "{event: github.issue.opened, authors: [ADMIN]}",
            "trigger.authors: unknown author association(s) ADMIN; known: "
            "OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, FIRST_TIME_CONTRIBUTOR, FIRST_TIMER, MANNEQUIN, NONE",
        ),
        (
            "{event: github.issue.opened, authors: everyone}",
            "trigger.authors: expected `any` or a non-empty list of author associations",
        ),
        (
            "{event: github.issue.opened, authors: []}",
            "trigger.authors: expected `any` or a non-empty list of author associations",
        ),
        (
            "{event: webhook.x, authors: [OWNER]}",
            "trigger: authors: only GitHub triggers (github.* events) have authors",
        ),
        (
            "{event: github.issue.opened, match: {github.author_association: NONE}}",
            "trigger: match: set trigger.authors instead",
        ),
    ],
)
def test_bad_trigger_authors_name_the_workflow_and_field(tmp_path, trigger, error):
    bad = tmp_path / "workflows.yaml"
    bad.write_text(f"workflows:\n  - name: ok\n  - name: gh\n    trigger: {trigger}\n")
    with pytest.raises(WorkflowError) as raised:
        load_workflows(bad)
    assert str(raised.value).startswith(f"{bad}: workflow gh: {error}") and "\n" not in str(raised.value)


def test_bad_trigger_authors_fail_the_cli_with_one_line(tmp_path, monkeypatch):
    bad = tmp_path / "workflows.yaml"
    bad.write_text("workflows:\n  - name: gh\n    trigger: {event: github.issue.opened, authors: [ADMIN]}\n")
    monkeypatch.setenv("AGENT_TASKS_WORKFLOWS", str(bad))
    proc = subprocess.run([sys.executable, "-m", "tasks_lib.cli", "workflows", "check"], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: {bad}: workflow gh: trigger.authors: unknown author association(s) ADMIN;")


SAMPLE_DELIVERIES = {
    "github-issue-labeled": (
        "issues",
        {
            "action": "labeled",
            "label": {"name": "agent"},
            "sender": {"login": "octocat"},
            "issue": {
                "number": 7,
                "title": "Add a greeting",
                "body": "Say hello.",
                "html_url": "https://github.com/acme/w/issues/7",
                "author_association": "OWNER",
            },
            "repository": {
                "full_name": "acme/w",
                "clone_url": "https://github.com/acme/w.git",
                "default_branch": "main",
            },
        },
    ),
    "github-pull-request-review": (
        "pull_request",
        {
            "action": "opened",
            "sender": {"login": "dev"},
            "pull_request": {
                "number": 9,
                "title": "Speed up",
                "body": "Faster.",
                "html_url": "https://github.com/acme/w/pull/9",
                "head": {"ref": "fast"},
                "base": {"ref": "main"},
                "author_association": "MEMBER",
            },
            "repository": {
                "full_name": "acme/w",
                "clone_url": "https://github.com/acme/w.git",
                "default_branch": "main",
            },
        },
    ),
    "github-check-failed": (
        "check_run",
        {
            "action": "completed",
            "sender": {"login": "ci"},
            "check_run": {
                "name": "tests",
                "conclusion": "failure",
                "html_url": "https://github.com/acme/w/runs/1",
                "head_sha": "abc",
                "check_suite": {"head_branch": "feature"},
                "output": {"title": "2 failed", "summary": "test_x failed"},
            },
            "repository": {
                "full_name": "acme/w",
                "clone_url": "https://github.com/acme/w.git",
                "default_branch": "main",
            },
        },
    ),
}


def assert_prefect_matches(workflow, event: dict) -> None:
    """Prefect's own matcher fires the trigger for this event, and for an outsider's only with `authors: any`."""
    from prefect.events.schemas.events import Resource, ResourceSpecification

    from deployments.relay import ignore_reason

    spec = ResourceSpecification(trigger_spec(workflow)["match"])
    assert spec.matches(Resource(event["resource"]))
    if workflow.trigger.event.startswith("github."):
        assert ignore_reason(event) is None
        outsider = {**event, "resource": {**event["resource"], "github.author_association": "NONE"}}
        anyone = workflow.trigger.authors == "any"
        assert spec.matches(Resource(outsider["resource"])) is anyone
        assert (ignore_reason(outsider) is None) is anyone


@pytest.mark.parametrize("name", [w.name for w in WORKFLOWS if w.trigger])
def test_every_trigger_renders_a_valid_task_request_from_a_relay_event(name):
    """Prefect's own template code, fed the event the relay makes, yields a request the flow accepts."""
    import datetime

    from prefect.server.events.actions import RunDeployment
    from prefect.server.events.schemas.events import ReceivedEvent
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    from deployments.relay import github_event, webhook_event
    from tasks_lib.domain.request import TaskRequest

    workflow = next(w for w in WORKFLOWS if w.name == name)
    if name in SAMPLE_DELIVERIES:
        kind, body = SAMPLE_DELIVERIES[name]
        event = github_event(kind, "delivery-1", body)
    else:
        event = webhook_event(workflow.trigger.event.split(".", 1)[1], {"alert": "disk full", "host": "db1"})
    assert event["event"] == workflow.trigger.event
    assert_prefect_matches(workflow, event)
    received = ReceivedEvent(id=uuid.uuid4(), occurred=datetime.datetime.now(datetime.timezone.utc), **event)

    parameters = json.loads(json.dumps(trigger_spec(workflow)["parameters"]))
    RunDeployment._upgrade_v1_templates(parameters)
    rendered = hydrate(
        parameters, HydrationContext(render_jinja=True, jinja_context={"event": received}, raise_on_error=True)
    )
    request = TaskRequest.model_validate(rendered["request"])
    assert request.trigger["event"] == workflow.trigger.event and request.trigger["id"] == str(received.id)
    assert request.agent == workflow.agent and request.instructions.strip()
    if name == "github-pull-request-review":
        assert request.branch == "fast" and request.instructions.startswith("Review pull request #9")
    if name == "github-check-failed":
        assert (
            request.branch == "feature"
            and "2 failed" in request.instructions
            and "test_x failed" in request.instructions
        )
    if name == "webhook-example":
        assert '"alert": "disk full"' in request.instructions


def test_workflow_sandbox_settings_reach_the_run_and_scheduled_runs_count_as_unattended(tmp_path):
    from tasks_lib.domain.request import TaskRequest

    path = tmp_path / "workflows.yaml"
    path.write_text(
        "workflows:\n  - name: nightly\n    schedule: {cron: '0 3 * * *'}\n    sandbox: bwrap\n    network: on\n"
        "    env: [NPM_TOKEN]\n    setup_command: npm ci\n    request: {repository: /r, instructions: tidy}\n"
    )
    (nightly,) = load_workflows(path)
    request = TaskRequest.model_validate(nightly.request_parameters())
    assert (request.sandbox, request.network, request.env, request.setup_command) == (
        "bwrap",
        "on",
        ["NPM_TOKEN"],
        "npm ci",
    )
    assert request.unattended and not request.event_started, "a schedule is unattended but wrote no text"
    assert request.trigger == {"event": "schedule", "title": "cron 0 3 * * *"}
    issue = next(w for w in WORKFLOWS if w.name == "github-issue-labeled")
    assert "sandbox" not in issue.request_parameters(), "unset settings leave the agent's own in force"

    path.write_text("workflows:\n  - name: bare\n    sandbox: none\n")
    with pytest.raises(
        WorkflowError, match=r"workflow bare: the sandbox settings \(sandbox\) apply to the runs a request starts"
    ):
        load_workflows(path)
