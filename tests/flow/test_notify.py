"""Notifications: `notify:` entries become Prefect automations that POST session events to a webhook.

Real parts: the session-scoped Prefect test server (it runs the trigger and action services, so
automations fire there), the notify automations made by serve's set-up from a workflows file, a
receiver on 127.0.0.1 standing in for the webhook, sessions moved through the real state machine, and
one session driven through the flow with the scripted model.

The tests of the same code that need no Prefect server are in tests/unit/test_notify.py.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deployments.notify import AUTOMATION_PREFIX, BLOCK_PREFIX, Notify, NotifyTarget, sync_notifications
from deployments.workflows import load_workflows
from tasks_lib.domain.session import SessionStatus as S
from tasks_lib.session.lifecycle import move, settle
from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import SECRET
from tests.helpers import Background, decide, new_session, wait_for_review
from tests.polling import wait_until

REVIEW_BASE = "http://review.example.test:8080"
SLACK_PATH = "/services/T000/B000/XoXoSeCrEtToKeN42"  # a Slack webhook address is a secret
SLACK_ENV = "AGENT_TASKS_TEST_SLACK_URL"
GRACE_S = 1.5  # after a later notification arrived, how long an unwanted one is given to show up


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST (path, headers, JSON body, arrival time)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver.lock:
                    receiver.posts.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "raw": body.decode(),
                            "body": json.loads(body),
                            "at": time.time(),
                        }
                    )
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path: str, session_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """The bodies posted to ``path`` (for one session, one status), oldest first."""
        with self.lock:
            found = [p for p in self.posts if p["path"] == path]
        if session_id:
            found = [p for p in found if session_id in p["raw"]]
        if status:
            found = [p for p in found if p["body"].get("status", "") == status or f"*{status}*" in p["raw"]]
        return found

    def wait(self, path: str, session_id: str, status: str | None = None, timeout: float = 20) -> dict[str, Any]:
        """The first body posted to ``path`` about a session (with that status)."""
        return wait_until(
            lambda: (self.at(path, session_id, status) or [None])[0],
            timeout,
            f"a POST to {path} about {session_id[:8]} {status or ''}",
            interval=0.1,
        )


WORKFLOWS = """
notify:
  - url: {base}/all
  - url_env: {slack_env}
    format: slack
    on: [awaiting-review]
workflows:
  - name: fix-issues
    notify:
      - url: {base}/fix
        format: generic
        on: [failed, rejected, crashed]
  - name: other
"""


@pytest.fixture(scope="module")
def receiver() -> Receiver:
    """The webhook receiver for the whole module."""
    server = Receiver()
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def notifications(prefect_server, receiver, tmp_path_factory):
    """serve's notification set-up run on a workflows file with global and per-workflow entries; the file's path."""
    path = tmp_path_factory.mktemp("notify") / "workflows.yaml"
    path.write_text(WORKFLOWS.format(base=receiver.base, slack_env=SLACK_ENV))
    saved = {k: os.environ.get(k) for k in ("AGENT_TASKS_WORKFLOWS", "AGENT_TASKS_REVIEW_URL", SLACK_ENV)}
    os.environ.update(
        AGENT_TASKS_WORKFLOWS=str(path), AGENT_TASKS_REVIEW_URL=REVIEW_BASE, **{SLACK_ENV: receiver.base + SLACK_PATH}
    )
    from deployments.serve import set_up_notifications

    set_up_notifications(load_workflows())
    _wait_for_live_automations(receiver)
    yield path
    sync_notifications([])  # leave no automations behind for other tests
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _wait_for_live_automations(receiver: Receiver) -> None:
    """Emit a probe event until the global automation posts it (the server loads new automations asynchronously)."""
    from prefect.events import emit_event

    def probe() -> bool:
        emit_event(
            event="agent-tasks.session.accepted",
            resource={"prefect.resource.id": "agent-tasks.session.probe"},
            payload={"session_id": "probe", "status": "accepted"},
        )
        return bool(wait_or_none(lambda: receiver.at("/all", "probe"), 2))

    wait_until(probe, 30, "the notify automations to fire")


def wait_or_none(check, timeout: float):
    """check()'s first truthy value within timeout, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    return None


# --- notifications through the Prefect server ------------------------------------------------------


