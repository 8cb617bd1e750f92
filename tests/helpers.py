"""Helpers shared by the tests (tests/unit and tests/flow).

Light to import: the flow (and with it Prefect) is imported only by the helpers that run it, so unit tests
can use the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tasks_lib.domain.request import TaskRequest
from tasks_lib.domain.session import SessionResult, SessionStatus
from tasks_lib.session.lifecycle import move

if TYPE_CHECKING:
    from flows.agent_task import SessionFailed

MODEL = "openai/scripted-model"
CLAUDE_READER = """---
name: code-reader
description: Reads and explains, never changes anything
tools: Read, Grep
model: sonnet
color: blue
permissionMode: plan
---
Read the code and explain it.
"""


def run_task(repo: Path | str, instructions: str = "Do the task", **fields) -> SessionResult:
    """Run the real flow on a repository with the scripted model."""
    from flows.agent_task import agent_task

    fields.setdefault("model", MODEL)
    fields.setdefault("review", False)
    return agent_task(TaskRequest(repository=str(repo), instructions=instructions, **fields))


def run_failing(repo: Path | str, instructions: str = "Do the task", **fields) -> SessionFailed:
    """Run the flow expecting the session to fail; return the SessionFailed it raised."""
    from flows.agent_task import SessionFailed

    try:
        run_task(repo, instructions, **fields)
    except SessionFailed as exc:
        return exc
    raise AssertionError("the session did not fail")


def commit_file(repo: Path, rel: str, text: str) -> None:
    """Write a file into a repository and commit it."""
    from tests.conftest import git

    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(repo, "add", rel)
    git(repo, "commit", "-qm", f"add {rel}")


def write_agent(path: Path, front: str, body: str = "You are a test agent.") -> Path:
    """Write an agent file with the given YAML front matter."""
    path.write_text(f"---\n{front.strip()}\n---\n{body}\n")
    return path


def repo_agent(repo: Path, name: str, settings=None, **kwargs):
    """The agent ``name`` as a run on ``repo`` would find it (the repository as committed, then the user's, built-ins)."""
    from tasks_lib.agent.catalog import find_agent
    from tasks_lib.config import load_settings
    from tasks_lib.session.preflight import repository_reader

    return find_agent(name, repository_reader(str(repo), None, settings or load_settings()), **kwargs)


def new_session(store, workflow: str | None, summary: str | None = None) -> str:
    """A session in the store, running, with a summary."""
    sid = store.create_session(
        {
            "repository": "https://user:hunter2pass@git.example.com/acme/app.git",
            "instructions": "Fix the parser\nmore detail",
            "reviewer": "bob",
        },
        workflow=workflow,
    )
    move(store, sid, SessionStatus.running, "working")
    if summary:
        store.save_summary(sid, summary, {})
    return sid


def fake_session(
    store,
    marker: str,
    status: SessionStatus = SessionStatus.awaiting_review,
    workflow: str | None = None,
    reviewer: str | None = None,
    **request,
) -> str:
    """A session in the store for the review pages to show, moved straight to ``status`` (no flow run)."""
    session_id = store.create_session(
        {"repository": f"/srv/{marker}", "instructions": f"task {marker}", "reviewer": reviewer, **request},
        workflow=workflow,
    )
    if status != SessionStatus.pending:
        store.transition(session_id, SessionStatus.running, "running", [SessionStatus.pending], by="flow")
        if status != SessionStatus.running:
            store.transition(session_id, status, f"now {status.value}", [SessionStatus.running], by="flow")
    return session_id


def patch_with(files: int, text: str) -> bytes:
    """A patch adding ``files`` two-line files f0.py, f1.py, ..., each holding ``text`` and its number."""
    return "".join(
        f"diff --git a/f{n}.py b/f{n}.py\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/f{n}.py\n"
        f"@@ -0,0 +1,2 @@\n+{text}\n+line {n}\n"
        for n in range(files)
    ).encode()


class Background:
    """A flow run in a thread (the harness is already up, so only one server exists)."""

    def __init__(self, repo: Path | str, instructions: str, **fields):
        import threading
        from datetime import datetime, timezone

        self.started = datetime.now(timezone.utc)
        self.result: SessionResult | None = None
        self.error: BaseException | None = None
        fields.setdefault("review", True)
        self.thread = threading.Thread(target=self._run, args=(repo, instructions, fields), daemon=True)
        self.thread.start()

    def _run(self, repo, instructions, fields) -> None:
        try:
            self.result = run_task(repo, instructions, **fields)
        except BaseException as exc:  # handed to the test
            self.error = exc

    def join(self, timeout: float = 120) -> SessionResult:
        """Wait for the flow to end and return its result (re-raising its error)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the flow is still running"
        if self.error is not None:
            raise self.error
        return self.result


def wait_for_review(store, instructions: str, after_key: str | None = None, timeout: float = 120, since=None):
    """The session with these instructions once it waits for review (with a review key other than after_key).

    Only sessions created after ``since`` (default: within the timeout) are considered.
    """
    import time
    from datetime import datetime, timedelta, timezone

    since = since or (datetime.now(timezone.utc) - timedelta(seconds=timeout))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for row in store.list_sessions(limit=20):
            created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=timezone.utc)
            if row.request.get("instructions") == instructions and created >= since:
                if row.status == "awaiting_review" and row.review_key != after_key:
                    return wait_paused(row, deadline)
                if row.status in ("failed", "completed", "stopped"):
                    raise AssertionError(f"session ended as {row.status}: {row.status_reason}")
        time.sleep(0.2)
    raise AssertionError(f"no session with {instructions!r} reached awaiting_review")


def wait_paused(row, deadline: float):
    """The row once Prefect has its run paused (or suspended) under the row's review key, form saved."""
    import time
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(UUID(row.flow_run_id)).state
            if state and state.is_paused() and state.state_details.pause_key == row.review_key:
                keyset = state.state_details.run_input_keyset or {}
                try:
                    client.read_flow_run_input(UUID(row.flow_run_id), keyset["schema"])
                    return row
                except Exception:  # the schema is saved right after the state
                    pass
            time.sleep(0.2)
    raise AssertionError(f"session {row.id} never paused under key {row.review_key}")


def decide(row, decision: str, feedback: str = "", instructions: str = "") -> None:
    """Resume a waiting session through the Prefect API, as the UI's form would."""
    from uuid import UUID

    from prefect import resume_flow_run

    resume_flow_run(
        UUID(row.flow_run_id), run_input={"decision": decision, "feedback": feedback, "instructions": instructions}
    )


def run_logs_and_artifacts(
    flow_run_id: str, until: str | None = None, timeout: float = 15
) -> tuple[list[str], list[str]]:
    """The log messages and artifact texts of a flow run, read back from the Prefect server.

    Logs reach the server in batches: with ``until``, waits for a message containing it.
    """
    import asyncio
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

    async def read():
        async with get_client() as client:
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            return [entry.message for entry in logs], [str(a.data) for a in artifacts]

    deadline = time.monotonic() + timeout
    while True:
        messages, artifacts = asyncio.run(read())
        if until is None or any(until in m for m in messages) or time.monotonic() > deadline:
            return messages, artifacts
        time.sleep(0.3)


def lanes(*scripts: list[dict]):
    """A scripted-server responder for best-of-N: each attempt's conversation follows one script (a lane).

    An attempt's first request takes the next free lane; its replies carry "lane N" as text, which
    stays in its conversation, so its later requests are answered from the same lane. Requests
    without tools (summaries) get the default summary.
    """
    import threading

    from tasks_lib.testing.scripted_server import DEFAULT_SUMMARY

    lock, taken = threading.Lock(), []

    def respond(body: dict) -> dict:
        if not body.get("tools"):
            return {"content": DEFAULT_SUMMARY}
        replies = [m for m in body["messages"] if m["role"] == "assistant"]
        with lock:
            if not replies:
                lane = len(taken)
                taken.append(lane)
            else:
                lane = int((replies[0].get("content") or "lane -1").split()[-1])
        script = scripts[lane]
        reply = dict(script[min(len(replies), len(script) - 1)])
        return {**reply, "content": f"lane {lane}"}

    return respond
