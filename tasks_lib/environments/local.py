"""The `none` environment: commands run as plain child processes of the orchestrator, unconfined.

They get a timeout, an output cap, their whole process group killed, and an allow-listed
environment — but they can read and write whatever the user running agent-tasks can.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tasks_lib.domain.limits import Limits
from tasks_lib.environments.base import (
    DEFAULT_OUTPUT_CAP,
    Command,
    CommandResult,
    argv,
    command_env,
    run_process,
    shown,
)
from tasks_lib.environments.limits import DiskBudget, LimitGuard


class LocalEnvironment:
    """Runs commands in the workspace as ordinary processes (no sandbox)."""

    name = "none"

    def __init__(self, workspace: str | Path, env_names: Sequence[str] = (), limits: Limits | None = None):
        self.workspace = Path(workspace)
        self.env_names = tuple(env_names)
        self.limits = limits
        self.disk = DiskBudget(limits, self.workspace, None) if limits else None

    def execute(
        self, command: Command, timeout_s: float, output_cap: int = DEFAULT_OUTPUT_CAP, network: bool | None = None
    ) -> CommandResult:
        """Run the command in the workspace; ``network`` cannot be taken away here and is ignored."""
        env = command_env(self.env_names, home=os.environ.get("HOME"))
        guard = LimitGuard(self.limits, self.disk) if self.limits else None
        return run_process(argv(command), self.workspace, env, timeout_s, output_cap, shown(command), guard)

    def close(self) -> None:
        """Nothing runs between commands here."""
