"""The eval flow: every task of a suite through the agent task flow (no review), judged by withheld tests."""

from __future__ import annotations

import tasks_lib  # noqa: F401  (sets quiet defaults before Prefect and litellm read their settings)

# isort: split
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks_lib import progress
from tasks_lib.evals.run import CHECK_TIMEOUT_S, TaskOutcome, run_task, summarize_outcomes, table_rows
from tasks_lib.evals.suite import load_suite


@flow(name="agent-eval", flow_run_name="eval {suite}: {model}", validate_parameters=False)
def agent_eval(
    suite: str = "bugfix",
    model: str | None = None,
    agent: str = "default",
    tasks: list[str] | None = None,
    attempts: int = 1,
    jobs: int = 1,
    temperature: float | None = None,
    fix_rounds: int = 1,
    check_timeout_s: float = CHECK_TIMEOUT_S,
) -> dict[str, Any]:
    """Run a suite's tasks (each ``attempts`` times, ``jobs`` at once) and report per task and in total; a task's
    check is stopped (and fails) after ``check_timeout_s``."""
    logger = get_run_logger()
    chosen = load_suite(suite, tasks)
    work = [(task, attempt) for task in chosen for attempt in range(1, attempts + 1)]

    def one(item) -> TaskOutcome:
        task, attempt = item
        outcome = run_task(task, model, agent, attempt, temperature, fix_rounds, check_timeout_s)
        logger.info(
            "%s #%d: %s in %d steps, %.0f s (%s)",
            task.name,
            attempt,
            "solved" if outcome.solved else "not solved",
            outcome.steps,
            outcome.wall_s,
            outcome.end_reason or outcome.status,
        )
        progress.publish("eval_task", outcome=outcome, total=len(work))
        return outcome

    if jobs > 1:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            outcomes = list(pool.map(one, work))
    else:
        outcomes = [one(item) for item in work]
    summary = summarize_outcomes(outcomes)
    key = "agent-eval-" + "".join(c if c.isalnum() else "-" for c in suite.lower()).strip("-")[:40]
    create_table_artifact(table_rows(outcomes), key=key or "agent-eval", description=f"eval of {suite} with {model}")
    create_markdown_artifact(
        f"**{summary['solved']} of {summary['tasks']} tasks solved** after up to {fix_rounds} fix rounds, "
        f"{summary['solved_first_round']} at the first round ({suite}, {model}, agent {agent}); "
        f"median {summary['median_steps']} steps, {summary['median_wall_s']} s; "
        f"{summary['failed_sessions']} failed sessions, {summary['crashed']} crashed.",
        key=f"{key}-summary",
        description="eval summary",
    )
    return {
        "suite": suite,
        "model": model,
        "agent": agent,
        "fix_rounds": fix_rounds,
        "check_timeout_s": check_timeout_s,
        "summary": summary,
        "outcomes": [o.model_dump() for o in outcomes],
    }
