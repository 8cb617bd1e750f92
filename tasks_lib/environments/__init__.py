"""Where the agent's commands run: the Environment protocol, its `none` and `bwrap` implementations, and the choice."""

from tasks_lib.environments.base import DEFAULT_OUTPUT_CAP, CommandResult, Environment
from tasks_lib.environments.spec import (
    EnvNames,
    NetworkSetting,
    SandboxKind,
    SandboxRefused,
    SandboxSpec,
    make_environment,
    resumed_sandbox,
    sandbox_status,
    session_sandbox,
)

__all__ = ["DEFAULT_OUTPUT_CAP", "CommandResult", "EnvNames", "Environment", "NetworkSetting", "SandboxKind",
           "SandboxRefused", "SandboxSpec", "make_environment", "resumed_sandbox", "sandbox_status", "session_sandbox"]
