"""Where the agent's commands run: the Environment protocol, its `none` and `bwrap` implementations, and the choice."""

from tasks_lib.environments.base import DEFAULT_OUTPUT_CAP, CommandResult, Environment
from tasks_lib.environments.spec import SandboxRefused, SandboxSpec, limits_status, make_environment, sandbox_status

__all__ = [
    "DEFAULT_OUTPUT_CAP",
    "CommandResult",
    "Environment",
    "SandboxRefused",
    "SandboxSpec",
    "make_environment",
    "sandbox_status",
    "limits_status",
]
