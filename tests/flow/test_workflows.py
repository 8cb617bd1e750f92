"""Workflows: prefect.yaml and the served deployments come from one definition and behave the same.

The tests of the same code that need no Prefect server are in tests/unit/test_workflows.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import get_client

from deployments.workflows import load_workflows, trigger_spec
from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = load_workflows()


def deployments_by_name(names: list[str]) -> dict:
    with get_client(sync_client=True) as client:
        found = {}
        for name in names:
            found[name] = client.read_deployment_by_name(f"agent-task/{name}")
        return found


def triggers_of(deployment_id) -> list[dict]:
    """The automations (deployment triggers) that run this deployment, as the API returns them."""
    response = httpx.post(f"{os.environ.get('PREFECT_API_URL') or _api()}/automations/filter", json={})
    return [a for a in response.json() if any(act.get("deployment_id") == str(deployment_id) for act in a["actions"])]


def _api() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def assert_deployments_match_definitions() -> None:
    deployments = deployments_by_name([w.name for w in WORKFLOWS])
    for w in WORKFLOWS:
        d = deployments[w.name]
        assert d.description == w.description and set(w.all_tags) <= set(d.tags)
        if w.schedule:
            assert len(d.schedules) == 1
            s = d.schedules[0]
            assert s.schedule.cron == w.schedule.cron and s.schedule.timezone == w.schedule.timezone
            assert s.active == w.schedule.active
            assert d.parameters == {"request": w.request_parameters()}
        else:
            assert d.schedules == []
        automations = triggers_of(d.id)
        if w.trigger:
            assert len(automations) == 1, w.name
            trigger = automations[0]["trigger"]
            expected = trigger_spec(w)
            assert trigger["expect"] == expected["expect"]
            assert {k: v for k, v in trigger["match"].items()} == expected["match"]
            assert automations[0]["actions"][0]["parameters"] == expected["parameters"]
            assert automations[0]["enabled"] is True
        else:
            assert automations == []


def test_prefect_yaml_is_accepted_by_prefect_deploy(prefect_server, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "AGENT_TASKS_PROJECT_DIR": str(ROOT)}
    prefect = [sys.executable, "-m", "prefect"]
    pool = subprocess.run(
        [*prefect, "work-pool", "create", "local-process", "--type", "process", "--overwrite"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert pool.returncode == 0, pool.stdout + pool.stderr
    prefect_file = tmp_path / "prefect.yaml"
    shutil.copy(ROOT / "prefect.yaml", prefect_file)
    deploy = subprocess.run(
        [*prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    assert prefect_file.read_text() == (ROOT / "prefect.yaml").read_text(), "prefect deploy must not need to rewrite it"
    assert_deployments_match_definitions()
    with get_client(sync_client=True) as client:
        assert client.read_deployment_by_name("agent-task/github-issue-labeled").work_pool_name == "local-process"


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def github_remote(repo, tmp_path, monkeypatch):
    """https://github.com/acme/widgets.git, answered by a local bare repository (git's insteadOf)."""
    bare = tmp_path / "widgets.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    config = tmp_path / "gitconfig"
    config.write_text(f'[url "file://{bare}"]\n\tinsteadOf = https://github.com/acme/widgets.git\n')
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    return bare


