"""The Docker pool's job variables: what every flow-run container gets, and what stays out of the deployment."""

from __future__ import annotations

import json

from tasks_lib.ops.docker_pool import DockerPoolSettings, job_variables, secret_block

URL = "postgresql+psycopg://agent:s3cret-pw@db/agent_tasks"


def test_keys_and_the_store_url_are_secret_block_references_never_values():
    settings = DockerPoolSettings(
        store_url=URL, home="/srv/agent-home", env={"OPENAI_API_BASE": "http://model:8080/v1"},
        secrets={"OPENAI_API_KEY": "sk-live-0123456789"}, mounts=["/srv/repos:/srv/repos:ro"], user="1000:1000",
    )  # fmt: skip
    variables = job_variables(settings)
    shown = json.dumps(variables)
    assert "s3cret-pw" not in shown and "sk-live-0123456789" not in shown
    env = variables["env"]
    assert env["AGENT_TASKS_DB_URL"] == "{{ prefect.blocks.secret.agent-tasks-agent-tasks-db-url }}"
    assert env["OPENAI_API_KEY"] == "{{ prefect.blocks.secret." + secret_block("OPENAI_API_KEY") + " }}"
    assert env["OPENAI_API_BASE"] == "http://model:8080/v1", "plain variables stay plain"
    assert env["AGENT_TASKS_HOME"] == "/srv/agent-home" and env["AGENT_TASKS_SANDBOX"] == "bwrap"
    assert variables["volumes"] == ["/srv/agent-home:/srv/agent-home", "/srv/repos:/srv/repos:ro"]
    assert variables["image_pull_policy"] == "Never"
    assert variables["container_create_kwargs"] == {
        "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
        "user": "1000:1000",
    }


def test_the_job_variables_are_what_prefect_docker_accepts():
    from prefect_docker.worker import DockerWorkerJobConfiguration

    variables = job_variables(DockerPoolSettings(store_url=URL, home="/srv/agent-home"))
    assert set(variables) <= set(DockerWorkerJobConfiguration.model_fields)


def test_the_pool_worker_takes_the_docker_type_without_a_warning():
    import subprocess
    import sys

    code = "import tasks_lib.ops.docker_worker as w; from prefect.workers.base import BaseWorker; "
    code += "print(BaseWorker.get_worker_class_from_type('docker').__name__)"
    done = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "SandboxReadyDockerWorker", "the pool's type resolves to the sandbox-ready worker"
