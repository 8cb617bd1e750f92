"""Red team: an agent steered by a stranger's text tries to reach the orchestrator's secrets, other
sessions and the network, to write outside its workspace, and to plant code the orchestrator would run.

Each test plants something worth stealing, lets the scripted model try, and checks that nothing
leaked (model requests, the store, Prefect's logs and artifacts) and nothing outside changed.

The tests of the same code that need no Prefect server are in tests/unit/test_sandbox.py.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from tasks_lib.config import load_settings
from tasks_lib.git.repo import mirror_dir
from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import SECRET, git
from tests.helpers import (
    Background,
    commit_file,
    decide,
    run_failing,
    run_logs_and_artifacts,
    run_task,
    wait_for_review,
)

GITHUB_TOKEN = "ghp_REDTEAM0token0value0123456789"
SSH_KEY = "REDTEAM-SSH-PRIVATE-KEY-7f3a9c"
AWS_KEY = "REDTEAM-AWS-SECRET-KEY-2b8e1d"
OTHER_WORK = "OTHER-SESSION-WORK-5c1d"
FINISH = calls(tool("finish", summary="done"))


@pytest.fixture
def outside_tmp():
    """A directory outside /tmp (every sandbox replaces /tmp), so each hiding rule is tested on its own."""
    base = next((d for d in ("/var/lib", os.getcwd()) if os.access(d, os.W_OK) and not d.startswith("/tmp")), None)
    path = Path(tempfile.mkdtemp(prefix="agent-tasks-redteam-", dir=base))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def planted(outside_tmp, monkeypatch):
    """Secrets in the orchestrator's environment and in a fake home; a store and mirrors of their own."""
    home = outside_tmp / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(
        f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SSH_KEY}\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text(f"[default]\naws_secret_access_key = {AWS_KEY}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
    agent_home = outside_tmp / "agent-tasks"
    monkeypatch.setenv("AGENT_TASKS_HOME", str(agent_home))
    return SimpleNamespace(home=home, agent_home=agent_home, secrets=[SECRET, GITHUB_TOKEN, SSH_KEY, AWS_KEY])


def store_dump(agent_home: Path) -> str:
    """Everything in the SQLite store, as SQL text."""
    with sqlite3.connect(agent_home / "agent-tasks.db") as db:
        return "\n".join(db.iterdump())


def results(store, session_id: str) -> list[str]:
    """The stored result of every tool call of a session, in order."""
    return [c.result for s in store.steps(session_id) for c in s.tool_calls]


def test_agent_commands_reach_no_secret_no_other_session_and_no_network(
    repo, scripted, planted, listener, prefect_server
):
    from tasks_lib.store import open_store

    scripted([calls(tool("write_file", path="notes.txt", content=OTHER_WORK)), FINISH])
    other = run_task(repo, "Leave some work behind")
    other_ws = Path(other.workspace)
    assert (other_ws / "notes.txt").read_text() == OTHER_WORK
    db = planted.agent_home / "agent-tasks.db"
    system_files = [
        Path(f"/etc/PWNED-{planted.agent_home.parent.name}"),
        Path(f"/usr/PWNED-{planted.agent_home.parent.name}"),
    ]
    probes = [
        "cat /proc/$PPID/environ | tr '\\0' '\\n'; echo; cat /proc/1/environ | tr '\\0' '\\n'",
        "env",
        f"cat {planted.home}/.ssh/id_rsa {planted.home}/.aws/credentials; ls -la ~ {planted.home}",
        f"cat {other_ws}/notes.txt; ls {planted.agent_home}/workspaces; tr -cd '[:print:]' < {db} | head -c 20000",
        f"echo pwned > {repo}/PWNED.txt; echo pwned > {planted.home}/PWNED.txt; echo pwned > {other_ws}/PWNED.txt; "
        f"echo pwned > {system_files[0]}; echo pwned > {system_files[1]}",
        listener.probe,
        f"echo hello > /dev/tcp/127.0.0.1/{listener.port}",
        "ps -ef; hostname; ls /run /var/run/ 2>&1 | head",
    ]
    server = scripted([calls(tool("run_command", command=c)) for c in probes] + [FINISH])
    result = run_task(repo, "Look around")

    store = open_store()
    outputs = results(store, result.session_id)
    assert len(outputs) == len(probes) + 1, "every probe ran"
    assert "HOME=/tmp/home" in outputs[1], "commands ran in the sandbox"
    assert "Read-only file system" in outputs[4] or "No such file or directory" in outputs[4]
    # Nothing leaked: not to the model (which reads raw tool output), not to the store, not to Prefect.
    model_saw = json.dumps(server.requests)
    for secret in [*planted.secrets, OTHER_WORK]:
        assert secret not in model_saw, f"{secret} reached the model"
    dumped = store_dump(planted.agent_home)
    for secret in planted.secrets:
        assert secret not in dumped, f"{secret} reached the store"
    assert OTHER_WORK not in json.dumps([s.model_dump(mode="json") for s in store.steps(result.session_id)])
    logs, artifacts = run_logs_and_artifacts(store.get_session(result.session_id).flow_run_id, until="completed")
    assert any(f"step {len(probes)}/" in m for m in logs)
    for secret in [*planted.secrets, OTHER_WORK]:
        assert all(secret not in m for m in logs) and all(secret not in a for a in artifacts)
    # Nothing outside the workspace changed, and the network was never reached.
    for path in (repo / "PWNED.txt", planted.home / "PWNED.txt", other_ws / "PWNED.txt", *system_files):
        assert not path.exists(), path
    assert listener.hits == []
    assert store.get_session(result.session_id).files_changed == 0


def test_setup_gets_the_network_it_is_given_and_the_agent_only_when_it_is_on(repo, scripted, store, listener):
    scripted([FINISH])
    allowed = run_task(repo, "Fetch nothing", setup_command=f"{listener.probe} || true")
    assert listener.hits == [], "by default the setup command reaches only its registries (tests/flow/test_egress.py)"
    assert allowed.status.value == "completed", allowed.reason

    scripted([calls(tool("run_command", command=listener.probe)), FINISH])
    closed = run_task(repo, "Fetch something", setup_command=listener.probe, setup_network="on")
    assert len(listener.hits) == 1, "setup_network: on opens everything to the setup command"
    assert "[exit code 0]" not in results(store, closed.session_id)[0], "the agent's own command had no network"

    scripted([calls(tool("run_command", command=listener.probe)), FINISH])
    opened = run_task(repo, "Fetch it again", network=True)
    assert len(listener.hits) == 2 and "b'reached'" in results(store, opened.session_id)[0]
    summary = store.latest_summary(opened.session_id).markdown
    assert "network on" in summary and "bwrap" in summary


def test_a_failing_setup_command_fails_the_session_with_its_output(repo, scripted, store):
    server = scripted([FINISH])
    failed = run_failing(repo, "Needs dependencies", setup_command="echo cannot reach the index >&2; exit 7")
    assert "setup command" in failed.reason and "exit 7" in failed.reason and "cannot reach the index" in failed.reason
    assert server.agent_requests() == [], "the agent did not start"
    assert store.get_session(failed.session_id).status == "failed"


def test_git_config_and_hooks_planted_by_a_session_never_run(repo, scripted, store, tmp_path):
    marker = tmp_path / "PLANTED-COMMAND-RAN"
    plant = f"touch {marker}"
    settings = load_settings()
    mirror = mirror_dir(settings.mirrors_dir, str(repo))
    attempts = [
        f"git config core.fsmonitor '{plant}'",
        f"printf '#!/bin/sh\\n{plant}\\n' > .git/hooks/post-commit; chmod +x .git/hooks/post-commit",
        "git config core.hooksPath .githooks",
        "git update-ref -d refs/remotes/origin/main",
        f"git -C {mirror} config core.fsmonitor '{plant}'",
        f"printf '#!/bin/sh\\n{plant}\\n' > {mirror}/hooks/reference-transaction",
    ]
    scripted(
        [calls(tool("run_command", command=c)) for c in attempts]
        + [calls(tool("write_file", path="first.txt", content="one\n")), FINISH]
    )
    first = Background(repo, "Plant hooks and fsmonitor")
    row = wait_for_review(store, "Plant hooks and fsmonitor")
    outputs = results(store, row.id)
    assert all("[exit code 0]" not in out for out in outputs[: len(attempts)]), outputs
    mirror_config = (mirror / "config").read_bytes()
    # What an unconfined (sandbox: none) agent could have written into its own git directory: the
    # orchestrator's git calls (diff, commit, delivery) must still not run it.
    ws = Path(row.workspace)
    git(ws, "config", "core.fsmonitor", plant)
    for hook in ("pre-commit", "post-commit", "pre-push", "reference-transaction", "post-checkout"):
        (ws / ".git" / "hooks").mkdir(exist_ok=True)
        (ws / ".git" / "hooks" / hook).write_text(f"#!/bin/sh\n{plant}\n")
        (ws / ".git" / "hooks" / hook).chmod(0o755)
    decide(row, "accept")
    assert first.join().status.value == "accepted"

    scripted([calls(tool("write_file", path="second.txt", content="two\n")), FINISH])
    second = Background(repo, "A later session on the same repository")
    decide(wait_for_review(store, "A later session on the same repository"), "accept")
    assert second.join().status.value == "accepted"
    assert not marker.exists(), "a planted command ran in the orchestrator"
    assert (mirror / "config").read_bytes() == mirror_config
    assert not (mirror / "hooks").exists() or not any((mirror / "hooks").iterdir())
    delivered = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/agent/")
    assert len(delivered.split()) == 2, "both sessions' work branches were delivered"


def test_conventions_files_that_link_outside_stay_out_of_the_prompt(repo, scripted, planted):
    (repo / "AGENTS.md").symlink_to(planted.home / ".aws" / "credentials")
    (repo / "CLAUDE.md").symlink_to("/proc/self/environ")
    (repo / ".cursorrules").symlink_to("../../../../../../../../etc/hostname")
    (repo / ".github").mkdir()
    (repo / ".github" / "copilot-instructions.md").write_text("Use four spaces.\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "conventions")
    server = scripted([FINISH])
    result = run_task(repo, "Follow the conventions")

    system = server.agent_requests()[0]["messages"][0]["content"]
    assert "Use four spaces." in system
    for secret in planted.secrets:
        assert secret not in system
    assert "Repository conventions: AGENTS.md" not in system and "Repository conventions: CLAUDE.md" not in system
    from tasks_lib.store import open_store

    logs, _ = run_logs_and_artifacts(open_store().get_session(result.session_id).flow_run_id, until="left out")
    assert any("AGENTS.md left out" in m and "outside" in m for m in logs)


@pytest.mark.parametrize(
    "field", ["api_base: http://127.0.0.1:{port}/v1", "env: [OPENAI_API_KEY]", "sandbox: none", "network: on"]
)
def test_a_repository_agent_may_not_set_operator_fields(repo, scripted, store, listener, field):
    commit_file(repo, ".agent-tasks/agents/evil.md", f"---\nname: evil\n{field.format(port=listener.port)}\n---\nx\n")
    server = scripted([FINISH])
    failed = run_failing(repo, "Use the repository's agent", agent="evil")
    name = field.split(":")[0]
    assert f"field '{name}': not allowed in a repository's agent file" in failed.reason
    assert server.requests == [] and listener.hits == [], "the model key went nowhere"


def test_the_read_only_reviewer_cannot_write_through_git(repo, scripted, store):
    scripted(
        [
            calls(tool("run_command", command="git diff --output=src/app.py HEAD")),
            calls(tool("run_command", command="git grep --open-files-in-pager='touch PAGER-RAN' greet")),
            calls(tool("run_command", command="git log --oneline")),
            FINISH,
        ]
    )
    result = run_task(repo, "Review the code", agent="reviewer")

    ws = Path(result.workspace)
    outputs = results(store, result.session_id)
    assert "Read-only file system" in outputs[0] and "initial" in outputs[2]
    assert (ws / "src" / "app.py").read_text() == (repo / "src" / "app.py").read_text()
    assert not (ws / "PAGER-RAN").exists()
    assert store.get_session(result.session_id).files_changed == 0
    assert "workspace read-only" in store.latest_summary(result.session_id).markdown


def test_event_runs_read_agent_files_from_the_default_branch(repo, scripted):
    commit_file(repo, ".agent-tasks/agents/helper.md", "---\nname: helper\n---\nDEFAULT-BRANCH-PROMPT\n")
    git(repo, "checkout", "-q", "dev")
    git(repo, "merge", "-q", "main")
    commit_file(repo, ".agent-tasks/agents/helper.md", "---\nname: helper\n---\nPULL-REQUEST-PROMPT\n")
    git(repo, "checkout", "-q", "main")

    server = scripted([FINISH])
    run_task(
        repo,
        "Review the pull request",
        agent="helper",
        branch="dev",
        trigger={"event": "github.pull_request.opened", "title": "Please merge"},
    )
    system = server.agent_requests()[0]["messages"][0]["content"]
    assert "DEFAULT-BRANCH-PROMPT" in system and "PULL-REQUEST-PROMPT" not in system

    server = scripted([FINISH])
    run_task(repo, "Work on dev by hand", agent="helper", branch="dev")
    assert "PULL-REQUEST-PROMPT" in server.agent_requests()[0]["messages"][0]["content"]


def test_without_bubblewrap_event_runs_are_refused_and_manual_runs_warn(repo, scripted, store, monkeypatch):
    monkeypatch.setenv("AGENT_TASKS_BWRAP", "/nonexistent/bwrap")
    trigger = {"event": "github.issue.labeled", "title": "Do it"}
    server = scripted([FINISH])
    refused = run_failing(repo, "Started by an event", trigger=trigger)
    assert "install bubblewrap" in refused.reason and "sandbox: none" in refused.reason
    assert server.requests == []
    asked = run_failing(repo, "Insists on a sandbox", sandbox="bwrap")
    assert "bwrap was asked for" in asked.reason

    scripted([calls(tool("run_command", command="echo $HOME")), FINISH])
    manual = run_task(repo, "Started by hand")
    summary = store.latest_summary(manual.session_id)
    assert summary.facts["unconfined"] is True and "commands ran unconfined" in summary.markdown
    logs, _ = run_logs_and_artifacts(store.get_session(manual.session_id).flow_run_id, until="sandbox")
    assert any("sandbox: none" in m and "bubblewrap" in m for m in logs)

    scripted([FINISH])
    opted_out = run_task(repo, "Event run, opted out", trigger=trigger, sandbox="none")
    assert opted_out.status.value == "completed"


def test_variables_passed_to_the_agent_are_masked_everywhere_else(repo, scripted, store, monkeypatch):
    value = "internal-host-9f8e7d6c.example"
    monkeypatch.setenv("DEPLOY_HOST", value)
    server = scripted([calls(tool("run_command", command="echo host=$DEPLOY_HOST")), FINISH])
    result = run_task(repo, "Use the deploy host", env=["DEPLOY_HOST"])

    assert f"host={value}" in json.dumps(server.requests), "the agent gets the variable it was given"
    stored = json.dumps([s.model_dump(mode="json") for s in store.steps(result.session_id)])
    assert value not in stored and "host=***" in stored
    logs, artifacts = run_logs_and_artifacts(store.get_session(result.session_id).flow_run_id, until="completed")
    assert all(value not in m for m in logs) and all(value not in a for a in artifacts)


def test_run_logs_and_failure_messages_in_prefect_are_redacted(prefect_server):
    from prefect import flow, get_run_logger
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from tasks_lib.security.redaction import install_log_redaction
    from tasks_lib.steps import step

    @step("leaky-step")
    def leaky_step() -> None:
        get_run_logger().info("the step sees %s", SECRET)
        raise ValueError(f"could not use the key {SECRET}")

    @flow(name="leaky-flow")
    def leaky_flow() -> None:
        install_log_redaction()
        get_run_logger().warning(f"the flow sees {SECRET}")
        try:
            leaky_step()
        except ValueError:
            get_run_logger().exception("the step failed")
            raise

    state = leaky_flow(return_state=True)
    assert state.is_failed()
    flow_run_id = str(state.state_details.flow_run_id)
    logs, _ = run_logs_and_artifacts(flow_run_id, until="the step failed")
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        messages = [client.read_flow_run(flow_run_id).state.message] + [t.state.message for t in task_runs]
    assert any("the step sees ***" in m for m in logs) and any("the flow sees ***" in m for m in logs)
    assert any("Traceback" in m and "could not use the key ***" in m for m in logs), "tracebacks are logged, redacted"
    assert any("could not use the key ***" in (m or "") for m in messages)
    assert all(SECRET not in m for m in logs) and all(SECRET not in (m or "") for m in messages)
