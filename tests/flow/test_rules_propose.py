"""What reviewers teach stays: a reviewer's feedback on a real session is kept, `agent-tasks rules propose` turns it
into a session of its own that drafts AGENTS.md and waits for review like any other (nothing lands before an
accept), and the review page's button starts the same proposal as a run of the served on-demand workflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import pytest
from prefect import resume_flow_run
from prefect.client.orchestration import get_client
from starlette.testclient import TestClient

from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.flow.test_cli import CLI, assert_one_line_error, cli
from tests.helpers import MODEL, Background, decide, wait_for_review, wait_paused
from tests.polling import wait_until

FINISH = calls(tool("finish", summary="done"))
TASK = "Write calc"
CHANGES = "Always add type hints to new functions."
REJECTION = "Never leave a function without a docstring."
RULES = "# Conventions\n\n## From code review\n\n- Always add type hints to new functions.\n"
PROPOSE = calls(tool("write_file", path="AGENTS.md", content=RULES))


def reviewed_session(repo: Path, store) -> str:
    """A real session on ``repo`` that a reviewer asked to change (feedback and a line comment), then rejected
    with feedback; its id."""
    run = Background(repo, TASK)
    first = wait_for_review(store, TASK, since=run.started)
    comment = {"path": "calc.py", "line": 2, "body": "use + here"}
    resume_flow_run(
        UUID(first.flow_run_id),
        run_input={"decision": "request_changes", "feedback": CHANGES, "instructions": "", "comments": [comment]},
    )
    second = wait_for_review(store, TASK, after_key=first.review_key, since=run.started)
    decide(second, "reject", feedback=REJECTION)
    assert run.join().status.value == "rejected"
    return first.id


def script(*proposals) -> list:
    """The model's replies: the reviewed session's two iterations, then each proposal session's."""
    return [
        calls(tool("write_file", path="calc.py", content="def add(a, b):\n    return a - b\n")),
        FINISH,
        calls(tool("edit_file", path="calc.py", old="a - b", new="a + b")),
        FINISH,
        *[reply for proposal in proposals for reply in proposal],
    ]


