"""Prefect task: run the agent's check command in the workspace and record the result."""

from __future__ import annotations

from prefect import get_run_logger

from tasks_lib.check import CheckResult, run_check_command
from tasks_lib.environments import Environment
from tasks_lib.secrets import Redactor
from tasks_lib.steps import step
from tasks_lib.store import Store


@step("run-check")
def run_check(store: Store, session_id: str, environment: Environment, command: str, timeout_s: float,
              iteration: int = 1, fix_round: int = 0) -> CheckResult:
    """Run the check, store the outcome, and log it."""
    result = run_check_command(command, environment, timeout_s)
    result.fix_rounds = fix_round
    result.output_tail = Redactor.from_env()(result.output_tail)
    store.save_check(session_id, iteration, result)
    log = get_run_logger().info if result.passed else get_run_logger().warning
    log("check %s", result.headline())
    return result
