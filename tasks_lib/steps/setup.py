"""Prefect task: the session's setup command (installing dependencies), run before the agent.

It runs in the same sandbox as the agent's commands but with the network on, so dependencies can be
fetched; the agent's own commands then get the network as configured.
"""

from __future__ import annotations

from prefect import get_run_logger

from tasks_lib.domain.fields import NetworkMode
from tasks_lib.domain.records import CheckResult
from tasks_lib.environments import Environment
from tasks_lib.security.secrets import Redactor
from tasks_lib.steps import step
from tasks_lib.steps.check import run_check_command


@step("setup")
def run_setup(environment: Environment, command: str, timeout_s: float, network: NetworkMode = "allow") -> CheckResult:
    """Run the setup command with its network (by default only the registries it needs); the result says whether
    it passed and how it ended."""
    logger = get_run_logger()
    logger.info("setup: %s (network %s)", command, network)
    result = run_check_command(command, environment, timeout_s, network=network)
    for line in result.blocked:
        logger.warning("setup: network blocked %s", line)
    result.output_tail = Redactor.from_env()(result.output_tail)
    (logger.info if result.passed else logger.error)("setup %s", result.headline())
    return result
