"""The sandbox of a session: chosen from the run's request, its agent and the settings, and kept when it resumes."""

from __future__ import annotations

from tasks_lib.agent.spec import AgentSpec
from tasks_lib.domain.egress import Egress
from tasks_lib.domain.fields import SandboxKind
from tasks_lib.domain.limits import Limits
from tasks_lib.domain.request import TaskRequest
from tasks_lib.environments.docker import DEFAULT_IMAGE
from tasks_lib.environments.spec import INSTALL_HINT, SandboxRefused, SandboxSpec, check_docker, choose_kind


def session_sandbox(
    request: TaskRequest,
    agent: AgentSpec,
    default: SandboxKind = "auto",
    limits_default: dict | None = None,
    default_image: str | None = None,
) -> SandboxSpec:
    """The sandbox of a session: the run's settings first, then the agent's, then the default (``limits_default``:
    AGENT_TASKS_LIMITS; ``default_image``: AGENT_TASKS_DOCKER_IMAGE).

    Raises SandboxRefused when the run may not start with what is available.
    """
    requested = request.sandbox or agent.sandbox or default
    image = request.image or agent.image or default_image or DEFAULT_IMAGE
    kind, note = choose_kind(requested, request.unattended, image)
    return SandboxSpec(
        kind=kind,
        image=image if kind == "docker" else None,
        network=request.network or agent.network or "off",
        setup_network=request.setup_network or agent.setup_network or "allow",
        egress=Egress().over(agent.egress).over(request.egress),
        read_only=agent.read_only_workspace,
        env=list(dict.fromkeys([*agent.env, *request.env])),
        setup_command=request.setup_command or agent.setup_command,
        setup_timeout_s=agent.setup_timeout_minutes * 60,
        limits=Limits().over(limits_default).over(agent.limits).over(request.limits),
        note=note,
    )


def resumed_sandbox(
    stored: dict | None,
    request: TaskRequest,
    agent: AgentSpec,
    default: SandboxKind = "auto",
    limits_default: dict | None = None,
    default_image: str | None = None,
) -> SandboxSpec:
    """The sandbox a resumed session continues in: the one it started with (resolved again for sessions
    stored before sandboxes existed, and its limits for sessions stored before limits existed); SandboxRefused
    when this machine cannot provide it.
    """
    if stored is None:
        return session_sandbox(request, agent, default, limits_default, default_image)
    spec = SandboxSpec.model_validate(stored)
    if "limits" not in stored:
        spec.limits = Limits().over(limits_default).over(agent.limits).over(request.limits)
    if spec.kind == "bwrap":
        from tasks_lib.environments.bwrap import SandboxUnavailable, sandbox_version

        try:
            sandbox_version()
        except SandboxUnavailable as exc:
            raise SandboxRefused(f"the session runs in bwrap, but {exc}; {INSTALL_HINT}") from None
    if spec.kind == "docker":
        check_docker(spec.image or DEFAULT_IMAGE)
    return spec
