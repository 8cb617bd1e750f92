"""The eval harness: suites load as they are and the judge trusts only withheld tests.

`agent-tasks eval` through the flow is in tests/flow/test_eval.py.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tasks_lib.evals.run import run_check, task_repository
from tasks_lib.evals.suite import (
    SuiteError,
    copy_agent_files,
    load_suite,
    put_reference_solution,
    restore_withheld,
)

ROOT = Path(__file__).resolve().parents[2]


def eval_data() -> Path | None:
    """The Exercism exercises (../shared/eval-data, read by path, never copied into the repository)."""
    for base in (
        os.environ.get("AGENT_TASKS_EVAL_DATA"),
        ROOT.parent / "shared" / "eval-data",
        "/work/shared/eval-data",
    ):
        if base and (Path(base) / "exercism-python").is_dir():
            return Path(base) / "exercism-python"
    return None


def judged(task, tmp_path: Path, reference: bool) -> tuple[bool, str]:
    tree = tmp_path / task.name
    tree.mkdir(parents=True)
    copy_agent_files(task, tree)
    if reference:
        put_reference_solution(task, tree)
    restore_withheld(task, tree)
    return run_check(task, tree, tmp_path / f"{task.name}-tmp")


def test_every_bugfix_task_fails_as_shipped_and_passes_with_its_reference_fix(tmp_path):
    tasks = load_suite("bugfix")
    assert len(tasks) >= 5
    for task in tasks:
        assert not judged(task, tmp_path / "before", reference=False)[0], (
            f"{task.name}: the withheld test passes unfixed"
        )
        passed, output = judged(task, tmp_path / "after", reference=True)
        assert passed, f"{task.name}: {output}"


def test_a_check_that_outruns_its_time_limit_is_stopped_and_fails(tmp_path):
    task = next(t for t in load_suite("bugfix") if t.name == "calc-add")
    tree = tmp_path / "tree"
    tree.mkdir()
    copy_agent_files(task, tree)
    put_reference_solution(task, tree)
    restore_withheld(task, tree)
    assert run_check(task, tree, tmp_path / "tmp-a")[0], "the reference fix passes within the default limit"
    slow = task.model_copy(update={"check": "sleep 30"})
    started = time.monotonic()
    passed, output = run_check(slow, tree, tmp_path / "tmp-b", timeout_s=1)
    assert not passed and "timed out after" in output
    assert time.monotonic() - started < 15, "the check was stopped at its limit, not waited for"


def test_every_exercism_exercise_passes_with_its_example_solution(tmp_path):
    data = eval_data()
    if data is None:
        pytest.skip("the Exercism eval data (../shared/eval-data) is not on this machine")
    tasks = load_suite(str(data))
    assert len(tasks) == 24
    failing = [t.name for t in tasks if not judged(t, tmp_path, reference=True)[0]]
    assert failing == []
    stub = next(t for t in tasks if t.name == "wordy")
    assert not judged(stub, tmp_path / "stub", reference=False)[0], "the stub must not pass"


def test_the_agent_sees_no_tests_no_meta_and_no_docs(tmp_path):
    task = next(t for t in load_suite("bugfix") if t.name == "calc-add")
    repo = task_repository(task, tmp_path)
    files = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file() and ".git" not in p.parts)
    assert files == ["calc.py"]
    assert "add() in calc.py returns a - b" in task.prompt() and "unit tests that you cannot see" in task.prompt()
    with pytest.raises(SuiteError, match="unknown task"):
        load_suite("bugfix", ["nope"])
    with pytest.raises(SuiteError, match="no such suite"):
        load_suite(str(tmp_path / "missing"))


def test_a_hidden_check_with_a_missing_folder_is_one_clear_error(repo):
    from pydantic import ValidationError

    from tasks_lib.domain.request import TaskRequest

    with pytest.raises(ValidationError, match="the hidden check's files must be a folder on this worker"):
        TaskRequest(repository=str(repo), instructions="x", hidden_check={"command": "pytest", "files": "/nope/x"})


def test_the_hidden_checks_files_replace_links_the_agent_left_and_never_write_through_them(tmp_path):
    from tasks_lib.steps.hidden_check import checked_copy

    workspace, files, outside = tmp_path / "ws", tmp_path / "check", tmp_path / "outside"
    for folder in (workspace, files / "tests", outside):
        folder.mkdir(parents=True)
    (files / "test_accept.py").write_text("REAL TEST\n")
    (files / "tests" / "test_more.py").write_text("MORE\n")
    (workspace / "leak.txt").write_text("agent's\n")
    (workspace / "test_accept.py").symlink_to(workspace / "leak.txt")  # a link where a test goes
    (workspace / "tests").symlink_to(outside)  # a link where a folder of tests goes
    copy = checked_copy(workspace, files, tmp_path / "copy")
    assert (copy / "test_accept.py").read_text() == "REAL TEST\n" and not (copy / "test_accept.py").is_symlink()
    assert (copy / "tests" / "test_more.py").read_text() == "MORE\n" and not (copy / "tests").is_symlink()
    assert (workspace / "leak.txt").read_text() == "agent's\n" and list(outside.iterdir()) == []
    assert not (copy / ".git").exists()


def test_pass_at_k_is_the_unbiased_estimate_over_tasks():
    from tasks_lib.evals.run import TaskOutcome, pass_at, summarize_outcomes

    outcomes = [
        *(TaskOutcome(task="a", attempt=i, solved=i == 1) for i in (1, 2, 3, 4)),  # 1 of 4
        *(TaskOutcome(task="b", attempt=i, solved=False) for i in (1, 2, 3, 4)),  # 0 of 4
    ]
    assert pass_at(outcomes, 1) == 0.125  # (1/4 + 0) / 2
    assert pass_at(outcomes, 4) == 0.5 and pass_at(outcomes, 2) == 0.25  # a: 1 - C(3,2)/C(4,2) = 1/2
    summary = summarize_outcomes(outcomes)
    assert (summary["pass_at_1"], summary["pass_at_k"], summary["k"], summary["solved"]) == (0.125, 0.5, 4, 1)
