"""The agent's check command (tests, linters...), run in the workspace after the agent finishes."""

from __future__ import annotations

from pydantic import BaseModel

from tasks_lib.environments import Environment

TAIL_CHARS = 3000


class CheckResult(BaseModel):
    """Pass or fail of a check, how long it took and the end of its output."""

    command: str
    passed: bool
    exit_code: int | None
    duration_s: float
    timed_out: bool = False
    output_tail: str = ""
    fix_rounds: int = 0

    def headline(self) -> str:
        """One line: the command, the verdict and the time."""
        if self.timed_out:
            verdict = "timed out"
        else:
            verdict = "passed" if self.passed else f"failed (exit {self.exit_code})"
        rounds = f" after {self.fix_rounds} fix round{'s' if self.fix_rounds != 1 else ''}" if self.fix_rounds else ""
        return f"`{self.command}` {verdict} in {self.duration_s:.1f} s{rounds}"


def run_check_command(command: str, environment: Environment, timeout_s: float, network: bool | None = None) -> CheckResult:
    """Run the check where the agent's commands run, with the same confinement, timeout and output cap."""
    result = environment.execute(command, timeout_s=timeout_s, output_cap=2 * TAIL_CHARS + 2000, network=network)
    tail = result.output[-TAIL_CHARS:]
    return CheckResult(
        command=command, passed=result.exit_code == 0, exit_code=result.exit_code, duration_s=result.duration_s,
        timed_out=result.timed_out, output_tail=tail,
    )


def fix_request(check: CheckResult) -> str:
    """The message that hands a failing check back to the agent."""
    return (
        f"The check {check.headline()}. The end of its output:\n\n```\n{check.output_tail}\n```\n\n"
        "Fix the cause (do not weaken or skip the check), run it yourself to confirm, then call finish."
    )
