"""Prefect task: run a hidden check on a copy of the workspace with its files laid over it, confined like the
agent's commands, and record the outcome. The agent's sandbox hides the check's folder (tasks_lib/session/context.py),
and the copy lives in the session's private area, so the agent can neither read the check's files nor change what
the check runs against — only see its output when it fails."""

from __future__ import annotations

import shutil
from pathlib import Path

from tasks_lib.domain.checks import HiddenCheck
from tasks_lib.domain.records import CheckResult
from tasks_lib.environments import SandboxSpec, make_environment
from tasks_lib.steps import step
from tasks_lib.steps.check import record_check, run_check_command
from tasks_lib.store import Store


def checked_copy(workspace: str | Path, files: str | Path, dest: Path) -> Path:
    """A copy of the workspace (without its git directory; links copied as links) with the check's files laid
    over it."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(workspace, dest, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    lay_over(Path(files), dest)
    return dest


def lay_over(files: Path, dest: Path) -> None:
    """Copy each of the check's files to the same place under ``dest``, replacing whatever the agent left there:
    a link in its place, or in place of a folder on its way, is removed, never written through."""
    for source in sorted(p for p in files.rglob("*") if p.is_file()):
        rel = source.relative_to(files)
        target = dest
        for part in rel.parts[:-1]:  # the folders on the way: real folders, never links
            target = target / part
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                target.unlink()
            target.mkdir(exist_ok=True)
        target = target / rel.parts[-1]
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        shutil.copyfile(source, target)


@step("run-hidden-check")
def run_hidden_check(
    store: Store,
    session_id: str,
    workspace: str | Path,
    check: HiddenCheck,
    sandbox: SandboxSpec,
    area: Path,
    hidden: list[str],
    iteration: int = 1,
    fix_round: int = 0,
) -> CheckResult:
    """Run the hidden check on a fresh copy in ``area`` (the session's private folder), store the outcome, log it."""
    copy = checked_copy(workspace, check.files, area / "tree")
    spec = sandbox.model_copy(update={"network": "off", "read_only": False})
    environment = make_environment(spec, copy, area / "tmp", hidden_paths=hidden)
    (area / "tmp").mkdir(parents=True, exist_ok=True)
    try:
        result = run_check_command(check.command, environment, check.timeout_minutes * 60)
    finally:
        environment.close()
        shutil.rmtree(copy, ignore_errors=True)
    return record_check(store, session_id, result, iteration, fix_round, "hidden check")