def test_feedback_becomes_a_proposal_session_that_waits_for_review(repo, scripted, store, prefect_server):
    server = scripted(script([PROPOSE, FINISH], [PROPOSE, FINISH]))
    env = {"PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": server.api_base}
    taught = reviewed_session(repo, store)
    main_before = git(repo, "rev-parse", "main")

    listed = cli("rules", "list", "--repo", str(repo), "--json")
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)
    assert [(i["decision"], i["feedback"], i["session_id"]) for i in items] == [
        ("reject", REJECTION, taught),
        ("request_changes", CHANGES, taught),
    ], "newest first"
    assert items[1]["comments"] == [{"path": "calc.py", "line": 2, "body": "use + here"}]
    assert items[0]["agent"] == "default" and items[0]["repository"] == str(repo)
    shown = cli("rules", "list", "--repo", str(repo)).stdout
    assert f"{repo}  agent default: 2 items from 1 session" in shown and "calc.py:2: use + here" in shown

    # Waiting, as `run` waits: the proposal is a session of its own at the review gate; rejecting it lands nothing.
    waiting = subprocess.Popen(
        [*CLI, "rules", "propose", "--repo", str(repo), "--model", MODEL],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        proposal = wait_until(lambda: proposal_of(store, repo), 120, "the proposal session")
        proposal = wait_until(lambda: awaiting(store, proposal.id), 120, "the proposal waiting for review")
        assert_proposes(proposal, taught)
        assert not (repo / "AGENTS.md").exists() and git(repo, "rev-parse", "main") == main_before
        assert [f["path"] for f in store.latest_diff(proposal.id).files] == ["AGENTS.md"]
        decided = cli("review", proposal.id[:8], "reject", env=env)
        assert decided.returncode == 0, decided.stderr
        stdout, stderr = waiting.communicate(timeout=120)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, stderr
    assert f"proposing conventions for {repo} from 2 feedback items of 1 session ({taught[:8]})" in stderr
    assert "waiting for review (iteration 1)" in stderr and f"session {proposal.id} rejected" in stdout
    assert git(repo, "branch", "--list", "agent/*propose*") == "" and not (repo / "AGENTS.md").exists()

    # In the background (--no-wait), then accepted: AGENTS.md arrives on the work branch, the base stays as it was.
    started = cli("rules", "propose", "--repo", str(repo), "--model", MODEL, "--no-wait", env=env)
    assert started.returncode == 0, started.stderr
    first_line = started.stdout.splitlines()[0]
    assert first_line.startswith("session ") and "runs in the background" in first_line, started.stdout
    second_id = first_line.split()[1]
    second = wait_until(lambda: awaiting(store, second_id), 120, "the background proposal waiting for review")
    assert_proposes(second, taught)
    assert "AGENTS.md" not in git(repo, "ls-tree", "--name-only", "main")
    accepted = cli("review", second.id[:8], "accept", env=env)
    assert accepted.returncode == 0, accepted.stderr
    done = store.get_session(second.id)
    assert done.status == "accepted", done.status_reason
    assert git(repo, "show", f"{done.work_branch}:AGENTS.md") == RULES.strip()
    assert git(repo, "rev-parse", "main") == main_before and git(repo, "status", "--porcelain") == ""


def proposal_of(store, repo: Path):
    """The newest proposal session on ``repo`` (by its instructions), if there is one."""
    for row in store.list_sessions(limit=50, repository=str(repo)):
        if row.instructions.startswith("Propose conventions from reviewer feedback"):
            return row
    return None


def awaiting(store, session_id: str):
    row = store.get_session(session_id)
    if row.status in ("failed", "crashed", "stopped"):
        raise AssertionError(f"the proposal ended {row.status}: {row.status_reason}")
    return row if row.status == "awaiting_review" else None


def assert_proposes(row, taught: str) -> None:
    """The proposal session asks for AGENTS.md from the feedback, quoting it with the session it came from."""
    assert row.agent == "default" and row.request.get("review", True) is True
    text = row.instructions
    assert text.startswith("Propose conventions from reviewer feedback: update AGENTS.md")
    assert "(there is none yet: create it" in text
    assert f"### 1. session {taught[:8]} (agent default, iteration 2): reject by a reviewer" in text
    assert f"> {REJECTION}" in text and f"> {CHANGES}" in text and "> calc.py:2: use + here" in text
    assert f"### 2. session {taught[:8]} (agent default, iteration 1): request changes" in text


def test_no_feedback_for_the_repository_starts_nothing(repo, store):
    before = len(store.list_sessions(limit=1000))
    proc = cli("rules", "propose", "--repo", str(repo), "--model", MODEL)
    assert_one_line_error(proc, f"no reviewer feedback kept for {repo} yet", "agent-tasks rules list")
    assert proc.returncode == 1
    assert len(store.list_sessions(limit=1000)) == before, "no session started"
    listed = cli("rules", "list", "--repo", str(repo))
    assert listed.returncode == 0 and listed.stdout.startswith(f"no reviewer feedback kept for {repo} yet")


@pytest.fixture
def served_on_demand(prefect_server, tmp_path):
    """The on-demand workflow `agent-tasks up` serves (agent-task/agent-task), in its own process."""
    procs = []

    def start(env: dict[str, str]) -> None:
        code = (
            "from flows.agent_task import agent_task; agent_task.serve(name='agent-task', print_starting_message=False)"
        )
        log = open(tmp_path / "serve.log", "w")
        extra = {"AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS": "1", "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **extra, **env, "PREFECT_API_URL": prefect_server},
            )
        )
        with get_client(sync_client=True) as client:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    client.read_deployment_by_name("agent-task/agent-task")
                    return
                except Exception:
                    time.sleep(0.5)
        raise AssertionError("not served: " + (tmp_path / "serve.log").read_text()[-2000:])

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_review_page_button_starts_the_proposal_as_a_served_run(repo, scripted, store, served_on_demand, tmp_path):
    from tasks_lib.config import load_settings
    from tasks_lib.web import create_app

    server = scripted(script([PROPOSE, FINISH]))
    taught = reviewed_session(repo, store)
    served_on_demand({"OPENAI_API_BASE": server.api_base, "AGENT_TASKS_MODEL": MODEL})
    app = create_app(store, "127.0.0.1", 8766, settings=load_settings())
    with TestClient(app, base_url="http://127.0.0.1:8766", follow_redirects=False) as web:
        page = web.get(f"/sessions/{taught}").text
        assert 'id="propose-rules"' in page and "2 feedback items from 1 session kept" in page
        sent = web.post(f"/sessions/{taught}/propose-rules", data={"csrf": app.state.guard.token(taught)})
        assert sent.status_code == 303, sent.text
        proposal_id = sent.headers["location"].split("/sessions/", 1)[1].split("?", 1)[0]
        landing = web.get(sent.headers["location"]).text
        assert f"Started from the page of session {taught[:8]}: this session proposes" in landing
    row = store.get_session(proposal_id)
    assert row.workflow == "agent-task" and row.flow_run_id, "recorded before the run could start"
    row = wait_until(lambda: awaiting(store, proposal_id), 180, "the served proposal waiting for review")
    assert_proposes(row, taught)
    assert [s.id for s in store.list_sessions(limit=20) if s.flow_run_id == row.flow_run_id] == [row.id], (
        "the run took up the session the page recorded, and made no other"
    )
    assert "AGENTS.md" not in git(repo, "ls-tree", "--name-only", "main") and not (repo / "AGENTS.md").exists()
    decide(wait_paused(row, time.monotonic() + 60), "reject")
    wait_until(lambda: store.get_session(proposal_id).status == "rejected", 120, "the proposal rejected")
    assert not (repo / "AGENTS.md").exists()
