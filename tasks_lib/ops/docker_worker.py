"""The Docker pool's worker: prefect-docker's DockerWorker, with the flow-run containers' /proc left unmasked.

bubblewrap inside a flow-run container mounts a /proc of its own for the agent's commands; the kernel allows that
only where the container's /proc has no paths masked over it. The docker CLI says so with `--security-opt
systempaths=unconfined`; Docker's API with empty `MaskedPaths` and `ReadonlyPaths`, which prefect-docker's options
cannot set. Nothing else changes: the same pool type (`docker`), job template and job variables.
"""

from __future__ import annotations

import argparse
import asyncio
import warnings
from typing import Any

from prefect_docker.worker import DockerWorker

# Defining the subclass registers it for the worker type `docker` in place of prefect-docker's class, which is the
# point in the worker's process (the same pool type and template); Prefect warns about every such override.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"Type 'SandboxReadyDockerWorker' .* will be overridden")

    class SandboxReadyDockerWorker(DockerWorker):
        """A DockerWorker whose containers may mount their own /proc (systempaths=unconfined)."""

        def _create_container(self, docker_client: Any, **kwargs: Any) -> Any:
            create = docker_client.api.create_container

            def unmasked(*args: Any, host_config: dict | None = None, **options: Any) -> Any:
                if host_config is not None:
                    host_config["MaskedPaths"] = []
                    host_config["ReadonlyPaths"] = []
                return create(*args, host_config=host_config, **options)

            docker_client.api.create_container = unmasked
            try:
                return super()._create_container(docker_client, **kwargs)
            finally:
                docker_client.api.create_container = create


async def serve(pool: str, name: str | None = None, limit: int | None = None) -> None:
    """Poll ``pool`` and run its flow runs in containers until cancelled."""
    async with SandboxReadyDockerWorker(work_pool_name=pool, name=name, limit=limit) as worker:
        await worker.start(printer=print)


def main(argv: list[str] | None = None) -> None:
    """`python -m tasks_lib.ops.docker_worker --pool P [--name N] [--limit L]`."""
    parser = argparse.ArgumentParser(prog="agent-tasks pool worker", description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default="agent-docker")
    parser.add_argument("--name")
    parser.add_argument("--limit", type=int)
    options = parser.parse_args(argv)
    try:
        asyncio.run(serve(options.pool, options.name, options.limit))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
