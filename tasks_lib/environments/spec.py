"""Which environment a session's commands run in: the choice of sandbox and what it lets through."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field

from tasks_lib.domain.egress import Egress
from tasks_lib.domain.fields import NetworkMode, SandboxKind, network_word
from tasks_lib.domain.limits import Limits
from tasks_lib.environments.base import Environment
from tasks_lib.errors import AgentTasksError

INSTALL_HINT = "install bubblewrap (apt-get install bubblewrap, dnf install bubblewrap)"
Kind = Literal["bwrap", "docker", "none"]


class SandboxRefused(AgentTasksError, ValueError):
    """A run that may not start with the sandbox it would get; the message says what to do."""


class SandboxSpec(BaseModel):
    """How one session's commands are confined, resolved from the request, the agent and the settings."""

    kind: Kind
    image: str | None = None  # docker: the image commands run in
    network: Annotated[NetworkMode, BeforeValidator(network_word)] = "off"
    setup_network: Annotated[NetworkMode, BeforeValidator(network_word)] = "allow"
    egress: Egress = Field(default_factory=Egress)
    read_only: bool = False
    env: list[str] = Field(default_factory=list)
    setup_command: str | None = None
    setup_timeout_s: float = 900
    limits: Limits = Field(default_factory=Limits)
    note: str = ""  # why this kind, when it was not simply asked for

    def describe(self) -> str:
        """One line for the log, the CLI and the summary facts."""
        if self.kind == "none":
            return "none (unconfined)" + (f": {self.note}" if self.note else "")
        mode = "read-only" if self.read_only else "writable"
        env = f", env {', '.join(self.env)}" if self.env else ""
        network = f"allow: {self.egress.describe()}" if self.network == "allow" else self.network
        if self.kind == "docker":
            return f"docker (image {self.image}, workspace {mode}, network {network}{env})"
        return f"bwrap (workspace {mode}, network {network}{env})"

    def describe_limits(self) -> str:
        """The limits each command is held to, and how, in one line."""
        from tasks_lib.environments.limits import describe_limits

        if self.kind == "docker":
            from tasks_lib.environments.docker import describe_docker_limits

            return describe_docker_limits(self.limits)
        return describe_limits(self.limits)


def choose_kind(requested: SandboxKind, unattended: bool, image: str | None = None) -> tuple[Kind, str]:
    """The sandbox a run gets, and a note on why when it was not simply asked for.

    ``auto`` is bwrap when bubblewrap works here; without it, unattended runs (schedules, events)
    are refused and runs someone started by hand go on unconfined with a warning. ``docker`` needs a Docker
    engine that answers and holds ``image``; without them the run is refused.
    """
    from tasks_lib.environments.bwrap import SandboxUnavailable, sandbox_version

    if requested == "none":
        return "none", "sandbox: none was chosen explicitly"
    if requested == "docker":
        check_docker(image or "")
        return "docker", ""
    try:
        sandbox_version()
        return "bwrap", ""
    except SandboxUnavailable as exc:
        problem = str(exc)
    if requested == "bwrap":
        raise SandboxRefused(f"sandbox: bwrap was asked for, but {problem}; {INSTALL_HINT}")
    if unattended:
        raise SandboxRefused(
            f"refusing to run an agent started by a schedule or an event without a sandbox: {problem}; "
            f"{INSTALL_HINT}, or opt out explicitly with sandbox: none in the workflow or agent"
        )
    return "none", (
        f"{problem}, so agent commands run unconfined, and so does the orchestrator's own git on what they write "
        f"({INSTALL_HINT}, or set sandbox: none)"
    )


def check_docker(image: str) -> str:
    """The Docker engine's version when it can run commands in ``image``; SandboxRefused saying what to do else."""
    from tasks_lib.environments.docker import DockerUnavailable, check_image

    try:
        return check_image(image)
    except DockerUnavailable as exc:
        raise SandboxRefused(f"sandbox: docker was asked for, but {exc}") from None


def make_environment(
    spec: SandboxSpec,
    workspace: str | Path,
    scratch: str | Path,
    read_only_paths: list[str] | None = None,
    hidden_paths: list[str] | None = None,
) -> Environment:
    """The environment that runs a session's commands as ``spec`` says."""
    if spec.kind == "none":
        from tasks_lib.environments.local import LocalEnvironment

        return LocalEnvironment(workspace, spec.env, limits=spec.limits)
    if spec.kind == "docker":
        from tasks_lib.environments.docker import DockerEnvironment

        return DockerEnvironment(
            workspace,
            scratch,
            image=spec.image or "",
            read_only=spec.read_only,
            network=spec.network,
            env_names=spec.env,
            read_only_paths=read_only_paths or [],
            limits=spec.limits,
            egress=spec.egress,
        )
    from tasks_lib.environments.bwrap import BwrapEnvironment

    return BwrapEnvironment(
        workspace,
        scratch,
        read_only=spec.read_only,
        network=spec.network,
        env_names=spec.env,
        read_only_paths=read_only_paths or [],
        hidden_paths=hidden_paths or [],
        limits=spec.limits,
        egress=spec.egress,
    )


def limits_status(layer: dict | None = None) -> str:
    """One line on the limits commands get here by default (AGENT_TASKS_LIMITS over the built-in ones), for `up`."""
    from tasks_lib.environments.limits import describe_limits

    return describe_limits(Limits().over(layer))


def sandbox_status(default: SandboxKind = "auto") -> str:
    """One line on the sandbox runs get here by default, for `agent-tasks up`."""
    from tasks_lib.environments.bwrap import SandboxUnavailable, sandbox_version

    if default == "none":
        return (
            "none (AGENT_TASKS_SANDBOX=none): agent commands run unconfined (the orchestrator's git on their "
            "workspaces is still jailed where bubblewrap works)"
        )
    try:
        return (
            f"bwrap ({sandbox_version()}): agent commands are confined, and the orchestrator's git on their "
            "workspaces too; network off unless a workflow or agent opens it"
        )
    except SandboxUnavailable as exc:
        if default == "bwrap":
            return f"bwrap required (AGENT_TASKS_SANDBOX=bwrap), but {exc}: every run will be refused; {INSTALL_HINT}"
        return (
            f"none: {exc} — runs started by schedules or events will be refused, manual runs go unconfined, and "
            f"so does the orchestrator's own git on what they write; {INSTALL_HINT}"
        )
