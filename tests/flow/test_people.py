"""People at the review gate, end to end: real CLI processes, real paused sessions, a store of each test's own.

In team mode a decision counts only from a person who may make it, checked where the flow honours it: a
non-reviewer's CLI decision and a decision sent straight through the Prefect API are refused and the session
waits on with nothing delivered; the assigned group's member decides, and the commit and the audit name them.
Single-user mode (no people) decides as before, its decisions recorded as local or through the form.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest
from prefect import resume_flow_run

from tasks_lib.store import Store
from tasks_lib.store.people import refusals
from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.helpers import Background, decide, run_logs_and_artifacts, wait_for_review

ROOT = Path(__file__).resolve().parents[2]
FINISH = calls(tool("finish", summary="done"))


@pytest.fixture
def own_store(tmp_path, monkeypatch) -> Store:
    """A store of this test's own, for the flow (same process) and the CLI (child processes) alike."""
    url = f"sqlite:///{tmp_path / 'own.db'}"
    monkeypatch.setenv("AGENT_TASKS_DB_URL", url)
    monkeypatch.delenv("AGENT_TASKS_TOKEN", raising=False)
    return Store(url)


def cli(*args: str, token: str | None = None, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """`agent-tasks ARGS` in a child process, as the person of ``token`` (if any)."""
    environ = {**os.environ, **env}
    if token:
        environ["AGENT_TASKS_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "tasks_lib.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=stdin,
        env=environ,
        timeout=240,
    )


def add(name: str, *options: str, token: str | None = None) -> str:
    """Add a person with the CLI; their token (the last line of the output)."""
    added = cli("users", "add", name, *options, token=token)
    assert added.returncode == 0, added.stderr
    return added.stdout.strip().splitlines()[-1]


def test_team_mode_only_the_assigned_group_decides_and_the_commit_and_audit_name_who(
    repo, scripted, own_store, prefect_server, tmp_path
):
    store = own_store
    root = add("root")  # the first person: the admin
    bob = add("bob", "--group", "team-a", token=root)
    carol = add("carol", "--role", "reviewer", token=root)
    scripted([calls(tool("write_file", path="team.txt", content="team work\n")), FINISH])
    run = Background(repo, "Team change", reviewer="team-a")
    row = wait_for_review(store, "Team change", since=run.started)
    api = {"PREFECT_API_URL": prefect_server}

    # carol is a reviewer, but not of team-a: refused by the CLI, nothing sent.
    refused = cli("review", row.id[:8], "accept", "--timeout", "60", token=carol, **api)
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: carol may not decide on session {row.id[:8]}: only a member of its reviewer group team-a (bob) "
        "or an admin (root) may"
    )
    nobody = cli("review", row.id[:8], "accept", **api)
    assert nobody.returncode == 1 and "agent-tasks login" in nobody.stderr and "AGENT_TASKS_TOKEN" in nobody.stderr
    still = store.get_session(row.id)
    assert (still.status, still.review_key, store.reviews(row.id)) == ("awaiting_review", row.review_key, [])

    # Straight through the Prefect API: no person, or a made-up grant. The flow refuses and waits again.
    decide(row, "accept")
    second = wait_for_review(store, "Team change", after_key=row.review_key, since=run.started)
    assert second.status_reason.startswith("refused: this store has people")
    resume_flow_run(UUID(second.flow_run_id), run_input={"decision": "accept", "grant": "made-up-by-hand"})
    third = wait_for_review(store, "Team change", after_key=second.review_key, since=run.started)
    assert third.status_reason.startswith("refused:") and store.reviews(row.id) == []
    assert third.delivered_commit is None and git(repo, "branch", "--list", third.work_branch) == ""
    # Each refusal of a known person is one audit row (carol's, by the CLI; a token-less CLI says who it needs
    # first and sends nothing), then nobody known through the Prefect form or API, and why.
    assert [(r.person, r.via, r.action, r.detail) for r in refusals(store, row.id)] == [
        ("carol", "cli", "accept", refused.stderr.strip().removeprefix("error: ")),
        (None, "prefect-form", "accept", "no person: sent through the Prefect form or API with no grant"),
        (
            None,
            "prefect-form",
            "accept",
            "no person: sent through the Prefect form or API with a grant nobody issued for this pause and decision",
        ),
    ]

    # bob signs in (the token kept in his home, mode 0600) and accepts.
    home = tmp_path / "bob-home"
    signed_in = cli("login", stdin=bob + "\n", AGENT_TASKS_HOME=str(home))
    assert signed_in.returncode == 0 and "signed in as bob (reviewer)" in signed_in.stdout, signed_in.stderr
    assert stat.S_IMODE((home / "token").stat().st_mode) == 0o600
    accepted = cli("review", row.id[:8], "accept", "--timeout", "120", AGENT_TASKS_HOME=str(home), **api)
    assert accepted.returncode == 0, accepted.stderr
    assert run.join().status.value == "accepted"

    done = store.get_session(row.id)
    message = git(repo, "log", "-1", "--format=%B", done.work_branch)
    assert "Reviewed-by: bob" in message and "Reviewed-by: team-a" not in message
    [review] = store.reviews(row.id)
    assert (review.decision, review.decided_by, review.auth, review.commit) == (
        "accept",
        "bob",
        "token",
        done.delivered_commit,
    )

    listed = cli("audit", "--json")
    assert listed.returncode == 0, listed.stderr
    events = [e for e in json.loads(listed.stdout) if e["session_id"] == row.id]
    assert [(e["kind"], e["person"], e["auth"], e["commit"], e["refused"], e["via"]) for e in events] == [
        ("started", None, "local", None, False, None),
        ("refused", "carol", "token", None, True, "cli"),
        ("refused", None, "none", None, True, "prefect-form"),
        ("refused", None, "none", None, True, "prefect-form"),
        ("decided", "bob", "token", done.delivered_commit, False, None),
    ]
    text = cli("audit", "--since", "1h").stdout
    assert f"accept  {row.id[:8]}  by bob (token)  commit {done.delivered_commit[:10]}" in text
    assert f"refused accept  {row.id[:8]}  by unknown via the Prefect form or API: no person" in text
    added = [e for e in json.loads(listed.stdout) if e["kind"] == "people"]
    assert [(e["action"], e["subject"], e["person"]) for e in added] == [
        ("add", "root", None),
        ("add", "bob", "root"),
        ("add", "carol", "root"),
    ]

    # The tokens are nowhere but with their people: not in the store, the run's input, logs or artifacts.
    stored = Path(str(store.engine.url.database)).read_bytes()
    logs, artifacts = run_logs_and_artifacts(row.flow_run_id)
    for token in (root, bob, carol):
        secret = token.split("_", 2)[2]
        assert secret.encode() not in stored
        assert not any(secret in line for line in logs + artifacts)


