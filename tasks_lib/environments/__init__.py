"""Where the agent's commands run: the Environment protocol, its `none` and `bwrap` implementations, and the choice."""

from tasks_lib.environments.base import DEFAULT_OUTPUT_CAP, CommandResult, Environment
from tasks_lib.environments.spec import (SandboxKind, SandboxRefused, SandboxSpec, choose_kind, make_environment,
                                          session_sandbox)

__all__ = ["DEFAULT_OUTPUT_CAP", "CommandResult", "Environment", "SandboxKind", "SandboxRefused", "SandboxSpec",
           "choose_kind", "make_environment", "session_sandbox"]