def test_signed_issue_delivery_starts_the_workflow_with_templated_parameters(  # runs after `prefect deploy` made the same names
    prefect_server, scripted, store, github_remote, monkeypatch, tmp_path
):
    server = scripted(
        [calls(tool("write_file", path="GREETING.md", content="hello\n")), calls(tool("finish", summary="ok"))]
    )
    secret = "workflow-test-secret"
    monkeypatch.setenv("AGENT_TASKS_WEBHOOK_SECRET", secret)
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    env = {
        **os.environ,
        "AGENT_TASKS_MODEL": "openai/scripted-model",
        "OPENAI_API_BASE": server.api_base,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS": "1",
    }
    log = open(tmp_path / "serve.log", "w")
    serve = subprocess.Popen([sys.executable, "-m", "deployments.serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                found = deployments_by_name([w.name for w in WORKFLOWS])
                if not any(d.work_pool_name for d in found.values()):
                    break
            except Exception:
                pass
            time.sleep(0.5)
        assert_deployments_match_definitions()
        assert all(d.pull_steps in (None, []) for d in deployments_by_name([w.name for w in WORKFLOWS]).values())
        time.sleep(2)  # let the trigger service load the new automations

        issue = {
            "number": 7,
            "title": "Add a greeting file",
            "body": "Create GREETING.md saying hello.",
            "html_url": "https://github.com/acme/widgets/issues/7",
            "author_association": "COLLABORATOR",
        }
        payload = {
            "action": "labeled",
            "label": {"name": "agent"},
            "sender": {"login": "octocat"},
            "issue": issue,
            "repository": {
                "full_name": "acme/widgets",
                "clone_url": "https://github.com/acme/widgets.git",
                "default_branch": "main",
            },
        }
        body = json.dumps(payload).encode()
        relay_module = __import__("deployments.relay", fromlist=["app"])
        relay = TestClient(relay_module.app)
        # Prefect itself must not fire for an outsider's event, even one that did not come through the relay.
        outsider = relay_module.github_event(
            "issues", "delivery-6", {**payload, "issue": {**issue, "author_association": "NONE"}}
        )
        httpx.post(
            f"{prefect_server}/events", json=[{"id": str(uuid.uuid4()), "occurred": "2026-01-01T00:00:00Z", **outsider}]
        ).raise_for_status()
        headers = {
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "delivery-7",
            "X-Hub-Signature-256": sign(body, secret),
        }
        first = relay.post("/webhooks/github", content=body, headers=headers)
        duplicate = relay.post("/webhooks/github", content=body, headers=headers)
        forged = relay.post(
            "/webhooks/github",
            content=body,
            headers={**headers, "X-GitHub-Delivery": "delivery-8", "X-Hub-Signature-256": sign(body, "wrong")},
        )
        other_label = json.dumps({**payload, "label": {"name": "bug"}}).encode()
        unlabeled = relay.post(
            "/webhooks/github",
            content=other_label,
            headers={**headers, "X-GitHub-Delivery": "delivery-9", "X-Hub-Signature-256": sign(other_label, secret)},
        )
        replayed = relay.post("/webhooks/github", content=body, headers={**headers, "X-GitHub-Delivery": "delivery-10"})
        contributor = json.dumps({**payload, "issue": {**issue, "author_association": "CONTRIBUTOR"}}).encode()
        ignored = relay.post(
            "/webhooks/github",
            content=contributor,
            headers={**headers, "X-GitHub-Delivery": "delivery-11", "X-Hub-Signature-256": sign(contributor, secret)},
        )
        assert (first.status_code, duplicate.status_code, forged.status_code, unlabeled.status_code) == (
            202,
            200,
            401,
            202,
        )
        assert replayed.json() == {"duplicate": True, "delivery": "delivery-10"} and "ignored" in ignored.json()

        deadline = time.monotonic() + 180
        row = None
        while time.monotonic() < deadline and row is None:
            row = next(
                (
                    r
                    for r in store.list_sessions(limit=50)
                    if r.workflow == "github-issue-labeled" and r.status == "awaiting_review"
                ),
                None,
            )
            time.sleep(0.5)
        assert row is not None, (tmp_path / "serve.log").read_text()[-3000:]
        assert row.repository == "https://github.com/acme/widgets.git" and row.branch == "main"
        assert row.instructions.startswith("Add a greeting file\n\nCreate GREETING.md saying hello.")
        assert "(GitHub issue #7: https://github.com/acme/widgets/issues/7)" in row.instructions
        assert row.reviewer == "octocat" and row.agent == "default"
        trigger = row.request["trigger"]
        assert trigger["event"] == "github.issue.labeled" and trigger["id"] == first.json()["event_id"]
        assert trigger["url"] == "https://github.com/acme/widgets/issues/7" and str(trigger["number"]) == "7"
        assert [f["path"] for f in store.latest_diff(row.id).files] == ["GREETING.md"]
        # Why it started is visible to the reviewer: in the form (the run is suspended) and in `show`.
        description = httpx.get(
            f"{prefect_server}/flow_runs/{row.flow_run_id}/input/suspended-{row.review_key}-description"
        ).json()
        assert (
            "**Started by:** github.issue.labeled “Add a greeting file” https://github.com/acme/widgets/issues/7"
            in description
        )
        shown = subprocess.run(
            [sys.executable, "-m", "tasks_lib.cli", "show", row.id], capture_output=True, text=True
        ).stdout
        assert (
            "started  by github.issue.labeled “Add a greeting file”" in shown
            and "(workflow github-issue-labeled)" in shown
        )

        time.sleep(
            3
        )  # a second run (outsider, duplicate, replay, forged, contributor or other label) would have started by now
        with get_client(sync_client=True) as client:
            from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["github-issue-labeled"]))
            )
        assert len(runs) == 1
        assert len([r for r in store.list_sessions(limit=50) if r.workflow == "github-issue-labeled"]) == 1
    finally:
        serve.terminate()
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()


