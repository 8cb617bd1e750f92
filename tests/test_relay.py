"""The webhook relay: signatures, limits and de-duplication, against a real Prefect test server."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import httpx
import pytest
from fastapi.testclient import TestClient

from deployments.relay import app

SECRET = "relay-test-secret-value"


@pytest.fixture
def client(monkeypatch, prefect_server):
    monkeypatch.setenv("AGENT_TASKS_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("AGENT_TASKS_WEBHOOK_SECRET_DEPLOY_FAILED", "hook-secret-123")
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    return TestClient(app)


def signed(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def issue_delivery(repo: str, label: str = "agent") -> dict:
    return {
        "action": "labeled",
        "label": {"name": label},
        "issue": {"number": 42, "title": "Fix the greeting", "body": "It should say hello.", "html_url": f"https://github.com/{repo}/issues/42"},
        "repository": {"full_name": repo, "clone_url": f"https://github.com/{repo}.git", "default_branch": "main"},
        "sender": {"login": "octocat"},
    }


def post_github(client, payload, event="issues", delivery=None, signature=None, secret=SECRET):
    body = json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()), "Content-Type": "application/json"}
    headers["X-Hub-Signature-256"] = signature if signature is not None else signed(body, secret)
    return client.post("/webhooks/github", content=body, headers=headers)


def events_for(prefect_server: str, resource_id: str, wait: float = 0.0) -> list[dict]:
    deadline = time.monotonic() + wait
    while True:
        found = httpx.post(f"{prefect_server}/events/filter", json={"filter": {"resource": {"id": [resource_id]}}}).json()["events"]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def test_signed_delivery_becomes_one_event_and_redelivery_is_ignored(client, prefect_server):
    repo = f"acme/relay-{uuid.uuid4().hex[:6]}"
    delivery = str(uuid.uuid4())
    first = post_github(client, issue_delivery(repo), delivery=delivery)
    again = post_github(client, issue_delivery(repo), delivery=delivery)
    assert first.status_code == 202 and uuid.UUID(first.json()["event_id"])
    assert again.status_code == 200 and again.json() == {"duplicate": True, "delivery": delivery}
    events = events_for(prefect_server, f"github.repo.{repo}", wait=10)
    assert len(events) == 1
    event = events[0]
    assert event["id"] == first.json()["event_id"] and event["event"] == "github.issue.labeled"
    assert event["resource"]["github.label"] == "agent" and event["resource"]["github.repo"] == repo
    assert event["payload"]["title"] == "Fix the greeting" and event["payload"]["number"] == 42
    assert event["payload"]["clone_url"] == f"https://github.com/{repo}.git" and event["payload"]["sender"] == "octocat"


@pytest.mark.parametrize("case", ["unsigned", "forged", "wrong-secret"])
def test_unsigned_or_forged_deliveries_are_refused_and_emit_nothing(client, prefect_server, case):
    repo = f"acme/forged-{uuid.uuid4().hex[:6]}"
    signature = {"unsigned": "", "forged": "sha256=" + "0" * 64, "wrong-secret": None}[case]
    response = post_github(client, issue_delivery(repo), signature=signature, secret="not-the-secret")
    assert response.status_code == 401 and "X-Hub-Signature-256" in response.json()["error"]
    time.sleep(1)
    assert events_for(prefect_server, f"github.repo.{repo}") == []


def test_without_a_secret_every_delivery_is_refused(client, monkeypatch):
    monkeypatch.delenv("AGENT_TASKS_WEBHOOK_SECRET")
    response = post_github(client, issue_delivery("acme/x"))
    assert response.status_code == 401 and "no webhook secret configured" in response.json()["error"]


def test_oversized_and_malformed_requests(client):
    big = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
    too_big = client.post("/webhooks/github", content=big, headers={
        "X-GitHub-Event": "issues", "X-GitHub-Delivery": "d1", "X-Hub-Signature-256": signed(big)})
    assert too_big.status_code == 413
    bad_json = b"{not json"
    malformed = client.post("/webhooks/github", content=bad_json, headers={
        "X-GitHub-Event": "issues", "X-GitHub-Delivery": "d2", "X-Hub-Signature-256": signed(bad_json)})
    assert malformed.status_code == 400 and malformed.json()["error"] == "body is not valid JSON"
    body = b"{}"
    no_event = client.post("/webhooks/github", content=body, headers={"X-Hub-Signature-256": signed(body)})
    assert no_event.status_code == 400
    assert client.get("/healthz").json() == {"ok": True, "github_secret": True}


def test_ping_is_answered_without_an_event(client):
    response = post_github(client, {"zen": "Keep it simple."}, event="ping")
    assert response.status_code == 200 and response.json()["pong"] is True


def test_named_webhook_with_bearer_or_hmac(client, prefect_server):
    body = json.dumps({"service": "api", "status": "down"}).encode()
    bearer = client.post("/webhooks/deploy-failed", content=body, headers={"Authorization": "Bearer hook-secret-123"})
    assert bearer.status_code == 202
    hmac_ok = client.post("/webhooks/deploy-failed", content=body, headers={"X-Signature-256": signed(body, "hook-secret-123")})
    assert hmac_ok.status_code == 202
    wrong = client.post("/webhooks/deploy-failed", content=body, headers={"Authorization": "Bearer nope"})
    unknown = client.post("/webhooks/other-hook", content=body, headers={"Authorization": "Bearer hook-secret-123"})
    assert wrong.status_code == 401 and unknown.status_code == 401
    events = events_for(prefect_server, "webhook.deploy-failed", wait=10)
    ids = {bearer.json()["event_id"], hmac_ok.json()["event_id"]}
    deadline = time.monotonic() + 10
    while {e["id"] for e in events} != ids and time.monotonic() < deadline:
        time.sleep(0.2)
        events = events_for(prefect_server, "webhook.deploy-failed")
    assert {e["id"] for e in events} == ids
    assert events[0]["event"] == "webhook.deploy-failed" and json.loads(events[0]["payload"]["body_text"]) == {"service": "api", "status": "down"}


def test_failed_emit_answers_502_and_a_redelivery_can_succeed(client, monkeypatch, prefect_server):
    repo = f"acme/down-{uuid.uuid4().hex[:6]}"
    delivery = str(uuid.uuid4())
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    down = post_github(client, issue_delivery(repo), delivery=delivery)
    assert down.status_code == 502 and "could not hand the event to Prefect" in down.json()["error"]
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    assert post_github(client, issue_delivery(repo), delivery=delivery).status_code == 202
