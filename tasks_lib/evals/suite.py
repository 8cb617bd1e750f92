"""Eval suites: folders of tasks in Exercism's layout, and how a task's repository and judge are built.

A suite is a folder with one folder per task. A task folder holds:

- the files the agent starts from (a stub, or code with a bug);
- ``.docs/instructions.md`` (and ``instructions.append.md``): the task's text;
- ``.meta/config.json``: ``files.solution`` (what the agent should change), ``files.test`` (tests that are
  withheld from the agent and copied back before judging, so editing a test cannot pass it) and
  ``files.example`` (a reference solution, used only to check the harness); optionally ``check``,
  the command that judges (default: unittest on the withheld ``*_test.py`` modules).

The agent never sees anything whose name starts with a dot (``.meta``, ``.docs``, ``.approaches``).
Exercism's practice exercises load unchanged.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from tasks_lib.errors import AgentTasksError

SHIPPED_SUITES = {"bugfix": "tasks_lib.evals.bugfix"}


class SuiteError(AgentTasksError, ValueError):
    """A suite or task folder that cannot be used; the message names it and says why."""


class EvalTask(BaseModel):
    """One task of a suite, as read from its folder."""

    name: str
    folder: Path
    instructions: str
    solution: list[str]
    tests: list[str]
    examples: list[str] = Field(default_factory=list)
    check: str

    def prompt(self) -> str:
        """What the agent is asked to do."""
        files = ", ".join(self.solution)
        return (
            f"{self.instructions.strip()}\n\nWork in {files}; keep the names of its functions and classes. "
            "The solution is checked with unit tests that you cannot see."
        )


def suite_path(suite: str) -> Path:
    """The folder of a suite: a shipped suite's name, or a path."""
    if suite in SHIPPED_SUITES:
        return Path(str(resources.files(SHIPPED_SUITES[suite])))
    path = Path(suite).expanduser()
    if not path.is_dir():
        raise SuiteError(f"{suite}: no such suite (shipped: {', '.join(SHIPPED_SUITES)}; or give a folder of tasks)")
    return path


def load_task(folder: Path) -> EvalTask:
    """A task from its folder (SuiteError naming the folder when it is incomplete)."""
    config_file = folder / ".meta" / "config.json"
    try:
        config = json.loads(config_file.read_text())
        files = config["files"]
        solution, tests = list(files["solution"]), list(files["test"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SuiteError(f"{folder.name}: {config_file.name} must list files.solution and files.test ({exc})") from None
    docs = folder / ".docs"
    parts = [p.read_text() for p in (docs / "instructions.md", docs / "instructions.append.md") if p.is_file()]
    if not parts:
        raise SuiteError(f"{folder.name}: no .docs/instructions.md")
    modules = [Path(t).stem for t in tests if t.endswith("_test.py")]
    check = config.get("check") or "python3 -m unittest " + " ".join(modules)
    return EvalTask(
        name=folder.name,
        folder=folder,
        instructions="\n\n".join(parts),
        solution=solution,
        tests=tests,
        examples=list(files.get("example") or []),
        check=check,
    )


def load_suite(suite: str, only: list[str] | None = None) -> list[EvalTask]:
    """The tasks of a suite, sorted by name; ``only`` picks a subset by name (SuiteError for unknown names)."""
    root = suite_path(suite)
    tasks = [load_task(p) for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith((".", "_"))]
    if only:
        known = {t.name for t in tasks}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise SuiteError(f"unknown task(s) {', '.join(unknown)} in {suite}; tasks: {', '.join(sorted(known))}")
        tasks = [t for t in tasks if t.name in only]
    if not tasks:
        raise SuiteError(f"{suite}: no tasks")
    return tasks


def agent_files(task: EvalTask) -> list[Path]:
    """The files the agent starts from: everything but dot-entries and the withheld tests."""
    withheld = set(task.tests)
    return [
        p
        for p in sorted(task.folder.rglob("*"))
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(task.folder).parts)
        and p.relative_to(task.folder).as_posix() not in withheld
        and "__pycache__" not in p.parts
    ]


def copy_agent_files(task: EvalTask, dest: Path) -> None:
    """Put the agent's starting files into ``dest``."""
    for path in agent_files(task):
        target = dest / path.relative_to(task.folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def restore_withheld(task: EvalTask, dest: Path) -> None:
    """Copy the withheld tests back over whatever the agent left in their place."""
    for rel in task.tests:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(task.folder / rel, target)


def put_reference_solution(task: EvalTask, dest: Path) -> None:
    """Replace the solution files with the task's reference solution (to check the harness)."""
    if len(task.examples) != len(task.solution):
        raise SuiteError(f"{task.name}: files.example must name one reference file per solution file")
    for example, solution in zip(task.examples, task.solution):
        shutil.copyfile(task.folder / example, dest / solution)
