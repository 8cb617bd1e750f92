"""Prefect task: run the agent's check command (tests, linters...) in the workspace and record the result."""

from __future__ import annotations

from prefect import get_run_logger

from tasks_lib.domain.fields import NetworkMode
from tasks_lib.domain.records import CheckResult
from tasks_lib.environments import Environment
from tasks_lib.security.secrets import Redactor
from tasks_lib.steps import step
from tasks_lib.store import Store

TAIL_CHARS = 3000


def run_check_command(
    command: str, environment: Environment, timeout_s: float, network: NetworkMode | None = None
) -> CheckResult:
    """Run the check where the agent's commands run, with the same confinement, timeout and output cap."""
    result = environment.execute(command, timeout_s=timeout_s, output_cap=2 * TAIL_CHARS + 2000, network=network)
    tail = result.output[-TAIL_CHARS:]
    return CheckResult(
        command=command,
        passed=result.exit_code == 0,
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        timed_out=result.timed_out,
        output_tail=tail,
        limit=result.limit,
        blocked=result.blocked,
    )


def fix_request(check: CheckResult, loop: str = "tools", files: list[str] | None = None) -> str:
    """The message that hands a failing check back to the agent (``loop``: the agent's loop, tools or edit;
    ``files``: the files the task showed it, which an edit-loop agent is pointed back to)."""
    if loop == "edit":
        named = f" in {', '.join(files)}" if files else ""
        then = (
            f"Fix the cause{named}: answer with the whole new content of each file you change. The tests are "
            "fixed; do not write test files."
        )
    else:
        then = "Fix the cause (do not weaken or skip the check), run it yourself to confirm, then call finish."
    return f"The check {check.headline()}. The end of its output:\n\n```\n{check.output_tail}\n```\n\n{then}"


@step("run-check")
def run_check(
    store: Store,
    session_id: str,
    environment: Environment,
    command: str,
    timeout_s: float,
    iteration: int = 1,
    fix_round: int = 0,
) -> CheckResult:
    """Run the check, store the outcome, and log it."""
    result = run_check_command(command, environment, timeout_s)
    return record_check(store, session_id, result, iteration, fix_round)


def record_check(
    store: Store, session_id: str, result: CheckResult, iteration: int, fix_round: int, what: str = "check"
) -> CheckResult:
    """Keep a check run's outcome (its output masked) in the store and log it as ``what``."""
    result.fix_rounds = fix_round
    result.output_tail = Redactor.from_env()(result.output_tail)
    store.save_check(session_id, iteration, result)
    log = get_run_logger().info if result.passed else get_run_logger().warning
    log("%s %s", what, result.headline())
    return result
