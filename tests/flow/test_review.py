"""The review gate: pause with a typed form, then accept, request changes, retry or reject.

Where an accept delivers the change (a remote, a merge, a pull request) is tested in test_review_delivery.py. The
tests of the same code that need no Prefect server are in tests/unit/test_review.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.helpers import Background, decide, wait_for_review

FINISH = calls(tool("finish", summary="done"))


def flow_run_state(row):
    async def read():
        async with get_client() as client:
            return (await client.read_flow_run(UUID(row.flow_run_id))).state

    return asyncio.run(read())


def test_accept_commits_and_creates_the_branch_in_the_local_source(repo, scripted, store, prefect_server):
    scripted([calls(tool("write_file", path="feature.txt", content="feature\n")), FINISH])
    before_main = git(repo, "rev-parse", "main")
    run = Background(repo, "Add the feature file", reviewer="alice")
    row = wait_for_review(store, "Add the feature file", since=run.started)

    # What the Prefect UI renders the form from, read back through the API.
    schema_response = httpx.get(f"{prefect_server}/flow_runs/{row.flow_run_id}/input/paused-{row.review_key}-schema")
    description = httpx.get(f"{prefect_server}/flow_runs/{row.flow_run_id}/input/paused-{row.review_key}-description")
    schema = json.loads(schema_response.json()) if isinstance(schema_response.json(), str) else schema_response.json()
    assert schema["properties"]["decision"]["enum"] == ["accept", "request_changes", "reject", "retry"]
    assert schema["required"] == ["decision"] and schema["then"]["required"] == ["instructions"]
    text = description.json()
    assert "feature.txt" in text and "alice" in text and "What was done" in text and "--diff" in text
    # the change itself, where the reviewer decides
    assert "```diff\ndiff --git a/feature.txt b/feature.txt" in text and "\n+feature\n```" in text
    assert "more lines" not in text
    state = flow_run_state(row)
    assert state.type == StateType.PAUSED and state.state_details.run_input_keyset

    # The awaiting-review event, with the session as resource and the reviewer as a related resource.
    event = None
    for _ in range(50):
        found = httpx.post(
            f"{prefect_server}/events/filter",
            json={"filter": {"event": {"name": ["agent-tasks.session.awaiting-review"]}}},
        ).json()
        event = next(
            (e for e in found["events"] if e["resource"]["prefect.resource.id"] == f"agent-tasks.session.{row.id}"),
            None,
        )
        if event:
            break
        time.sleep(0.2)
    assert event is not None, "no awaiting-review event"
    assert {"prefect.resource.id": "agent-tasks.reviewer.alice", "prefect.resource.role": "reviewer"} in event[
        "related"
    ]
    assert event["payload"]["reviewer"] == "alice"

    decide(row, "accept")
    result = run.join()

    done = store.get_session(result.session_id)
    assert done.status == "accepted" and done.delivered_to.startswith(
        f"branch {done.work_branch} in the source repository"
    )
    assert git(repo, "rev-parse", "main") == before_main, "the base branch must not move"
    assert git(repo, "status", "--porcelain") == "" and not (repo / "feature.txt").exists()
    assert git(repo, "rev-parse", done.work_branch) == done.delivered_commit
    message = git(repo, "log", "-1", "--format=%B", done.work_branch)
    assert message.startswith("Add the feature file\n\n## Summary")
    assert f"Agent-Session: {done.id}" in message and "Reviewed-by: alice" in message
    assert git(repo, "show", f"{done.work_branch}:feature.txt") == "feature"
    assert git(repo, "rev-parse", f"{done.work_branch}~1") == before_main
    assert [r.decision for r in store.reviews(done.id)] == ["accept"]

    # Accepting twice does nothing the second time.
    second = subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", "review", done.id[:8], "accept"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PREFECT_API_URL": prefect_server},
    )
    assert second.returncode == 1 and f"is accepted (branch {done.work_branch}" in second.stderr
    assert git(repo, "rev-parse", done.work_branch) == done.delivered_commit


def test_two_rounds_of_changes_then_accept(repo, scripted, store):
    server = scripted(
        [
            calls(tool("write_file", path="a.txt", content="one\n")),
            FINISH,
            calls(tool("edit_file", path="a.txt", old="one", new="two")),
            FINISH,
            calls(tool("write_file", path="b.txt", content="bee\n")),
            FINISH,
        ]
    )
    run = Background(repo, "Write a", reviewer="bob")
    first = wait_for_review(store, "Write a", since=run.started)
    decide(first, "request_changes", feedback="Say two, not one.")
    second = wait_for_review(store, "Write a", after_key=first.review_key, since=run.started)
    assert second.iteration == 2
    decide(second, "request_changes", feedback="Also add b.txt.")
    third = wait_for_review(store, "Write a", after_key=second.review_key, since=run.started)
    decide(third, "accept")
    result = run.join()

    row = store.get_session(result.session_id)
    assert row.status == "accepted" and row.iteration == 3 and row.change_rounds == 2
    # The agent continued its own conversation, with the feedback as a new message.
    third_round_request = server.agent_requests()[4]["messages"]
    contents = [m.get("content") or "" for m in third_round_request]
    assert any("Say two, not one." in c for c in contents) and any("Also add b.txt." in c for c in contents)
    assert third_round_request[0]["role"] == "system" and sum(m["role"] == "system" for m in third_round_request) == 1
    diffs = store.diffs(row.id)
    assert [(d.iteration, d.scope) for d in diffs] == [
        (1, "cumulative"),
        (2, "cumulative"),
        (2, "increment"),
        (3, "cumulative"),
        (3, "increment"),
    ]
    assert [f["path"] for f in diffs[2].files] == ["a.txt"] and diffs[2].added == 1 and diffs[2].removed == 1
    assert [f["path"] for f in diffs[4].files] == ["b.txt"]
    assert sorted(f["path"] for f in diffs[3].files) == ["a.txt", "b.txt"]
    assert len(store.summaries(row.id)) == 3
    assert len({s.iteration for s in store.steps(row.id)}) == 3
    assert [r.decision for r in store.reviews(row.id)] == ["request_changes", "request_changes", "accept"]
    assert (
        git(repo, "show", f"{row.work_branch}:a.txt") == "two"
        and git(repo, "show", f"{row.work_branch}:b.txt") == "bee"
    )


def test_retry_starts_again_from_the_base_then_reject_discards_everything(repo, scripted, store):
    server = scripted(
        [
            calls(tool("write_file", path="wrong.txt", content="oops\n"), tool("run_command", command="rm README.md")),
            FINISH,
            calls(tool("write_file", path="right.txt", content="yes\n")),
            FINISH,
        ]
    )
    run = Background(repo, "Do it")
    first = wait_for_review(store, "Do it", since=run.started)
    decide(first, "retry", feedback="Never delete the README.", instructions="Create right.txt only")
    second = wait_for_review(store, "Do it", after_key=first.review_key, since=run.started)
    workspace = Path(second.workspace)
    assert not (workspace / "wrong.txt").exists() and (workspace / "README.md").exists()
    assert [f["path"] for f in store.latest_diff(second.id).files] == ["right.txt"]
    retry_request = server.agent_requests()[2]["messages"]
    assert (
        "Create right.txt only" in retry_request[1]["content"]
        and "Never delete the README." in retry_request[1]["content"]
    )
    assert len(retry_request) == 2, "a retry starts a fresh conversation"
    assert second.instructions.startswith("Create right.txt only")

    decide(second, "reject", feedback="Not needed after all.")
    result = run.join()
    row = store.get_session(result.session_id)
    assert row.status == "rejected" and row.status_reason == "rejected by the reviewer: Not needed after all."
    assert not workspace.exists()
    mirror = Path(store.get_session(row.id).workspace).parent.parent / "mirrors"
    assert all(row.work_branch not in git(m, "branch", "--list") for m in mirror.glob("*.git"))
    assert row.work_branch not in git(repo, "branch", "--list")
    assert len(store.diffs(row.id)) == 3  # the history stays readable


def test_invalid_review_input_leaves_the_run_paused(repo, scripted, store, prefect_server):
    scripted([calls(tool("write_file", path="x.txt", content="x\n")), FINISH])
    run = Background(repo, "Make x")
    row = wait_for_review(store, "Make x", since=run.started)

    with pytest.raises(RuntimeError, match="not one of"):
        decide(row, "bogus")
    with pytest.raises(RuntimeError, match="Cannot resume"):
        decide(row, "retry", instructions="")
    import os

    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    cli = [sys.executable, "-m", "tasks_lib.cli", "review", row.id[:8]]
    no_instructions = subprocess.run([*cli, "retry"], capture_output=True, text=True, env=env)
    unknown = subprocess.run([*cli, "merge-it"], capture_output=True, text=True, env=env)
    assert (
        no_instructions.returncode == 1 and no_instructions.stderr.strip() == "error: retry needs updated instructions"
    )
    assert unknown.returncode == 1 and "unknown decision 'merge-it'" in unknown.stderr
    time.sleep(1.5)  # longer than the poll interval: the run must still be waiting
    assert flow_run_state(row).type == StateType.PAUSED
    assert store.get_session(row.id).status == "awaiting_review"

    accepted = subprocess.run([*cli, "accept"], capture_output=True, text=True, env=env, timeout=120)
    assert accepted.returncode == 0, accepted.stderr
    assert "accepted" in accepted.stdout
    assert run.join().status.value == "accepted"


def test_review_timeout_expires_the_session_and_keeps_its_work(repo, scripted, store, monkeypatch):
    monkeypatch.setenv("AGENT_TASKS_REVIEW_TIMEOUT", "2")
    scripted([calls(tool("write_file", path="late.txt", content="late\n")), FINISH])
    result = Background(repo, "Nobody looks").join(timeout=60)
    row = store.get_session(result.session_id)
    assert row.status == "expired" and "diff and work branch kept" in row.status_reason
    assert row.files_changed == 1 and Path(row.workspace, "late.txt").exists()
    assert git(Path(row.workspace), "rev-parse", "--abbrev-ref", "HEAD") == row.work_branch


def test_the_review_form_shows_the_diff_capped_with_where_the_rest_is(repo, scripted, store, prefect_server):
    long = "".join(f"line {i}\n" for i in range(400))
    scripted([calls(tool("write_file", path="long.txt", content=long)), FINISH])
    run = Background(repo, "Write a long file")
    row = wait_for_review(store, "Write a long file", since=run.started)
    text = httpx.get(f"{prefect_server}/flow_runs/{row.flow_run_id}/input/paused-{row.review_key}-description").json()
    block = text.split("```diff\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert len(block) == 300 and block[0] == "diff --git a/long.txt b/long.txt" and "+line 290" in block
    total = len(store.latest_diff(row.id).patch.decode().splitlines())
    assert (
        f"{total - 300} more lines: see the review page, the *agent-diff* artifact of this run, or `agent-tasks show {row.id[:8]} --diff`"
        in text
    )
    decide(row, "reject")
    assert run.join().status.value == "rejected"


def test_line_comments_from_the_cli_reach_the_agent_with_file_line_and_code(repo, scripted, store, prefect_server):
    import os

    server = scripted(
        [
            calls(
                tool(
                    "write_file",
                    path="calc.py",
                    content="def add(a, b):\n    return a - b\n\n\ndef one():\n    return 1\n",
                )
            ),
            FINISH,
            calls(tool("edit_file", path="calc.py", old="a - b", new="a + b")),
            FINISH,
        ]
    )
    run = Background(repo, "Write calc")
    row = wait_for_review(store, "Write calc", since=run.started)
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    cli = [sys.executable, "-m", "tasks_lib.cli", "review", row.id[:8], "request-changes", "--no-wait"]

    not_in_change = subprocess.run([*cli, "--comment", "calx.py:2=use +"], capture_output=True, text=True, env=env)
    assert not_in_change.returncode == 1
    assert "calx.py:2: calx.py is not part of this change (did you mean calc.py?)" in not_in_change.stderr
    malformed = subprocess.run([*cli, "--comment", "calc.py=use +"], capture_output=True, text=True, env=env)
    assert malformed.returncode == 1 and "write it as FILE:LINE=TEXT" in malformed.stderr
    past_the_end = subprocess.run([*cli, "-c", "calc.py:40=and here?"], capture_output=True, text=True, env=env)
    assert (
        past_the_end.returncode == 1 and "line 40 is not in calc.py's diff (it shows lines 1–6)" in past_the_end.stderr
    )
    assert flow_run_state(row).type == StateType.PAUSED, "a refused comment must leave the run waiting"

    sent = subprocess.run(
        [*cli, "-f", "Fix the operator.", "--comment", "calc.py:2=use +", "-c", "calc.py:6=and here?"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert sent.returncode == 0, sent.stderr
    second = wait_for_review(store, "Write calc", after_key=row.review_key, since=run.started)
    decide(second, "accept")
    run.join()

    message = server.agent_requests()[2]["messages"][-1]["content"]
    assert "Fix the operator." in message and "The reviewer commented on 2 lines:" in message
    assert "calc.py:2: use +\n```\n  1 | def add(a, b):\n> 2 |     return a - b\n  3 | \n  4 | \n```" in message
    assert "calc.py:6: and here?\n```\n" in message
    first_review = store.reviews(row.id)[0]
    assert first_review.decision == "request_changes"
    assert first_review.comments == [
        {"path": "calc.py", "line": 2, "body": "use +"},
        {"path": "calc.py", "line": 6, "body": "and here?"},
    ]
    assert git(repo, "show", f"{second.work_branch}:calc.py").splitlines()[1] == "    return a + b"