def test_a_session_awaiting_review_and_accepted_posts_generic_and_slack(
    notifications, receiver, repo, scripted, store, prefect_server
):
    """Through the flow: awaiting review posts the generic body and the Slack message; accept posts only the generic one."""
    scripted(
        [calls(tool("write_file", path="checklist.md", content="- launch\n")), calls(tool("finish", summary="done"))],
        summaries=[{"content": f"### What was done\nAdded the launch checklist (token {SECRET}).\n"}],
    )
    run = Background(repo, "Add the launch checklist", reviewer="alice")
    row = wait_for_review(store, "Add the launch checklist", since=run.started)

    posted = receiver.wait("/all", row.id, "awaiting_review")
    body = posted["body"]
    run_url = f"{prefect_server.removesuffix('/api')}/runs/flow-run/{row.flow_run_id}"
    assert body["event"] == "agent-tasks.session.awaiting-review"
    assert body["session_id"] == row.id and body["short_id"] == row.id[:8] and body["reviewer"] == "alice"
    assert body["summary"] == "Added the launch checklist (token ***)."
    assert body["review_url"] == f"{REVIEW_BASE}/sessions/{row.id}" and body["prefect_run_url"] == run_url
    assert body["diffstat"] == "1 file, +1 −0" and body["workflow"] is None and body["iteration"] == 1
    assert posted["headers"]["Content-Type"] == "application/json"
    latency = posted["at"] - datetime.fromisoformat(body["occurred"]).timestamp()
    print(f"awaiting-review event → POST: {latency:.2f} s")

    slack = receiver.wait(SLACK_PATH, row.id)["body"]
    assert slack["text"].startswith(f"*Waiting for review* · session `{row.id[:8]}`")
    assert "Added the launch checklist (token ***)." in slack["text"]
    assert (
        f"<{REVIEW_BASE}/sessions/{row.id}|Review page>" in slack["text"]
        and f"<{run_url}|Prefect run>" in slack["text"]
    )
    assert slack["blocks"][0]["text"] == {"type": "mrkdwn", "text": slack["text"]}
    assert slack["blocks"][1]["elements"][0]["text"].endswith("reviewer alice")

    decide(row, "accept")
    assert run.join().status is S.accepted
    accepted = receiver.wait("/all", row.id, "accepted")["body"]
    assert accepted["event"] == "agent-tasks.session.accepted" and accepted["reason"].startswith("accepted: ")
    time.sleep(GRACE_S)
    assert len(receiver.at(SLACK_PATH, row.id)) == 1, "the Slack entry is only on awaiting_review"
    assert not receiver.at("/fix", row.id), "a workflow's entry fires only for its own sessions"
    assert all(SECRET not in p["raw"] for p in receiver.posts)


def test_failed_sessions_notify_everyone_and_their_own_workflow_only(notifications, receiver, store):
    """A failed session of fix-issues posts to the global and fix-issues hooks; one of another workflow only globally."""
    ours = new_session(store, "fix-issues", "## Summary\n\n### What was done\nTried to fix the parser.\n")
    theirs = new_session(store, "other")
    move(store, ours, S.failed, f"model_error: the model refused (key {SECRET})")
    move(store, theirs, S.failed, "model_error: out of budget")

    posted = receiver.wait("/fix", ours, "failed")
    body = posted["body"]
    print(f"failed event → POST: {posted['at'] - datetime.fromisoformat(body['occurred']).timestamp():.2f} s")
    assert body["event"] == "agent-tasks.session.failed" and body["workflow"] == "fix-issues"
    assert (
        body["summary"] == "Tried to fix the parser." and body["reason"] == "model_error: the model refused (key ***)"
    )
    assert body["repository"] == "https://git.example.com/acme/app.git", "no credentials in events"
    assert body["review_url"] == f"{REVIEW_BASE}/sessions/{ours}" and body["prefect_run_url"] is None
    assert receiver.wait("/all", ours, "failed")["body"] == body
    assert receiver.wait("/all", theirs, "failed")["body"]["summary"] == "Fix the parser", (
        "no summary: the instructions"
    )
    time.sleep(GRACE_S)
    assert not receiver.at("/fix", theirs)
    assert all("hunter2pass" not in p["raw"] for p in receiver.posts)


