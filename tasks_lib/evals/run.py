"""Run eval tasks through the real flow (no review) and judge each result with its withheld tests."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tasks_lib.evals.suite import EvalTask, copy_agent_files, restore_withheld

CHECK_TIMEOUT_S = 60.0  # a check's time limit, as Aider's benchmark gives its unit tests
OUTPUT_TAIL = 2000
# How a summary says that nothing was changed; an empty diff with none of these is counted as a false claim.
NO_CHANGE_PHRASES = (
    "no change",
    "nothing was changed",
    "no files were changed",
    "did not change",
    "not changed",
    "unchanged",
    "no modifications",
    "nothing changed",
)


class TaskOutcome(BaseModel):
    """How one attempt at one task went."""

    task: str
    attempt: int = 1
    solved: bool = False  # after the fix rounds, judged again on the session's final patch
    solved_first_round: bool = False  # the hidden check passed on the agent's first finish
    fix_rounds_used: int = 0
    status: str = ""
    end_reason: str | None = None
    reason: str = ""
    session_id: str | None = None
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    wall_s: float = 0.0
    first_prompt_tokens: int = 0  # the first request as the provider counted it: system prompt, tools and task
    edit_failures: int = 0
    edits: int = 0  # edit_file and write_file calls, for the well-formed rate
    tool_errors: int = 0
    stuck_events: int = 0
    files_changed: list[str] = Field(default_factory=list)
    empty_diff_claimed_changes: bool = False
    check_output: str = ""
    models: list[str] = Field(default_factory=list)  # the models that took steps, in turn (escalation: several)


def _git(cwd: Path, *args: str) -> None:
    from tasks_lib.git.cli import run_git

    run_git("-c", "user.name=agent-tasks eval", "-c", "user.email=eval@localhost", *args, cwd=cwd)


def task_repository(task: EvalTask, root: Path) -> Path:
    """A fresh git repository holding the task's starting files (tests withheld)."""
    repo = root / task.name
    repo.mkdir(parents=True)
    copy_agent_files(task, repo)
    _git(repo, "init", "-q", "--template=", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", f"eval task {task.name}")
    return repo


def judge(task: EvalTask, patch: bytes, work: Path, timeout_s: float = CHECK_TIMEOUT_S) -> tuple[bool, str]:
    """Apply the session's patch to the starting files, put the withheld tests back, run the check."""
    from tasks_lib.git.cli import GitError, run_git

    tree = work / "judge"
    tree.mkdir()
    copy_agent_files(task, tree)
    if patch:
        try:
            run_git("apply", "--binary", "-", cwd=tree, input=patch)
        except GitError as exc:
            return False, f"the session's patch does not apply: {exc}"
    restore_withheld(task, tree)
    return run_check(task, tree, work / "judge-tmp", timeout_s)


def run_check(task: EvalTask, tree: Path, scratch: Path, timeout_s: float = CHECK_TIMEOUT_S) -> tuple[bool, str]:
    """Run the task's check in ``tree`` — sandboxed, since it runs the agent's code, and stopped after ``timeout_s``
    — and return (passed, output)."""
    from tasks_lib.environments import SandboxSpec, make_environment
    from tasks_lib.environments.spec import choose_kind

    kind, _ = choose_kind("auto", unattended=False)
    environment = make_environment(SandboxSpec(kind=kind), tree, scratch)
    try:
        result = environment.execute(task.check, timeout_s=timeout_s, output_cap=2 * OUTPUT_TAIL)
    finally:
        environment.close()
    return result.exit_code == 0, result.render()[-OUTPUT_TAIL:]


def run_task(
    task: EvalTask,
    model: str | None,
    agent: str,
    attempt: int = 1,
    temperature: float | None = None,
    fix_rounds: int = 1,
    check_timeout_s: float = CHECK_TIMEOUT_S,
) -> TaskOutcome:
    """One attempt: a session on a fresh repository of the task whose withheld tests are its hidden check (their
    output goes back to the agent for ``fix_rounds`` more rounds while they fail; each run of them stopped after
    ``check_timeout_s``), then the judge."""
    from flows.agent_task import SessionFailed, agent_task
    from tasks_lib.domain.checks import HiddenCheck
    from tasks_lib.domain.request import TaskRequest
    from tasks_lib.store import open_store

    outcome = TaskOutcome(task=task.name, attempt=attempt)
    with tempfile.TemporaryDirectory(prefix=f"agent-eval-{task.name}-") as tmp:
        work = Path(tmp)
        repo = task_repository(task, work)
        withheld = work / "withheld"
        withheld.mkdir()
        restore_withheld(task, withheld)
        request = TaskRequest(
            repository=str(repo),
            instructions=task.prompt(),
            agent=agent,
            model=model,
            review=False,
            temperature=temperature,
            hidden_check=HiddenCheck(
                command=task.check,
                files=str(withheld),
                fix_rounds=fix_rounds,
                timeout_minutes=check_timeout_s / 60,
            ),
        )
        started = time.monotonic()
        try:
            session_id = agent_task(request).session_id
        except SessionFailed as exc:
            session_id = exc.session_id
        outcome.wall_s = round(time.monotonic() - started, 2)
        store = open_store()
        row = store.get_session(session_id)
        diff = store.latest_diff(session_id)
        summary = store.latest_summary(session_id)
        facts: dict[str, Any] = summary.facts if summary else {}
        steps = store.steps(session_id)
        calls = [c for s in steps for c in s.tool_calls]
        outcome.first_prompt_tokens = steps[0].prompt_tokens if steps else 0
        outcome.models = list(dict.fromkeys(s.model or "?" for s in steps))
        outcome.session_id, outcome.status, outcome.reason = session_id, row.status, row.status_reason
        outcome.end_reason = row.end_reason
        outcome.steps, outcome.cost_usd = row.steps_used, row.cost_usd
        outcome.prompt_tokens, outcome.completion_tokens = row.prompt_tokens, row.completion_tokens
        outcome.edit_failures = sum(1 for c in calls if c.name == "edit_file" and not c.ok)
        outcome.edits = sum(1 for c in calls if c.name in ("edit_file", "write_file"))
        checks = store.checks(session_id)
        outcome.solved_first_round = bool(checks and checks[0].passed)
        outcome.fix_rounds_used = max((c.fix_round for c in checks), default=0)
        outcome.tool_errors = sum(1 for c in calls if not c.ok)
        outcome.stuck_events = int(facts.get("stuck_events") or 0)
        outcome.files_changed = [f["path"] for f in (diff.files if diff else [])]
        narrative = summary.markdown.split("### Facts")[0].lower() if summary else ""
        outcome.empty_diff_claimed_changes = bool(
            summary and not outcome.files_changed and not any(p in narrative for p in NO_CHANGE_PHRASES)
        )
        outcome.solved, outcome.check_output = judge(task, diff.patch if diff else b"", work, check_timeout_s)
    return outcome


def summarize_outcomes(outcomes: list[TaskOutcome]) -> dict[str, Any]:
    """Totals over a run: solved tasks (any attempt), medians, and what went wrong."""
    tasks = sorted({o.task for o in outcomes})
    solved = [t for t in tasks if any(o.solved for o in outcomes if o.task == t)]
    first = [t for t in tasks if any(o.solved_first_round for o in outcomes if o.task == t)]
    edits, failures = sum(o.edits for o in outcomes), sum(o.edit_failures for o in outcomes)
    k = min((sum(1 for o in outcomes if o.task == t) for t in tasks), default=1)
    return {
        "tasks": len(tasks),
        "attempts": len(outcomes),
        "solved": len(solved),
        "solve_rate": round(len(solved) / len(tasks), 3) if tasks else 0.0,
        "pass_at_1": pass_at(outcomes, 1),
        "pass_at_k": pass_at(outcomes, k) if k > 1 else None,
        "k": k,
        "solved_first_round": len(first),
        # escalation: the ladder moves on only when a model failed, so a task solved by one model was solved by the first
        "solved_by_first_model": sum(
            1 for t in solved if any(o.solved and len(o.models) <= 1 for o in outcomes if o.task == t)
        ),
        "escalated": sum(1 for o in outcomes if len(o.models) > 1),
        "first_round_rate": round(len(first) / len(tasks), 3) if tasks else 0.0,
        "well_formed_edit_rate": round(1 - failures / edits, 3) if edits else None,
        "median_steps": statistics.median(o.steps for o in outcomes) if outcomes else 0,
        "median_wall_s": round(statistics.median(o.wall_s for o in outcomes), 1) if outcomes else 0,
        "median_first_prompt_tokens": statistics.median(o.first_prompt_tokens for o in outcomes) if outcomes else 0,
        "prompt_tokens": sum(o.prompt_tokens for o in outcomes),
        "completion_tokens": sum(o.completion_tokens for o in outcomes),
        "cost_usd": None if all(o.cost_usd is None for o in outcomes) else sum(o.cost_usd or 0 for o in outcomes),
        "crashed": sum(1 for o in outcomes if o.status == "failed" and "crash" in o.reason),
        "failed_sessions": sum(1 for o in outcomes if o.status == "failed"),
        "edit_failures": sum(o.edit_failures for o in outcomes),
        "stuck_events": sum(o.stuck_events for o in outcomes),
        "empty_diff_claimed_changes": sum(1 for o in outcomes if o.empty_diff_claimed_changes),
    }


def pass_at(outcomes: list[TaskOutcome], k: int) -> float:
    """The unbiased pass@k over tasks (n attempts each, c of them solved: 1 - C(n-c, k) / C(n, k)), as the
    papers that sample several solutions report it."""
    from math import comb

    rates = []
    for task in sorted({o.task for o in outcomes}):
        n = sum(1 for o in outcomes if o.task == task)
        c = sum(1 for o in outcomes if o.task == task and o.solved)
        rates.append(1.0 if n - c < k else 1 - comb(n - c, k) / comb(n, k))
    return round(sum(rates) / len(rates), 3) if rates else 0.0


def table_rows(outcomes: list[TaskOutcome]) -> list[dict[str, Any]]:
    """One row per attempt, for the terminal and the Prefect table artifact."""
    return [
        {
            "task": o.task,
            "attempt": o.attempt,
            "first": "yes" if o.solved_first_round else "no",
            "solved": "yes" if o.solved else "no",
            "fixes": o.fix_rounds_used,
            "end": o.end_reason or o.status,
            "steps": o.steps,
            "tokens": o.prompt_tokens + o.completion_tokens,
            "cost": "-" if o.cost_usd is None else f"${o.cost_usd:.4f}",
            "wall_s": o.wall_s,
            "edit_failures": o.edit_failures,
            "stuck": o.stuck_events,
            "session": (o.session_id or "")[:8],
        }
        for o in outcomes
    ]
