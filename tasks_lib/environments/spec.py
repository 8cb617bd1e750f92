"""Which environment a session's commands run in: the choice of sandbox and what it lets through."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from tasks_lib.environments.base import Environment

if TYPE_CHECKING:
    from tasks_lib.agents import AgentSpec
    from tasks_lib.models import TaskRequest

SandboxKind = Literal["auto", "bwrap", "none"]
INSTALL_HINT = "install bubblewrap (apt-get install bubblewrap, dnf install bubblewrap)"


class SandboxRefused(ValueError):
    """A run that may not start with the sandbox it would get; the message says what to do."""


class SandboxSpec(BaseModel):
    """How one session's commands are confined, resolved from the request, the agent and the settings."""

    kind: Literal["bwrap", "none"]
    network: bool = False
    read_only: bool = False
    env: list[str] = Field(default_factory=list)
    setup_command: str | None = None
    setup_timeout_s: float = 900
    note: str = ""  # why this kind, when it was not simply asked for
    unconfined_warning: bool = False  # auto fell back to none

    def describe(self) -> str:
        """One line for the log, the CLI and the summary facts."""
        if self.kind == "none":
            return "none (unconfined)" + (f": {self.note}" if self.note else "")
        mode = "read-only" if self.read_only else "writable"
        env = f", env {', '.join(self.env)}" if self.env else ""
        return f"bwrap (workspace {mode}, network {'on' if self.network else 'off'}{env})"


def choose_kind(requested: SandboxKind, unattended: bool) -> tuple[Literal["bwrap", "none"], str, bool]:
    """The sandbox a run gets: (kind, note, whether that is an unconfined fallback).

    ``auto`` is bwrap when bubblewrap works here; without it, unattended runs (schedules, events)
    are refused and runs someone started by hand go on unconfined with a warning.
    """
    from tasks_lib.environments.bwrap import SandboxUnavailable, sandbox_version

    if requested == "none":
        return "none", "sandbox: none was chosen explicitly", False
    try:
        sandbox_version()
        return "bwrap", "", False
    except SandboxUnavailable as exc:
        problem = str(exc)
    if requested == "bwrap":
        raise SandboxRefused(f"sandbox: bwrap was asked for, but {problem}; {INSTALL_HINT}")
    if unattended:
        raise SandboxRefused(
            f"refusing to run an agent started by a schedule or an event without a sandbox: {problem}; "
            f"{INSTALL_HINT}, or opt out explicitly with sandbox: none in the workflow or agent"
        )
    return "none", f"{problem}, so agent commands run unconfined ({INSTALL_HINT}, or set sandbox: none)", True


def make_environment(spec: SandboxSpec, workspace: str | Path, scratch: str | Path,
                     read_only_paths: list[str] | None = None, hidden_paths: list[str] | None = None) -> Environment:
    """The environment that runs a session's commands as ``spec`` says."""
    if spec.kind == "none":
        from tasks_lib.environments.local import LocalEnvironment

        return LocalEnvironment(workspace, spec.env)
    from tasks_lib.environments.bwrap import BwrapEnvironment

    return BwrapEnvironment(workspace, scratch, read_only=spec.read_only, network=spec.network, env_names=spec.env,
                            read_only_paths=read_only_paths or [], hidden_paths=hidden_paths or [])


def session_sandbox(request: "TaskRequest", agent: "AgentSpec", default: SandboxKind = "auto") -> SandboxSpec:
    """The sandbox of a session: the run's settings first, then the agent's, then the default.

    Raises SandboxRefused when the run may not start with what is available.
    """
    requested = request.sandbox or agent.sandbox or default
    kind, note, fallback = choose_kind(requested, request.unattended)
    return SandboxSpec(
        kind=kind,
        network=request.network if request.network is not None else bool(agent.network),
        read_only=agent.read_only_workspace,
        env=list(dict.fromkeys([*agent.env, *request.env])),
        setup_command=request.setup_command or agent.setup_command,
        setup_timeout_s=agent.setup_timeout_minutes * 60,
        note=note,
        unconfined_warning=fallback,
    )