def test_events_not_in_on_do_not_notify(notifications, receiver, store):
    """rejected and crashed reach only the entry listing them; expired reaches nobody; settle() emits too."""
    rejected, expired, crashed, later = (new_session(store, w) for w in ("fix-issues", None, "fix-issues", None))
    for sid in (rejected, expired):
        move(store, sid, S.awaiting_review, "waiting for a reviewer")
    move(store, rejected, S.rejected, "rejected by alice")
    assert settle(store, expired, S.expired, "no review decision before the deadline", by="reconcile")
    assert settle(store, crashed, S.crashed, "its process was stopped", by="prefect-hook")
    for status in (S.awaiting_review, S.delivering, S.accepted):
        move(store, later, status, f"{status.value}: abc")

    assert receiver.wait("/fix", rejected, "rejected")["body"]["event"] == "agent-tasks.session.rejected"
    assert receiver.wait("/fix", crashed, "crashed")["body"]["reason"] == "its process was stopped"
    receiver.wait("/all", later, "accepted")  # everything emitted before it has been through the triggers
    time.sleep(GRACE_S)
    assert not receiver.at("/all", rejected) and not receiver.at("/all", crashed) and not receiver.at("/all", expired)
    assert not any(receiver.at(path, expired) for path in ("/fix", SLACK_PATH))
    assert not receiver.at("/all", later, "awaiting_review"), (
        "a transition does not emit awaiting-review (the flow does)"
    )


def test_sync_is_idempotent_keeps_addresses_secret_and_removes_what_the_file_dropped(notifications, receiver):
    """Re-running serve's set-up updates in place; automations and their names hide the address; dropped entries go."""
    from prefect.client.orchestration import get_client

    from deployments.serve import set_up_notifications

    def ours() -> tuple[dict[str, Any], list[str]]:
        with get_client(sync_client=True) as client:
            automations = {a.name: a for a in client.read_automations() if a.name.startswith(AUTOMATION_PREFIX)}
            blocks = [
                b.name
                for b in client.read_block_documents_by_type("webhook", include_secrets=False)
                if b.name.startswith(BLOCK_PREFIX)
            ]
        return automations, sorted(blocks)

    before, blocks = ours()
    assert len(before) == 3 and len(blocks) == 3
    assert {
        "agent-tasks notify: all → generic",
        "agent-tasks notify: all → slack",
        "agent-tasks notify: fix-issues → generic",
    } == {n.split(" #")[0] for n in before}
    set_up_notifications(load_workflows())
    after, blocks_after = ours()
    assert {n: a.id for n, a in after.items()} == {n: a.id for n, a in before.items()} and blocks_after == blocks
    dumped = json.dumps([a.model_dump(mode="json") for a in after.values()])
    assert "XoXoSeCrEtToKeN42" not in dumped and receiver.base not in dumped

    # The Slack variable unset: its entry is skipped and its automation kept as it was.
    slack = NotifyTarget(notify=Notify(url_env=SLACK_ENV, format="slack", on=["awaiting_review"]))
    generic = NotifyTarget(notify=Notify(url=f"{receiver.base}/all"))
    report = sync_notifications([generic, slack], env={})
    assert report.skipped == [slack.automation_name] and report.updated == [generic.automation_name]
    assert report.deleted == [n for n in before if n.startswith(f"{AUTOMATION_PREFIX}fix-issues")]
    remaining, blocks = ours()
    assert set(remaining) == {generic.automation_name, slack.automation_name} and len(blocks) == 2


def test_the_cli_sets_notifications_up_for_deployed_workflows(notifications, prefect_server):
    """`agent-tasks workflows notify`: what serve does at start, for `prefect deploy` set-ups; idempotent."""
    import subprocess
    import sys

    env = {**os.environ, "PREFECT_API_URL": prefect_server, "AGENT_TASKS_WORKFLOWS": str(notifications)}
    env.pop("SLACK_HOOK_FOR_TESTS", None)
    env.pop(SLACK_ENV, None)
    first = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "workflows", "notify"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("notifications: ") and "1 skipped" in first.stdout
    assert "skipped (its url_env is not set): agent-tasks notify: all → slack" in first.stdout
    assert "0 deleted" in first.stdout and SLACK_PATH not in first.stdout + first.stderr
