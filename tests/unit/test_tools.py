"""The agent's tools on a real worktree: confinement, exact edits, search, and command safety."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks_lib.agent.tools import Toolbox
from tasks_lib.environments.bwrap import BwrapEnvironment
from tasks_lib.environments.local import LocalEnvironment
from tests.conftest import SECRET, git


def environment(kind: str, root: Path, scratch: Path, env_names=()):
    """The environment a session would get: plain processes, or a bubblewrap sandbox around the workspace."""
    if kind == "none":
        return LocalEnvironment(root, env_names)
    return BwrapEnvironment(root, scratch, env_names=env_names)


@pytest.fixture(params=["none", "bwrap"])
def box(repo: Path, tmp_path: Path, request) -> Toolbox:
    """The tools on a real repository, run in each environment: they must behave the same in both."""
    env = environment(request.param, repo, tmp_path / "scratch", ["HARMLESS_SETTING"])
    return Toolbox(repo, command_timeout_s=10, output_cap=2000, environment=env)


@pytest.mark.parametrize("path", ["../outside.txt", "src/../../outside.txt", "/etc/passwd", ".git/config"])
def test_paths_outside_the_workspace_are_refused(box, path):
    for name, args in [
        ("read_file", {"path": path}),
        ("write_file", {"path": path, "content": "x"}),
        ("edit_file", {"path": path, "old": "a", "new": "b"}),
        ("list_files", {"path": path}),
    ]:
        outcome = box.execute(name, args)
        assert not outcome.ok and outcome.output.startswith("error:"), (name, outcome.output)
    assert not (box.root.parent / "outside.txt").exists()


def test_symlink_pointing_outside_is_refused(box, tmp_path):
    secret_file = tmp_path / "private.txt"
    secret_file.write_text("private data")
    (box.root / "link.txt").symlink_to(secret_file)
    (box.root / "linkdir").symlink_to(tmp_path)
    read = box.execute("read_file", {"path": "link.txt"})
    write = box.execute("write_file", {"path": "linkdir/evil.txt", "content": "x"})
    assert not read.ok and "outside" in read.output and "private data" not in read.output
    assert not write.ok and not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("path", [".git/config", ".GIT/config", "sub/.git/config", "sub/.Git/hooks/pre-commit", ".git"])
def test_git_directories_are_refused_at_any_depth_and_in_any_case(box, path):
    (box.root / "sub").mkdir()
    for name, args in [
        ("write_file", {"path": path, "content": "[core]\n\tfsmonitor = touch pwned\n"}),
        ("read_file", {"path": path}),
        ("list_files", {"path": path}),
        ("search", {"pattern": "x", "path": path}),
    ]:
        outcome = box.execute(name, args)
        assert not outcome.ok and "git directories (.git) are off limits" in outcome.output, (name, outcome.output)
    assert not (box.root / "sub" / ".git").exists() and not (box.root / ".GIT").exists()
    assert "fsmonitor" not in (box.root / ".git" / "config").read_text()


def test_path_rules_apply_to_where_a_path_leads(repo):
    from tasks_lib.agent.policy import ToolPolicy

    (repo / "docs").mkdir()
    (repo / "docs" / "src-link").symlink_to(repo / "src")
    (repo / "docs" / "git-link").symlink_to(repo / ".git")
    box = Toolbox(repo, tools=ToolPolicy.parse("Read, Edit(docs/**), Write(docs/**)"))
    around = box.execute("write_file", {"path": "docs/src-link/app.py", "content": "hijacked\n"})
    into_git = box.execute("write_file", {"path": "docs/git-link/config", "content": "x"})
    allowed = box.execute("write_file", {"path": "docs/guide.md", "content": "ok\n"})
    assert around.denied and "not allowed for 'src/app.py'" in around.output
    assert not into_git.ok and "off limits" in into_git.output
    assert allowed.ok and (repo / "docs" / "guide.md").read_text() == "ok\n"
    assert "greet" in (repo / "src" / "app.py").read_text()


def test_symlink_inside_the_workspace_is_fine(box):
    (box.root / "alias.md").symlink_to(box.root / "README.md")
    assert "Hello world." in box.execute("read_file", {"path": "alias.md"}).output


def test_read_file_numbers_lines_and_takes_ranges(box):
    whole = box.execute("read_file", {"path": "src/app.py"})
    part = box.execute("read_file", {"path": "src/app.py", "start_line": 2, "end_line": 2})
    assert whole.output.splitlines()[0] == "     1\tdef greet(name):"
    assert part.output.splitlines()[0] == "     2\t    return 'Hello ' + name" and "[lines 2-2 of 5]" in part.output
    assert "binary file" in box.execute("read_file", {"path": "logo.bin"}).output
    assert "no such file" in box.execute("read_file", {"path": "nope.py"}).output


def test_edit_file_needs_an_exact_unique_match(box):
    (box.root / "twice.txt").write_text("same\nsame\n")
    missing = box.execute("edit_file", {"path": "src/app.py", "old": "Goodbye", "new": "x"})
    several = box.execute("edit_file", {"path": "twice.txt", "old": "same", "new": "x"})
    good = box.execute("edit_file", {"path": "src/app.py", "old": "'Hello '", "new": "'Hi '"})
    assert not missing.ok and "not found" in missing.output
    assert not several.ok and "occurs 2 times" in several.output
    assert (box.root / "twice.txt").read_text() == "same\nsame\n"
    assert good.ok and "'Hi ' + name" in (box.root / "src/app.py").read_text()


def test_write_file_creates_directories(box):
    outcome = box.execute("write_file", {"path": "a/b/c.txt", "content": "deep\n"})
    assert outcome.ok and (box.root / "a/b/c.txt").read_text() == "deep\n"


def test_list_files_includes_new_files_and_skips_ignored_ones(box):
    (box.root / ".gitignore").write_text("build/\n")
    (box.root / "build").mkdir()
    (box.root / "build" / "out.o").write_text("x")
    (box.root / "fresh.py").write_text("x = 1\n")
    listing = box.execute("list_files", {"path": "."}).output.splitlines()
    assert "fresh.py" in listing and "src/app.py" in listing and "build/out.o" not in listing


def test_search_finds_regex_matches_in_tracked_and_new_files(box):
    (box.root / "fresh.py").write_text("def greet_again():\n    pass\n")
    found = box.execute("search", {"pattern": r"def greet\w*\(", "path": "."})
    assert "src/app.py:1:def greet(name):" in found.output and "fresh.py:1:def greet_again():" in found.output
    assert box.execute("search", {"pattern": "zzz_not_there"}).output == "no matches"
    bad = box.execute("search", {"pattern": "(unclosed"})
    assert not bad.ok and "invalid regular expression" in bad.output


def test_search_is_fast_on_a_large_repository(tmp_path):
    big = tmp_path / "big"
    big.mkdir()
    git(big, "init", "-q")
    for d in range(20):
        (big / f"pkg{d}").mkdir()
        for f in range(100):
            (big / f"pkg{d}" / f"m{f}.py").write_text("".join(f"value_{i} = {i}\n" for i in range(50)))
    (big / "pkg7" / "m42.py").write_text("NEEDLE = 'here'\n")
    git(big, "add", "-A")
    box = Toolbox(big)
    found = box.execute("search", {"pattern": "NEEDLE"})
    assert found.output == "pkg7/m42.py:1:NEEDLE = 'here'"
    capped = box.execute("search", {"pattern": r"value_1\b"})
    assert capped.output.count("\n") == 200 and "more matches" in capped.output


def test_unknown_tool_and_bad_arguments_are_errors_for_the_model(box):
    unknown = box.execute("delete_everything", {})
    assert unknown.invalid and "there is no tool 'delete_everything'" in unknown.output
    assert "edit_file(path, old, new, replace_all?)" in unknown.output, "the model is told what it can call"
    bad_json = box.execute("read_file", "{not json")
    assert bad_json.invalid and "not valid JSON" in bad_json.output
    assert "read_file expects read_file(path, start_line?, end_line?)" in bad_json.output
    missing = box.execute("read_file", {"start_line": 1})
    assert missing.invalid and "path: Field required" in missing.output
    not_an_object = box.execute("list_files", "[1, 2]")
    assert not_an_object.invalid and "must be a JSON object" in not_an_object.output


def test_excluded_tools_are_not_offered_and_cannot_be_called(repo):
    box = Toolbox(repo, tools=("read_file", "finish"))
    assert [s["function"]["name"] for s in box.schemas()] == ["read_file", "finish"]
    assert "there is no tool 'write_file'" in box.execute("write_file", {"path": "x", "content": "y"}).output


def test_command_runs_in_the_workspace_and_reports_exit_code(box):
    outcome = box.execute("run_command", {"command": "pwd && ls src && exit 3"})
    assert not outcome.ok
    assert outcome.output.splitlines()[0] == "[exit code 3]"
    assert str(box.root) in outcome.output and "app.py" in outcome.output


def test_command_timeout_kills_the_whole_process_group(box):
    marker = box.root / "survived"
    outcome = box.execute("run_command", {"command": "(sleep 3; touch survived) & sleep 30", "timeout": 1})
    assert not outcome.ok and "timed out after" in outcome.output
    import time

    time.sleep(3.5)
    assert not marker.exists(), "a child of the timed-out command kept running"


def test_command_output_is_capped_keeping_head_and_tail(box):
    outcome = box.execute("run_command", {"command": "echo FIRST; seq 1 200000; echo LAST"})
    assert outcome.output.splitlines()[1] == "FIRST" and outcome.output.rstrip().endswith("LAST")
    assert "bytes of output omitted" in outcome.output
    assert len(outcome.output) < 2200


def test_command_environment_is_an_allow_list(box, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_sometokenvalue")
    monkeypatch.setenv("MY_SERVICE_SECRET", "hunter2hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "awssecretvalue")
    monkeypatch.setenv("AGENT_TASKS_DB_URL", "postgresql://u:pw@db/x")
    monkeypatch.setenv("SOME_OTHER_SETTING", "not-listed")
    monkeypatch.setenv("HARMLESS_SETTING", "visible")
    monkeypatch.setenv("LC_TIME", "C")
    env_dump = box.execute("run_command", {"command": "env"}).output
    for value in (SECRET, "ghp_sometokenvalue", "hunter2hunter2", "awssecretvalue", "postgresql://", "not-listed"):
        assert value not in env_dump
    names = {line.split("=", 1)[0] for line in env_dump.splitlines()[1:] if "=" in line}
    assert "HARMLESS_SETTING=visible" in env_dump and "LC_TIME=C" in env_dump  # listed under env:, and LC_*
    assert names <= {
        "PATH",
        "HOME",
        "LANG",
        "TERM",
        "LC_TIME",
        "HARMLESS_SETTING",
        "PWD",
        "SHLVL",
        "_",
        "OLDPWD",
        "GIT_TERMINAL_PROMPT",
        "PAGER",
        "GIT_PAGER",
    }, names
    assert os.environ["OPENAI_API_KEY"] == SECRET  # the orchestrator itself keeps its credentials


@pytest.mark.parametrize("kind", ["none", "bwrap"])
def test_commands_do_not_hang_on_background_children(tmp_path, kind):
    result = environment(kind, tmp_path, tmp_path / "scratch").execute("sleep 60 & echo started", timeout_s=10)
    assert result.exit_code == 0 and "started" in result.output and result.duration_s < 5