def test_agent_tasks_up_starts_the_stack_and_stops_cleanly(tmp_path):
    import socket

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    port, relay_port, review_port = free_port(), free_port(), free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "AGENT_TASKS_HOME": str(tmp_path / "home")}
    env.pop("PREFECT_API_URL", None)
    env.pop("AGENT_TASKS_REVIEW_URL", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tasks_lib.cli",
            "up",
            "--port",
            str(port),
            "--relay-port",
            str(relay_port),
            "--review-port",
            str(review_port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        ready = False
        while time.monotonic() < deadline and not ready:
            try:
                ready = (
                    httpx.get(f"http://127.0.0.1:{relay_port}/healthz", timeout=2).status_code == 200
                    and httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
                )
            except httpx.HTTPError:
                time.sleep(0.5)
        assert ready, "the stack did not answer on both ports"
        assert "<html" in httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text.lower()  # the UI
        names = set()
        # the workflows, and the housekeeping served beside them: settle-sessions and the daily gc
        expected = {w.name for w in WORKFLOWS} | {"settle-sessions", "daily"}
        while time.monotonic() < deadline and names != expected:
            found = httpx.post(f"http://127.0.0.1:{port}/api/deployments/filter", json={}, timeout=5).json()
            names = {d["name"] for d in found}
            time.sleep(0.5)
        assert names == expected
        automations = httpx.post(f"http://127.0.0.1:{port}/api/automations/filter", json={}, timeout=5).json()
        assert "agent-tasks: crash runs whose heartbeats stopped" in {a["name"] for a in automations}
        # the review pages, beside the relay (not on it), answer only to their own address
        inbox = None
        while time.monotonic() < deadline and inbox is None:
            try:
                inbox = httpx.get(f"http://127.0.0.1:{review_port}/sessions", timeout=5)
            except httpx.HTTPError:
                time.sleep(0.5)
        assert inbox is not None and inbox.status_code == 200 and "<h1>Sessions</h1>" in inbox.text
        assert httpx.get(f"http://127.0.0.1:{relay_port}/sessions", timeout=5).status_code == 404
        assert (
            httpx.get(
                f"http://127.0.0.1:{review_port}/sessions", headers={"Host": "evil.example"}, timeout=5
            ).status_code
            == 403
        )
        # up.json is written when up's start returns, just before its banner: stop only then (the pages may
        # answer this test before up's own check of them has seen them)
        while time.monotonic() < deadline and not (tmp_path / "home" / "up.json").exists():
            time.sleep(0.2)
        time.sleep(1)
    finally:
        proc.send_signal(__import__("signal").SIGINT)
        stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 0, stderr[-2000:]
    assert f"Prefect UI     http://127.0.0.1:{port}" in stdout and "stopped" in stderr
    assert f"Review pages   http://127.0.0.1:{review_port}/sessions" in stdout
    assert "Sandbox        bwrap (bubblewrap" in stdout, "up says which sandbox is in force"
    assert "Limits         memory 4 GiB (cgroup v" in stdout, "up says which limits commands get"
    assert "___" not in stdout and "Configure Prefect" not in stdout, "Prefect's banner goes to its log, not here"
    assert "Configure Prefect" in (tmp_path / "home" / "logs" / "prefect-server.log").read_text()
    for p in (port, relay_port, review_port):
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{p}/", timeout=2)
    for p in (port, review_port):
        leftover = subprocess.run(["pgrep", "-f", f"--port {p}"], capture_output=True, text=True).stdout.strip()
        assert leftover == "", "a part of the stack is still running"