def test_single_user_mode_decides_as_before_and_records_local_and_form_decisions(
    repo, scripted, own_store, prefect_server
):
    store = own_store
    scripted(
        [
            calls(tool("write_file", path="solo.txt", content="one\n")),
            FINISH,
            calls(tool("edit_file", path="solo.txt", old="one", new="two")),
            FINISH,
        ]
    )
    run = Background(repo, "Solo change", reviewer="alice")  # free text: nobody is defined
    row = wait_for_review(store, "Solo change", since=run.started)
    decide(row, "request_changes", feedback="Say two.")
    second = wait_for_review(store, "Solo change", after_key=row.review_key, since=run.started)
    accepted = cli("review", second.id[:8], "accept", "--timeout", "120", PREFECT_API_URL=prefect_server)
    assert accepted.returncode == 0, accepted.stderr
    assert run.join().status.value == "accepted"

    done = store.get_session(row.id)
    assert "Reviewed-by: alice" in git(repo, "log", "-1", "--format=%B", done.work_branch)
    assert [(r.decision, r.decided_by, r.auth, r.commit) for r in store.reviews(row.id)] == [
        ("request_changes", None, "prefect-form", None),
        ("accept", None, "local", done.delivered_commit),
    ]
    text = cli("audit").stdout
    assert f"request_changes  {row.id[:8]}  by nobody (prefect-form)" in text
    assert f"accept  {row.id[:8]}  by local user (local)" in text
    assert cli("users", "list").stdout.startswith("no people: single-user mode")


def test_in_team_mode_run_names_a_known_reviewer_and_credits_who_started_it(repo, scripted, own_store, prefect_server):
    root = add("root")
    ada = add("ada", "--role", "requester", token=root)
    add("bob", "--group", "team-a", token=root)
    api = {"PREFECT_API_URL": prefect_server}
    task = ["run", str(repo), "--task", "Team run", "--model", "openai/scripted-model", "--no-review"]

    typo = cli(*task, "--reviewer", "bobb", token=ada, **api)
    assert typo.returncode == 1 and typo.stderr.strip().splitlines() == [
        "error: reviewer 'bobb' is neither a person nor a group (did you mean bob?)"
    ]
    nobody = cli(*task, "--reviewer", "team-a", **api)
    assert nobody.returncode == 1 and "say who you are with `agent-tasks login`" in nobody.stderr
    assert own_store.list_sessions() == [], "nothing started"

    server = scripted([calls(tool("write_file", path="ada.txt", content="ada\n")), FINISH])
    started = cli(*task, "--reviewer", "team-a", token=ada, OPENAI_API_BASE=server.api_base, **api)
    assert started.returncode == 0, started.stderr
    session_id = started.stdout.split("session ", 1)[1].split()[0]
    assert own_store.get_session(session_id).started_by == "ada"
    listed = json.loads(cli("audit", "--json", token=root).stdout)
    assert any(e["session_id"] == session_id and e["kind"] == "started" and e["person"] == "ada" for e in listed), (
        listed
    )
