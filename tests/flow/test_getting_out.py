"""Getting a change out of a session run without review: `agent-tasks apply` and `agent-tasks export`, as a real
subprocess against real repositories, after a real `agent-tasks run --no-review`."""

from __future__ import annotations

import shutil
from pathlib import Path

from tasks_lib.testing.scripted_server import calls, tool
from tests.conftest import git
from tests.flow.test_cli import assert_one_line_error, cli
from tests.helpers import MODEL

TASK = "Update the README greeting"


def run_session(repo: Path, scripted, prefect_server: str) -> str:
    """Run a session that edits README.md, deletes obsolete.txt and adds notes.txt, without review; its id."""
    server = scripted(
        [
            calls(tool("edit_file", path="README.md", old="Hello world.", new="Hello, agents.")),
            calls(tool("run_command", command="rm obsolete.txt")),
            calls(tool("write_file", path="notes.txt", content="new notes\n")),
            calls(tool("finish", summary="Updated the greeting.")),
        ]
    )
    env = {"PREFECT_API_URL": prefect_server, "OPENAI_API_BASE": server.api_base}
    proc = cli("run", str(repo), "--task", TASK, "--model", MODEL, "--no-review", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "status   completed" in proc.stdout
    session_id = proc.stdout.split("session ", 1)[1].split()[0]
    assert f"the change is in the workspace only: agent-tasks apply {session_id[:8]}" in proc.stdout, "run says how"
    return proc.stdout.split("session ", 1)[1].split()[0]


def session(session_id: str):
    from tasks_lib.store import open_store

    return open_store().get_session(session_id)


def test_apply_commits_onto_the_work_branch_and_twice_is_the_same(repo, scripted, prefect_server):
    from tasks_lib.cli.getting_out import getting_out_hint

    main_before = git(repo, "rev-parse", "main")
    session_id = run_session(repo, scripted, prefect_server)
    row = session(session_id)
    hint = getting_out_hint(row)
    assert hint is not None
    assert f"agent-tasks apply {session_id[:8]} (onto branch {row.work_branch})" in hint
    assert f"agent-tasks export {session_id[:8]} --patch" in hint

    proc = cli("apply", session_id[:8])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    commit = git(repo, "rev-parse", row.work_branch)
    assert lines[0].startswith(f"session {session_id[:8]} applied: commit {commit[:10]} is on branch {row.work_branch}")
    assert f"git -C {repo} log {row.work_branch} -1" in lines[0]

    assert git(repo, "rev-parse", f"{row.work_branch}^") == main_before, "one commit on top of the base"
    assert git(repo, "show", f"{row.work_branch}:README.md") == "# Demo\n\nHello, agents."
    assert git(repo, "show", f"{row.work_branch}:notes.txt") == "new notes"
    assert "obsolete.txt" not in git(repo, "ls-tree", "--name-only", row.work_branch)
    message = git(repo, "log", "-1", "--format=%B", row.work_branch)
    assert message.startswith(TASK)
    assert f"Agent-Session: {session_id}" in message and "Reviewed-by" not in message
    assert git(repo, "rev-parse", "main") == main_before and git(repo, "status", "--porcelain") == ""

    applied = session(session_id)
    assert applied.status == "completed" and applied.delivered_commit == commit
    assert getting_out_hint(applied) is None, "nothing left to say once it is applied"
    shown = cli("show", session_id[:8]).stdout
    assert "the change is in the workspace only" not in shown
    assert f"delivered {commit[:10]} → branch {row.work_branch} in {repo} (applied, not reviewed)" in shown

    again = cli("apply", session_id)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"session {session_id[:8]} was already applied: commit {commit[:10]}")
    assert git(repo, "rev-parse", row.work_branch) == commit, "applying again adds no commit"


