"""The orchestrator's git on a workspace runs in a jail: a nested repository or submodule the agent made, whose config
names a clean filter, a textconv driver, an external diff and a pager, cannot make it run a command as the
orchestrator — even when git is led into it — and recursion into it is off besides."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tasks_lib.config import load_settings
from tasks_lib.git.cli import run_git, workspace_jail
from tasks_lib.git.delivery import commit_workspace
from tasks_lib.git.diff import capture_workspace_diff
from tasks_lib.git.repo import create_workspace, update_mirror
from tasks_lib.security.jail import usable_bwrap
from tests.conftest import SECRET, git

FORCE_RECURSION = ("-c", "diff.ignoreSubmodules=none", "-c", "submodule.recurse=true")


def plain_git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """git as an unguarded caller would run it, with the orchestrator's environment (the model key in it)."""
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ}, timeout=60)


@pytest.fixture
def trapped(repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A real session workspace holding a nested repository registered as a submodule, whose config runs a marker
    command from a clean filter, a textconv driver, an external diff and a pager; the marker's host path."""
    settings = load_settings()
    mirror, _ = update_mirror(str(repo), settings.mirrors_dir)
    base = git(repo, "rev-parse", "HEAD")
    ws = settings.workspaces_dir / f"jail-{tmp_path.name}"
    create_workspace(mirror, ws, "agent/jail", base, str(repo))
    marker = tmp_path / "outside" / "marker"
    marker.parent.mkdir()
    nested = ws / "nested"
    nested.mkdir()
    git(nested, "init", "-q", "-b", "main")
    (nested / "data.txt").write_text("one\n")
    git(nested, "add", "data.txt")
    git(nested, "commit", "-qm", "nested")
    hit = f"\"sh -c 'echo ran:$OPENAI_API_KEY >> {marker}; cat'\""  # quoted: `;` starts a comment in git config
    with open(nested / ".git" / "config", "a") as config:
        config.write(
            f'[filter "evil"]\n\tclean = {hit}\n\tsmudge = cat\n\trequired = false\n'
            f'[diff "evil"]\n\ttextconv = {hit}\n[diff]\n\texternal = {hit}\n[core]\n\tpager = {hit}\n'
        )
    (nested / ".gitattributes").write_text("* filter=evil diff=evil\n")
    (nested / "data.txt").write_text("two\n")  # dirty: git status in it runs the clean filter
    (ws / ".gitmodules").write_text('[submodule "nested"]\n\tpath = nested\n\turl = ./nested\n')
    return ws, marker


def test_git_in_a_workspace_runs_jailed_so_a_nested_repository_s_commands_do_not_reach_the_host(trapped):
    ws, marker = trapped
    assert usable_bwrap(load_settings().bwrap), "bubblewrap is installed for the tests (.ci/run)"
    assert workspace_jail(ws, {}) is not None and workspace_jail(ws.parent.parent, {}) is None

    commit = commit_workspace(ws, "agent work\n", "sid-jail")  # `git add -A` makes the nested repository a gitlink
    assert git(ws, "ls-tree", commit, "nested").split()[1] == "commit"
    run_git(*FORCE_RECURSION, "status", "--porcelain", cwd=ws)  # led into the submodule on purpose
    run_git(*FORCE_RECURSION, "diff", "HEAD~1", "--submodule=diff", cwd=ws, check=False)
    diff = capture_workspace_diff(ws, git(ws, "rev-parse", "HEAD~1"))
    assert any(f.path == "nested" for f in diff.files)
    assert not marker.exists(), marker.read_text()

    # Without the jail the same calls run the nested repository's commands as the orchestrator, key and all.
    plain_git(ws, *FORCE_RECURSION, "status", "--porcelain")
    assert marker.exists() and SECRET in marker.read_text()


def test_recursion_into_submodules_is_off_even_where_git_runs_unjailed(trapped, tmp_path):
    ws, marker = trapped
    commit_workspace(ws, "agent work\n", "sid-jail")
    elsewhere = tmp_path / "copy"  # outside the workspaces folder: run_git does not jail it
    subprocess.run(["cp", "-a", str(ws), str(elsewhere)], check=True)
    assert workspace_jail(elsewhere, {}) is None

    run_git("status", "--porcelain", cwd=elsewhere)
    run_git("diff", "HEAD~1", "--stat", cwd=elsewhere)
    assert not marker.exists(), marker.read_text()
    plain_git(elsewhere, "status", "--porcelain")
    assert marker.exists(), "git's defaults recurse into the dirty submodule and run its filter"
