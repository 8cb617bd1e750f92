"""Sessions on a Prefect Docker work pool: each flow run is a container of the worker image (`agent-tasks image
build`), with the store on a shared database, the home on a Docker volume, and bubblewrap inside the container for
the agent's commands. A review suspends the run (no container waits); the decision resumes it in a new one.

`prepare_pool` creates the pool and the `agent-task/<name>` deployment; `agent-tasks pool worker --pool P` on each
Docker host (prefect-docker's worker, tasks_lib/ops/docker_worker.py) runs its flow runs.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, Field

from tasks_lib.errors import AgentTasksError

POOL = "agent-docker"
DEPLOYMENT = "agent-task-docker"
FLOW = "agent-task"
ENTRYPOINT = "flows/agent_task.py:agent_task"
PROJECT_IN_IMAGE = "/opt/agent-tasks"  # the Dockerfile's AGENT_TASKS_PROJECT_DIR
# bubblewrap inside a container needs to create namespaces and mount its own /proc: Docker's default seccomp and
# AppArmor profiles refuse the first, its masked /proc paths the second (unmasked by the pool's worker,
# tasks_lib/ops/docker_worker.py: Docker's API has no security option for it).
BWRAP_SECURITY = ["seccomp=unconfined", "apparmor=unconfined"]


class PoolError(AgentTasksError, RuntimeError):
    """The Docker pool or its deployment could not be set up; the message says what to do."""


class DockerPoolSettings(BaseModel):
    """What each flow run's container gets."""

    image: str = "agent-tasks-worker:latest"
    store_url: str = Field(description="The shared store (AGENT_TASKS_DB_URL): a database every container reaches.")
    home: str = Field(
        description="A folder on the Docker host, mounted at the same path in every container as AGENT_TASKS_HOME: "
        "mirrors are reused between runs, and a run whose container died is settled with its diff by the host."
    )
    user: str = Field(default_factory=lambda: f"{os.getuid()}:{os.getgid()}", description="uid:gid in the container.")
    network_mode: str | None = "host"  # the Prefect API, the store and the model as the worker's host sees them
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(
        default_factory=dict, description="Variables kept as Prefect Secret blocks (keys), never in the deployment."
    )
    mounts: list[str] = Field(default_factory=list)  # extra volumes, `host:container[:ro]` (local repositories)
    memory: str | None = "6g"


def secret_block(variable: str) -> str:
    """The name of the Prefect Secret block holding ``variable`` for the pool's runs."""
    return "agent-tasks-" + variable.lower().replace("_", "-")


def secret_references(settings: DockerPoolSettings) -> dict[str, str]:
    """Each secret variable (the store's URL among them) as the placeholder the worker resolves when it starts a
    container: the value stays in Prefect's Secret block, out of the deployment and its UI."""
    names = ["AGENT_TASKS_DB_URL", *settings.secrets]
    return {name: "{{ prefect.blocks.secret." + secret_block(name) + " }}" for name in names}


def save_secrets(settings: DockerPoolSettings) -> None:
    """Store the secret variables as Prefect Secret blocks (replacing older values)."""
    from prefect.blocks.system import Secret

    for name, value in {"AGENT_TASKS_DB_URL": settings.store_url, **settings.secrets}.items():
        Secret(value=value).save(secret_block(name), overwrite=True)


def job_variables(settings: DockerPoolSettings) -> dict[str, Any]:
    """The deployment's job variables for the Docker worker (prefect-docker's DockerWorkerJobConfiguration)."""
    env = {
        **secret_references(settings),
        "AGENT_TASKS_HOME": settings.home,
        "PREFECT_HOME": f"{settings.home}/prefect",
        "HOME": f"{settings.home}/user",
        "AGENT_TASKS_SANDBOX": "bwrap",  # refuse rather than run agents unconfined if bubblewrap cannot work
        **settings.env,
    }
    variables: dict[str, Any] = {
        "image": settings.image,
        "image_pull_policy": "Never",  # built here (no registry); a registry's image would say IfNotPresent
        "auto_remove": True,
        "stream_output": True,
        "env": env,
        "volumes": [f"{settings.home}:{settings.home}", *settings.mounts],
        "container_create_kwargs": {"security_opt": BWRAP_SECURITY, "user": settings.user},
    }
    if settings.network_mode:
        variables["network_mode"] = settings.network_mode
    if settings.memory:
        variables["mem_limit"] = settings.memory
        variables["memswap_limit"] = settings.memory
    return variables


def pool_template() -> dict[str, Any]:
    """The Docker worker's default base job template (from prefect-docker)."""
    try:
        from prefect_docker.worker import DockerWorker
    except ImportError:
        raise PoolError("a Docker pool needs prefect-docker: pip install 'prefect-agent-tasks[docker]'") from None
    return DockerWorker.get_default_base_job_template()


def prepare_pool(settings: DockerPoolSettings, pool: str = POOL) -> str:
    """Create the Docker pool (if missing) and the deployment of the agent task on it; the deployment's id."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.utilities.callables import parameter_schema

    from flows.agent_task import agent_task

    save_secrets(settings)
    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(pool)
            if found.type != "docker":
                raise PoolError(f"the work pool {pool} exists with type {found.type}, not docker")
        except ObjectNotFound:
            try:
                client.create_work_pool(WorkPoolCreate(name=pool, type="docker", base_job_template=pool_template()))
            except ObjectAlreadyExists:
                pass
        flow_id = client.create_flow_from_name(FLOW)
        deployment_id = client.create_deployment(
            flow_id=flow_id,
            name=deployment_name(pool),
            entrypoint=ENTRYPOINT,
            work_pool_name=pool,
            job_variables=job_variables(settings),
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": PROJECT_IN_IMAGE}}],
            parameter_openapi_schema=parameter_schema(agent_task).model_dump(),
            tags=["agent-tasks", "docker"],
            description="Run an agent on a repository in a container of the worker image (a Docker pool).",
        )
    return str(deployment_id)


def deployment_name(pool: str = POOL) -> str:
    """The agent task's deployment on ``pool`` (without the flow's name)."""
    return DEPLOYMENT if pool == POOL else f"agent-task-{pool}"


def worker_command(pool: str = POOL) -> str:
    """The command that starts a worker for the pool on a Docker host."""
    return f"agent-tasks pool worker --pool {pool}"
