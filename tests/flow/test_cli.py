"""The agent-tasks command line, run as a real subprocess.

All of it is in tests/flow: half of these tests run sessions against the Prefect test server, and each of the
others (one-line errors) starts the command, about 2 s of imports apiece, too slow for the unit loop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.helpers import MODEL
from tests.polling import wait_until

CLI = [sys.executable, "-m", "tasks_lib.cli"]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0], lines[0]


def test_missing_repository(tmp_path):
    assert_one_line_error(cli("run", str(tmp_path / "nope"), "--task", "x", "--model", MODEL), "repository not found")


def test_directory_that_is_not_a_repository(tmp_path):
    assert_one_line_error(cli("run", str(tmp_path), "--task", "x", "--model", MODEL), "not a git repository")


def test_unknown_branch_lists_the_branches(repo):
    proc = cli("run", str(repo), "--task", "x", "--model", MODEL, "--branch", "nope")
    assert_one_line_error(proc, "unknown branch 'nope'", "branches: dev, main")


def test_empty_task(repo):
    assert_one_line_error(cli("run", str(repo), "--task", "  ", "--model", MODEL), "the task is empty")


def test_unknown_model(repo):
    assert_one_line_error(
        cli("run", str(repo), "--task", "x", "--model", "gpt-nonexistent-9"), "unknown model 'gpt-nonexistent-9'"
    )


def test_no_model_configured(repo):
    assert_one_line_error(cli("run", str(repo), "--task", "x"), "no model configured", "AGENT_TASKS_MODEL")


@pytest.mark.parametrize(
    "content, expected",
    [
        ("---\nname: x\nmax_steps: [unclosed\n---\nbody", "front matter is not valid YAML"),
        ("---\nname: x\ncolour: blue\n---\nbody", "field 'colour': unknown field"),
        ("---\nname: x\nmax_steps: -3\n---\nbody", "field 'max_steps': Input should be greater than or equal to 1"),
        ("---\nname: x\ntools: [read_file, teleport]\n---\nbody", "field 'tools': unknown tool 'teleport'"),
        ("---\nname: x\n", "no closing '---' line"),
        (b"---\nname: \xff\xfe\n---\n", "cannot read agent file"),
    ],
)
def test_bad_agent_file(repo, tmp_path, content, expected):
    path = tmp_path / "agent.md"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    proc = cli("run", str(repo), "--task", "x", "--model", MODEL, "--agent", str(path))
    assert_one_line_error(proc, str(path), expected)


def test_missing_agent_file(repo, tmp_path):
    proc = cli("run", str(repo), "--task", "x", "--model", MODEL, "--agent", str(tmp_path / "gone.md"))
    assert_one_line_error(proc, "gone.md: agent file not found")


def test_unknown_builtin_agent(repo):
    assert_one_line_error(
        cli("run", str(repo), "--task", "x", "--model", MODEL, "--agent", "wizard"), "no such agent", "default"
    )


def test_run_then_inbox_then_show(repo, scripted, prefect_server, tmp_path):
    server = scripted(
        [
            calls(tool("edit_file", path="README.md", old="Hello world.", new="Hello, agents.")),
            calls(tool("run_command", command="rm obsolete.txt")),
            calls(tool("finish", summary="Updated the greeting.")),
        ]
    )
    env = {"PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": server.api_base}
    proc = cli(
        "run",
        str(repo),
        "--task",
        "Update the README greeting",
        "--model",
        MODEL,
        "--reviewer",
        "bob",
        "--no-review",
        "--network",
        "allow",
        "--allow-host",
        "pypi.org",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "step 1/40: edit_file" in proc.stderr and "step 3/40: finish" in proc.stderr
    sandbox_line = "sandbox: bwrap (workspace writable, network allow: allowed pypi.org)"
    assert sandbox_line in proc.stderr, "run says which sandbox is in force"
    assert "limits: memory 4 GiB (cgroup v" in proc.stderr, "run says which limits are in force, and how"
    session_id = proc.stdout.split("session ", 1)[1].split()[0]
    assert "status   completed" in proc.stdout
    assert "diffstat 2 files changed, +1 -2" in proc.stdout
    assert "What was done" in proc.stdout and "Traceback" not in proc.stderr
    assert "checking out the repository" not in proc.stderr, "no spinner when not on a terminal"

    inbox = cli("inbox", "--limit", "100")
    line = next(ln for ln in inbox.stdout.splitlines() if ln.startswith(session_id[:8]))
    assert "completed" in line and "default" in line and "source@main" in line and "+1 -2" in line

    # In another terminal, with no PREFECT_API_URL: the links go to the server `agent-tasks up` runs.
    bare = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    up_base = prefect_server.removesuffix("/").removesuffix("/api")
    bare["AGENT_TASKS_LOCAL_API"] = prefect_server
    found = subprocess.run([*CLI, "inbox", "--limit", "100"], capture_output=True, text=True, env=bare, timeout=120)
    line = next(ln for ln in found.stdout.splitlines() if ln.startswith(session_id[:8]))
    assert f"{up_base}/runs/flow-run/" in line, line

    data = json.loads(cli("show", session_id[:8], "--json").stdout)
    assert data["id"] == session_id and data["status"] == "completed" and data["reviewer"] == "bob"
    assert data["diff"]["added"] == 1 and data["diff"]["removed"] == 2
    assert [s["tool_calls"][0]["name"] for s in data["steps"]] == ["edit_file", "run_command", "finish"]
    assert data["summary"]["facts"]["commands"] == ["rm obsolete.txt"]

    shown_diff = cli("show", session_id, "--diff")
    diff = shown_diff.stdout
    assert "-Hello world.\n+Hello, agents." in diff and "deleted file mode" in diff, shown_diff.stderr
    log = cli("show", session_id, "--log").stdout
    assert "→ run_command" in log and "[exit code 0]" in log
    assert git(repo, "status", "--porcelain") == "" and "Hello world." in (repo / "README.md").read_text()


def test_show_unknown_session(repo, scripted):
    from tests.helpers import run_task

    scripted([calls(tool("finish", summary="Nothing to do."))])
    run_task(repo, "Nothing")  # the store exists
    assert_one_line_error(cli("show", "ffffffff-nope"), "no session matches")


def test_failed_run_exits_non_zero_with_the_reason(repo, scripted, prefect_server):
    server = scripted([{"status": 401, "message": "bad key"}])
    env = {"PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": server.api_base}
    proc = cli("run", str(repo), "--task", "x", "--model", MODEL, "--no-review", env=env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: session ")
    assert "AuthenticationError" in proc.stderr and "bad key" in proc.stderr


def test_inbox_filters_and_columns(repo, scripted, tmp_path, prefect_server):
    from tests.helpers import run_task

    other = tmp_path / "other-project"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    scripted(
        [
            calls(tool("write_file", path="a.txt", content="a\n")),
            calls(tool("finish", summary="a")),
            calls(tool("finish", summary="b")),
        ]
    )
    first = run_task(repo, "Inbox one", reviewer="alice-inbox")
    second = run_task(other, "Inbox two", reviewer="bob-inbox")

    mine = json.loads(cli("inbox", "--reviewer", "alice-inbox", "--json").stdout)
    assert [s["id"] for s in mine] == [first.session_id]
    assert mine[0]["lines_added"] == 1 and mine[0]["iteration"] == 1 and mine[0]["status"] == "completed"
    by_repo = json.loads(cli("inbox", "--repo", "other-project", "--json").stdout)
    assert [s["id"] for s in by_repo] == [second.session_id]
    assert json.loads(cli("inbox", "--status", "rejected", "--reviewer", "alice-inbox", "--json").stdout) == []
    assert_one_line_error(cli("inbox", "--status", "nonsense"), "unknown status 'nonsense'", "awaiting_review")

    table = cli("inbox", "--reviewer", "bob-inbox", env={"PREFECT_API_URL": prefect_server}).stdout
    header, line = table.splitlines()[:2]
    for column in ("reviewer", "iter", "cost", "prefect"):
        assert column in header
    assert (
        "bob-inbox" in line
        and f"/runs/flow-run/{json.loads(cli('show', second.session_id, '--json').stdout)['flow_run_id']}" in line
    )


def test_show_side_by_side_and_html_page(repo, scripted, tmp_path):
    from tests.helpers import run_task

    scripted(
        [
            calls(tool("edit_file", path="src/app.py", old="'Hello ' + name", new="'Howdy ' + name")),
            calls(tool("write_file", path="notes/new.md", content="<script>alert(1)</script>\n")),
            calls(tool("finish", summary="Changed the greeting.")),
        ]
    )
    result = run_task(repo, "Change the greeting")

    sbs = cli("show", result.session_id, "--side-by-side").stdout
    row = next(ln for ln in sbs.splitlines() if "Hello" in ln)
    assert "- " in row and "return 'Hello ' + name" in row and "+ " in row and "return 'Howdy ' + name" in row
    assert "notes/new.md  (added, +1 -0)" in sbs

    page = tmp_path / "review.html"
    proc = cli("show", result.session_id, "--html", str(page))
    assert proc.returncode == 0
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "<h3>What was done</h3>" in html
    assert "<td class='del'>    return &#x27;Hello &#x27; + name</td>" in html
    assert "<td class='ins'>    return &#x27;Howdy &#x27; + name</td>" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "edit_file" in html and "Changed the greeting." in html
    assert f"agent-tasks review {result.session_id[:8]}" in html
    assert "<link" not in html and "src=" not in html  # self-contained


def test_run_waits_for_review_and_a_review_from_another_process_resumes_it(repo, scripted, tmp_path):
    """The default path with no Prefect server configured: `run` blocks on its review; `review` elsewhere resumes it."""
    server = scripted([calls(tool("write_file", path="e.txt", content="e\n")), calls(tool("finish", summary="ok"))])
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "OPENAI_API_BASE": server.api_base}
    env.pop("PREFECT_API_URL", None)  # each process uses Prefect's ephemeral server on the same database
    run = subprocess.Popen(
        [*CLI, "run", str(repo), "--task", "Ephemeral review", "--model", MODEL],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def waiting_sessions() -> list[dict]:
            rows = json.loads(cli("inbox", "--status", "awaiting_review", "--json", env=env).stdout or "[]")
            return [r for r in rows if r["reason"] == "waiting for a reviewer" and r["repository"] == str(repo)]

        waiting = wait_until(waiting_sessions, 120, "the run waiting for review", interval=1)
        decided = cli("review", waiting[0]["id"][:8], "accept", "--timeout", "90", env=env)
        assert decided.returncode == 0, decided.stderr
        assert f"session {waiting[0]['id'][:8]} accepted" in decided.stdout
        stdout, stderr = run.communicate(timeout=90)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0 and "waiting for review (iteration 1)" in stderr
    assert f"session {waiting[0]['id']} accepted" in stdout
    branch = json.loads(cli("show", waiting[0]["id"], "--json").stdout)["work_branch"]
    assert git(repo, "show", f"{branch}:e.txt") == "e"


def _sessions_of(repo: Path) -> list[dict]:
    return [r for r in json.loads(cli("inbox", "--json", "--limit", "200").stdout) if r["repository"] == str(repo)]


def test_a_run_killed_outright_ends_crashed_with_its_work_kept(repo, scripted, prefect_server):
    """kill -9 leaves nothing in the process to end the session; the next reader of the store ends it."""
    server = scripted(
        [
            calls(tool("write_file", path="kept.txt", content="made before the kill\n")),
            calls(tool("finish", summary="never reached"), delay=60),  # the model "thinks" while the process dies
        ]
    )
    env = {"PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": server.api_base}
    run = subprocess.Popen(
        [*CLI, "run", str(repo), "--task", "Killed mid-run", "--model", MODEL, "--no-review"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        session = wait_until(
            lambda: next(
                (r for r in _sessions_of(repo) if len(json.loads(cli("show", r["id"], "--json").stdout)["steps"]) == 1),
                None,
            ),
            120,
            "the first step recorded",
        )
        assert session["status"] == "running"
        run.kill()
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    row = next(r for r in _sessions_of(repo) if r["id"] == session["id"])
    assert row["status"] == "crashed"
    assert f":{run.pid})" in row["reason"] and "ended without finishing it" in row["reason"]
    assert "changes made so far are kept (1 file changed, +1 -0)" in row["reason"]
    data = json.loads(cli("show", session["id"], "--json").stdout)
    assert [f["path"] for f in data["diff"]["files"]] == ["kept.txt"] and "+made before the kill" in data["diff"][
        "patch"
    ]
    assert [(t["from"], t["to"], t["by"]) for t in data["transitions"]][-1] == ("running", "crashed", "reconcile")
    assert git(repo, "status", "--porcelain") == ""


def test_a_review_wait_whose_process_died_is_ended_and_refuses_decisions(repo, scripted, prefect_server):
    server = scripted([calls(tool("write_file", path="w.txt", content="w\n")), calls(tool("finish", summary="ok"))])
    env = {"PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": server.api_base}
    run = subprocess.Popen(
        [*CLI, "run", str(repo), "--task", "Killed while waiting", "--model", MODEL],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        session = wait_until(
            lambda: next((r for r in _sessions_of(repo) if r["status"] == "awaiting_review"), None),
            120,
            "awaiting_review",
        )
        run.kill()
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    decided = cli("review", session["id"], "accept", env=env)
    assert_one_line_error(decided, f"session {session['id'][:8]} is crashed, not awaiting review")
    data = json.loads(cli("show", session["id"], "--json").stdout)
    assert (
        "the process waiting for its review" in data["status_reason"]
        and "diff and work branch kept" in data["status_reason"]
    )
    assert data["diff"]["files"][0]["path"] == "w.txt"
    assert git(repo, "branch", "--list", data["work_branch"]) == ""  # nothing was delivered


def test_stored_text_with_brackets_prints_as_it_is(repo, scripted, prefect_server):
    server = scripted(
        [
            calls(
                tool("write_file", path="a.txt", content="a\n"), text="[italic]thinking[/italic] about [/tmp] and [bold"
            ),
            calls(tool("finish", summary="done [rejected]")),
        ]
    )
    env = {"PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": server.api_base}
    proc = cli("run", str(repo), "--task", "Brackets [/tmp] everywhere", "--model", MODEL, "--no-review", env=env)
    assert proc.returncode == 0, proc.stderr
    session_id = proc.stdout.split("session ", 1)[1].split()[0]
    log = cli("show", session_id, "--log")
    assert log.returncode == 0 and "Traceback" not in log.stderr
    assert "  [italic]thinking[/italic] about [/tmp] and [bold" in log.stdout, "the model's words, literally"
    failed = cli("run", str(repo), "--task", "x", "--agent", "/tmp/[nope]/agent.md", "--model", MODEL, env=env)
    assert_one_line_error(failed, "[nope]")


def test_run_finds_a_local_server_or_says_in_one_line_why_it_could_not_start_one(repo, scripted, prefect_server, store):
    server = scripted([calls(tool("write_file", path="a.txt", content="a\n")), calls(tool("finish", summary="a"))])
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(OPENAI_API_BASE=server.api_base, AGENT_TASKS_LOCAL_API=prefect_server)
    proc = subprocess.run(
        [*CLI, "run", str(repo), "--task", "Use the local server", "--model", MODEL, "--no-review"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"using the local Prefect server at {prefect_server}" in proc.stderr
    row = next(r for r in store.list_sessions(limit=20) if r.instructions == "Use the local server")
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # the run is on that server
        assert client.read_flow_run(row.flow_run_id).state.is_completed()

    env.update(AGENT_TASKS_LOCAL_API="http://127.0.0.1:9/api", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    busy = subprocess.run(
        [*CLI, "run", str(repo), "--task", "No server in time", "--model", MODEL, "--no-review"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert busy.returncode == 1 and "using a temporary one" in busy.stderr and "Traceback" not in busy.stderr
    last = busy.stderr.strip().splitlines()[-1]
    assert last.startswith("error: Prefect's temporary server did not start in time") and "agent-tasks up" in last
