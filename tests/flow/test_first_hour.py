"""A new user's first hour on the command line, as a real subprocess: one-line answers before any work (a missing key,
a model server that is down, a mistyped command line, an unwritable file, a home with no store), `doctor`, the
spinner a person sees on a terminal while they wait, `run --no-wait`, and help that reads cleanly."""

from __future__ import annotations

import json
import os
import subprocess

from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.flow.test_cli import CLI, assert_one_line_error, cli
from tests.helpers import MODEL
from tests.polling import wait_until


def test_a_missing_provider_key_is_one_line_before_any_work(repo, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["AGENT_TASKS_HOME"] = str(tmp_path / "home")
    proc = subprocess.run(
        [*CLI, "run", str(repo), "--task", "x", "--model", "anthropic/claude-sonnet-4-5"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert_one_line_error(proc, "needs ANTHROPIC_API_KEY, which is not set", "--local-model")
    assert not list((tmp_path / "home").glob("workspaces/*")), "nothing was checked out"


def test_a_self_hosted_model_whose_server_is_down_is_one_line_before_any_work(repo):
    proc = cli("run", str(repo), "--task", "x", "--model", MODEL, env={"OPENAI_API_BASE": "http://127.0.0.1:9/v1"})
    assert_one_line_error(proc, "at http://127.0.0.1:9 does not answer (nothing listens there)", "OPENAI_API_BASE")


def test_doctor_names_each_gap_and_what_to_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "PREFECT_API_URL")}
    env.update(
        AGENT_TASKS_HOME=str(tmp_path / "home"), AGENT_TASKS_MODEL=MODEL, OPENAI_API_BASE="http://127.0.0.1:9/v1"
    )
    proc = subprocess.run([*CLI, "doctor", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1, "a gap that stops a run fails the command"
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert {"git", "disk", "store", "sandbox", "prefect", "model", "provider key", "model server"} <= set(checks)
    assert checks["provider key"]["state"] == "fail" and "OPENAI_API_KEY" in checks["provider key"]["found"]
    assert checks["model server"]["state"] == "fail" and "OPENAI_API_BASE" in checks["model server"]["fix"]
    assert checks["prefect"]["state"] == "warn" and "agent-tasks up" in checks["prefect"]["fix"]
    assert checks["sandbox"]["state"] == "ok" and checks["store"]["found"].endswith("(created by the first run)")
    assert not (tmp_path / "home").exists(), "checking creates nothing"

    env.update(OPENAI_API_KEY="sk-test-doctor", OPENAI_API_BASE="")
    table = subprocess.run([*CLI, "doctor"], capture_output=True, text=True, env=env, timeout=120)
    assert table.returncode == 0 and "ready to run, 1 to look at" in table.stdout, table.stdout
    assert "sk-test-doctor" not in table.stdout


def test_a_network_mode_that_does_not_exist_is_one_line(repo):
    proc = cli("run", str(repo), "--task", "x", "--model", MODEL, "--network", "maybe")
    assert_one_line_error(proc, "--network takes off, allow, on", "not 'maybe'")


def test_a_file_that_cannot_be_written_is_one_line_not_a_traceback(repo, scripted, tmp_path):
    from tests.helpers import run_task

    scripted([calls(tool("finish", summary="Nothing to do."))])
    result = run_task(repo, "Nothing")
    target = tmp_path / "missing-folder" / "page.html"
    assert_one_line_error(cli("show", result.session_id, "--html", str(target)), f"no such file or directory: {target}")


def test_a_mistyped_command_line_is_one_line_naming_where_help_is():
    assert_one_line_error(cli("gc", "--older-than", "-3"), "'--older-than'", "greater than or equal to 0", "gc -h")
    assert_one_line_error(cli("run", "/tmp/anywhere"), "Missing option '--task'", "agent-tasks run -h for help")
    assert_one_line_error(cli("bogus"), "No such command 'bogus'")


def test_reading_a_home_with_no_store_says_where_it_looked_and_creates_nothing(tmp_path):
    home = tmp_path / "empty-home"
    env = {"AGENT_TASKS_HOME": str(home)}
    assert_one_line_error(cli("show", "1234abcd", env=env), f"no store at {home}/agent-tasks.db", "agent-tasks run")
    listed = cli("inbox", env=env)
    assert listed.returncode == 0 and "no sessions yet" in listed.stdout and str(home) in listed.stdout
    assert json.loads(cli("inbox", "--json", env=env).stdout) == []
    assert not home.exists() or not any(home.iterdir()), "reading made nothing"


def on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as its stdout and stderr (stdin closed): (exit code, all it showed)."""
    import pty
    import select

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, *args], stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env={**env, "COLUMNS": "120"}
    )
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the command ended and closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return proc.wait(timeout=60), seen.decode(errors="replace")


def test_on_a_terminal_run_says_what_it_waits_for(repo, scripted, prefect_server):
    server = scripted([calls(tool("write_file", path="t.txt", content="t\n")), calls(tool("finish", summary="ok"))])
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": server.api_base}
    code, shown = on_a_terminal(["run", str(repo), "--task", "Write t", "--model", MODEL, "--no-review"], env)
    assert code == 0, shown
    phases = ("checking the repository, the agent and the model…", "starting the run", "checking out the repository…")
    for phase in (*phases, "capturing the diff…", "writing the summary…"):
        assert phase in shown, (phase, shown[-3000:])
    assert "status   completed" in shown and "Traceback" not in shown


def test_on_a_terminal_review_says_what_it_waits_for(repo, scripted, store, prefect_server):
    from tests.helpers import Background, wait_for_review

    scripted([calls(tool("write_file", path="r.txt", content="r\n")), calls(tool("finish", summary="ok"))])
    run = Background(repo, "Review on a terminal")
    row = wait_for_review(store, "Review on a terminal", since=run.started)
    code, shown = on_a_terminal(["review", row.id[:8], "accept"], {**os.environ, "PREFECT_API_URL": prefect_server})
    run.join()
    assert code == 0, shown
    assert "sending the decision…" in shown and f"session {row.id[:8]} accepted" in shown, shown


def test_run_no_wait_returns_with_the_id_and_the_run_waits_for_its_review(repo, scripted, prefect_server, store):
    server = scripted([calls(tool("write_file", path="bg.txt", content="bg\n")), calls(tool("finish", summary="ok"))])
    env = {"PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": server.api_base}
    proc = cli("run", str(repo), "--task", "Write bg", "--model", MODEL, "--no-wait", env=env)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("session ") and "runs in the background (log: " in first, proc.stdout
    session_id = first.split()[1]
    assert f"agent-tasks review {session_id[:8]} accept" in proc.stdout
    wait_until(lambda: store.get_session(session_id).status == "awaiting_review", 180, "the background run to wait")
    decided = cli("review", session_id[:8], "accept", env=env)
    assert decided.returncode == 0, decided.stderr
    row = store.get_session(session_id)
    assert row.status == "accepted" and git(repo, "show", f"{row.work_branch}:bg.txt") == "bg"


def test_help_is_plain_two_columns_that_wrap_cleanly():
    proc = cli("run", "--help", env={"COLUMNS": "80"})
    assert proc.returncode == 0
    assert not any(ch in proc.stdout for ch in "╭│╰"), "no boxes"
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert not any(line.rstrip().endswith("--no-") for line in lines), "no option cut at its hyphen"
    assert "--allow-host HOST" in proc.stdout and "--no-wait" in proc.stdout