def test_apply_to_a_new_branch_never_to_the_base(repo, scripted, prefect_server):
    main_before = git(repo, "rev-parse", "main")
    session_id = run_session(repo, scripted, prefect_server)
    row = session(session_id)

    refused = cli("apply", session_id, "--to", "main")
    assert_one_line_error(refused, "main is the session's base branch", "--on-accept merge")
    assert git(repo, "rev-parse", "main") == main_before and git(repo, "status", "--porcelain") == ""
    assert_one_line_error(cli("apply", session_id, "--to", "bad..name"), "not a valid branch name")
    assert session(session_id).delivered_commit is None

    shutil.rmtree(row.workspace)  # gone (gc): apply rebuilds it from the base and the stored diff
    proc = cli("apply", session_id, "--to", "feature/greeting")
    assert proc.returncode == 0, proc.stderr
    commit = git(repo, "rev-parse", "feature/greeting")
    assert f"commit {commit[:10]} is on branch feature/greeting" in proc.stdout
    assert git(repo, "show", "feature/greeting:README.md") == "# Demo\n\nHello, agents."
    assert git(repo, "rev-parse", "feature/greeting^") == main_before
    assert git(repo, "branch", "--list", row.work_branch) == "", "only the branch asked for"
    assert git(repo, "rev-parse", "main") == main_before

    elsewhere = cli("apply", session_id, "--to", "feature/other")
    assert_one_line_error(elsewhere, "already applied", "feature/greeting", f"git -C {repo} branch NAME {commit[:10]}")
    assert git(repo, "branch", "--list", "feature/other") == ""


def test_apply_refuses_an_existing_branch_it_does_not_build_on(repo, scripted, prefect_server):
    session_id = run_session(repo, scripted, prefect_server)
    git(repo, "checkout", "-q", "dev")
    (repo / "dev.txt").write_text("dev work\n")
    git(repo, "add", "dev.txt")
    git(repo, "commit", "-qm", "dev moves on")
    git(repo, "checkout", "-q", "main")
    dev_before = git(repo, "rev-parse", "dev")

    proc = cli("apply", session_id, "--to", "dev")
    assert_one_line_error(proc, "branch dev already exists", "not a fast-forward")
    assert git(repo, "rev-parse", "dev") == dev_before
    assert session(session_id).delivered_commit is None, "nothing recorded for a refused apply"


def test_export_writes_a_patch_git_apply_takes_at_the_base(repo, scripted, prefect_server, tmp_path):
    session_id = run_session(repo, scripted, prefect_server)
    row = session(session_id)
    patch = tmp_path / "change.patch"

    proc = cli("export", session_id[:8], "--patch", str(patch))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == [
        f"session {session_id[:8]}: wrote the patch (3 files, +2 -2) to {patch}; "
        f"apply it at {row.base_commit[:10]} with: git apply {patch}"
    ]
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(repo), str(fresh))
    git(fresh, "checkout", "-q", row.base_commit)
    git(fresh, "apply", "--check", str(patch))
    git(fresh, "apply", str(patch))
    assert (fresh / "README.md").read_text() == "# Demo\n\nHello, agents.\n"
    assert (fresh / "notes.txt").read_text() == "new notes\n" and not (fresh / "obsolete.txt").exists()

    to_stdout = cli("export", session_id, "--patch", "-")
    assert to_stdout.returncode == 0, to_stdout.stderr
    assert to_stdout.stdout == patch.read_text(), "the same patch on standard output, nothing else"
    assert to_stdout.stderr.strip().splitlines() == [
        f"session {session_id[:8]}: wrote the patch (3 files, +2 -2) to standard output; "
        f"apply it at {row.base_commit[:10]} with: git apply FILE"
    ]


def test_unknown_session_is_one_line(store):  # the store exists (opening it makes it), without that session
    assert_one_line_error(cli("export", "ffffffff-nope", "--patch", "x.patch"), "no session matches 'ffffffff-nope'")
    assert_one_line_error(cli("apply", "ffffffff-nope"), "no session matches 'ffffffff-nope'")
