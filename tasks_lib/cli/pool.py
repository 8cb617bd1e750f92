"""`agent-tasks pool docker`: a Prefect Docker work pool running each session in a container of the worker image;
and `run --pool`: an on-demand task sent to a pool's deployment (tasks_lib/ops/docker_pool.py)."""

from __future__ import annotations

import typer

from tasks_lib.cli.common import CliError, err, out

pool_app = typer.Typer(help="Work pools that run sessions elsewhere: a Docker pool.", no_args_is_help=True)


def _pairs(values: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name:
            raise CliError(f"{what} {value!r}: write NAME=VALUE")
        pairs[name] = setting
    return pairs


@pool_app.command("docker")
def docker_pool(
    pool: str = typer.Option("agent-docker", "--pool", help="The work pool's name."),
    image: str = typer.Option(
        "agent-tasks-worker:latest", "--image", help="The worker image (agent-tasks image build)."
    ),
    home: str = typer.Option(
        None, "--home", help="A folder on the Docker host mounted at the same path as every run's home (default: ours)."
    ),
    env: list[str] = typer.Option([], "--env", help="NAME=VALUE for every run's container (a model's API base)."),
    secret: list[str] = typer.Option(
        [], "--secret", help="NAME=VALUE for every run's container, kept in a Prefect Secret block (API keys)."
    ),
    mount: list[str] = typer.Option([], "--mount", help="HOST:CONTAINER[:ro] for every run (local repositories)."),
    network_mode: str = typer.Option("host", "--network-mode", help="Docker network mode of the runs' containers."),
) -> None:
    """Create the Docker pool and the agent-task deployment on it, and say how to start its workers."""
    from tasks_lib.config import load_settings
    from tasks_lib.environments.docker import DockerUnavailable, check_image
    from tasks_lib.ops.docker_pool import (
        FLOW,
        DockerPoolSettings,
        PoolError,
        deployment_name,
        prepare_pool,
        worker_command,
    )

    settings = load_settings()
    if not settings.db_url or not settings.db_url.startswith("postgresql"):
        raise CliError(
            'a Docker pool\'s runs share one store: set AGENT_TASKS_DB_URL=postgresql+psycopg://… (README "Scale out")'
        )
    try:
        check_image(image)
    except DockerUnavailable as exc:
        raise CliError(str(exc)) from None
    chosen = DockerPoolSettings(
        image=image,
        store_url=settings.db_url,
        home=home or str(settings.home),
        env=_pairs(env, "--env"),
        secrets=_pairs(secret, "--secret"),
        mounts=mount,
        network_mode=network_mode or None,
    )
    try:
        deployment = prepare_pool(chosen, pool)
    except PoolError as exc:
        raise CliError(str(exc)) from None
    err.print(f"pool {pool} (docker) and deployment {FLOW}/{deployment_name(pool)} ({deployment}) are ready")
    out.print(f"start a worker on each Docker host: {worker_command(pool)}")
    out.print(f"send a task there: agent-tasks run REPO --task TEXT --pool {pool}")


@pool_app.command("worker")
def pool_worker(
    pool: str = typer.Option("agent-docker", "--pool", help="The Docker pool to serve."),
    name: str = typer.Option(None, "--name", help="The worker's name (default: Prefect's)."),
    limit: int = typer.Option(None, "--limit", min=1, help="Flow runs (containers) at once on this host."),
) -> None:
    """Run the Docker pool's flow runs on this Docker host until Ctrl-C (prefect-docker's worker)."""
    try:
        from tasks_lib.ops.docker_worker import main
    except ImportError:
        raise CliError("a Docker worker needs prefect-docker: pip install 'prefect-agent-tasks[docker]'") from None
    main(["--pool", pool, *(["--name", name] if name else []), *(["--limit", str(limit)] if limit else [])])


def run_on_pool(request_fields: dict, pool: str) -> None:
    """Send the task to the pool's agent-task deployment and print its flow run and how to follow it."""
    from prefect.deployments import run_deployment

    from tasks_lib.ops.docker_pool import FLOW, deployment_name

    name = f"{FLOW}/{deployment_name(pool)}"
    try:
        flow_run = run_deployment(name, parameters={"request": request_fields}, timeout=0)
    except Exception as exc:  # the deployment is missing, or the API does not answer
        raise CliError(f"could not send the task to {name}: {exc}; create it with agent-tasks pool docker") from None
    out.print(f"flow run {flow_run.id} queued on {name}")
    out.print("its session appears in agent-tasks inbox once a worker starts it")
