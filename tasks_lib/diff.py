"""Capture a workspace's full change against its base commit, as a re-appliable patch with stats."""

from __future__ import annotations

import tempfile
from pathlib import Path

import unidiff

from tasks_lib.gitcli import GitError, run_git
from tasks_lib.models import DiffResult, FileChange

DIFF_TIMEOUT_S = 300
DIFF_OPTIONS = ("--binary", "-M", "--no-color", "--no-ext-diff", "--no-textconv")


class DiffError(RuntimeError):
    """The diff could not be taken."""


def _git(workspace: str | Path, *args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> bytes:
    try:
        return run_git(*args, cwd=workspace, env=env, input=input, timeout_s=DIFF_TIMEOUT_S).stdout
    except GitError as exc:
        raise DiffError(str(exc)) from None


def _index_env(tmp: str) -> dict[str, str]:
    """A throwaway index, so the workspace's own index is left alone."""
    return {"GIT_INDEX_FILE": str(Path(tmp) / "index")}


def workspace_patch(workspace: str | Path, base_commit: str) -> bytes:
    """Every change in the workspace (new, deleted, renamed, binary) as a git patch against the base.

    Uses a throwaway index, so the workspace's own index and files are left as they are.
    """
    with tempfile.TemporaryDirectory(prefix="agent-diff-") as tmp:
        env = _index_env(tmp)
        _git(workspace, "read-tree", base_commit, env=env)
        _git(workspace, "add", "-A", ".", env=env)
        return _git(workspace, "diff", "--cached", *DIFF_OPTIONS, base_commit, env=env)


def parse_patch(patch: bytes, base_commit: str) -> DiffResult:
    """Per-file and total statistics of a git patch."""
    text = patch.decode("utf-8", errors="replace")
    files: list[FileChange] = []
    for pf in unidiff.PatchSet(text):
        if pf.is_added_file:
            kind = "added"
        elif pf.is_removed_file:
            kind = "deleted"
        elif pf.is_rename:
            kind = "renamed"
        else:
            kind = "modified"
        old = pf.source_file.removeprefix("a/") if pf.is_rename else None
        files.append(
            FileChange(path=pf.path, old_path=old, kind=kind, added=pf.added, removed=pf.removed, binary=pf.is_binary_file)
        )
    return DiffResult(
        base_commit=base_commit,
        files=files,
        added=sum(f.added for f in files),
        removed=sum(f.removed for f in files),
        patch=patch,
    )


def capture_workspace_diff(workspace: str | Path, base_commit: str) -> DiffResult:
    """The workspace's change against the base commit, parsed."""
    return parse_patch(workspace_patch(workspace, base_commit), base_commit)


def _tree(workspace: str | Path, base_commit: str, env: dict[str, str], patch: bytes | None) -> str:
    _git(workspace, "read-tree", base_commit, env=env)
    if patch is None:
        _git(workspace, "add", "-A", ".", env=env)
    elif patch:
        _git(workspace, "apply", "--cached", "--binary", "-", env=env, input=patch)
    return _git(workspace, "write-tree", env=env).decode().strip()


def capture_increment(workspace: str | Path, base_commit: str, previous_patch: bytes) -> DiffResult:
    """The change since the last reviewed state (base commit + its patch) to the workspace now."""
    with tempfile.TemporaryDirectory(prefix="agent-diff-") as tmp:
        env = _index_env(tmp)
        before = _tree(workspace, base_commit, env, previous_patch)
        after = _tree(workspace, base_commit, env, None)
        patch = _git(workspace, "diff", *DIFF_OPTIONS, before, after)
    return parse_patch(patch, base_commit)
