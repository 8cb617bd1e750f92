"""`sandbox: docker`: agent commands in a container of a project image, on a real Docker engine (.ci/run starts
dockerd). Each test tries to break a rule — reach the network or the worker's files, write outside the workspace or
into .git, outgrow the memory or process limit, leave processes behind — and checks nothing got through.
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tasks_lib.domain.egress import Egress
from tasks_lib.domain.limits import Limits
from tasks_lib.testing.scripted_server import calls, tool
from tests.helpers import MODEL, run_task

FINISH = calls(tool("finish", summary="done"))
TOKEN = "ghp_DOCKERTEAM0token0value012345678"


@pytest.fixture(scope="session")
def base_image() -> str:
    """The default sandbox image, made from Debian's packages by `agent-tasks image build --base-only` (cached)."""
    from tasks_lib.environments.docker import DEFAULT_IMAGE, DockerUnavailable, docker_version
    from tasks_lib.ops.image import build

    try:
        docker_version()
    except DockerUnavailable as exc:
        pytest.fail(f"these tests need a Docker engine ({exc}); .ci/run installs docker.io and starts dockerd")
    build(base_only=True, say=lambda line: None)
    return DEFAULT_IMAGE


def sandbox_containers(workspace: Path) -> list[str]:
    """The sandbox containers of a workspace still on the engine."""
    from tasks_lib.environments.docker import LABEL, docker

    done = docker(["ps", "-aq", "--filter", f"label={LABEL}.workspace={workspace}"])
    return done.stdout.split()


def environment(tmp_path: Path, image: str, **options):
    from tasks_lib.environments.docker import DockerEnvironment

    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    return DockerEnvironment(workspace, tmp_path / "scratch", image=image, **options)


def test_a_docker_session_reaches_no_secret_no_network_and_writes_only_its_workspace(
    repo, scripted, store, base_image, listener, monkeypatch, tmp_path
):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    secret_dir = Path(os.environ.get("AGENT_TASKS_HOME", str(tmp_path))).parent / "docker-redteam-secret"
    secret_dir.mkdir(parents=True, exist_ok=True)
    (secret_dir / "key.txt").write_text(TOKEN)
    probes = [
        "env; cat /proc/1/environ | tr '\\0' '\\n'",
        f"cat {secret_dir}/key.txt; ls {os.environ['AGENT_TASKS_HOME']} 2>&1",
        listener.probe,
        f"echo pwned > {repo}/PWNED.txt; touch .git/PWNED; echo pwned > /etc/PWNED; echo made > made.txt",
        "python3 -c 'x = bytearray(600 * 1024 * 1024); print(len(x))'",
        "echo still here; cat /etc/os-release | head -1",
    ]
    server = scripted([calls(tool("run_command", command=c)) for c in probes] + [FINISH])
    result = run_task(repo, "Look around", sandbox="docker", limits={"memory": "256MiB"})

    assert result.status.value == "completed", result.reason
    outputs = [c.result for s in store.steps(result.session_id) for c in s.tool_calls]
    assert "HOME=/tmp/home" in outputs[0], "the commands ran in the container"
    assert "GITHUB_TOKEN" not in outputs[0] and "OPENAI_API_BASE" not in outputs[0]
    assert "No such file or directory" in outputs[1]
    assert listener.hits == [] and "b'reached'" not in outputs[2]
    assert "Read-only file system" in outputs[3]
    assert outputs[4].startswith("[killed: memory limit 256 MiB"), outputs[4]
    assert "still here" in outputs[5] and "bookworm" in outputs[5], "the session went on after the kill"
    assert TOKEN not in json.dumps(server.requests)
    assert not (repo / "PWNED.txt").exists() and not Path("/etc/PWNED").exists()
    workspace = Path(result.workspace)
    assert not (workspace / ".git" / "PWNED").exists()
    assert (workspace / "made.txt").read_text() == "made\n"
    assert store.get_session(result.session_id).files_changed == 1, "the diff holds made.txt"
    assert (workspace / "made.txt").stat().st_uid == os.getuid(), "files belong to the worker's user"
    summary = store.latest_summary(result.session_id).markdown
    assert f"docker (image {base_image}" in summary
    assert sandbox_containers(workspace) == [], "the session's container was removed"


def test_a_run_asking_for_an_image_the_engine_lacks_is_refused_before_any_work(repo, scripted, base_image):
    from tasks_lib.domain.request import TaskRequest
    from tasks_lib.session.preflight import BadRequest, preflight

    with pytest.raises(BadRequest) as refused:
        preflight(TaskRequest(repository=str(repo), instructions="x", model=MODEL, sandbox="docker", image="no/such:1"))
    assert "the Docker engine has no image no/such:1 (docker build or docker pull no/such:1)" in str(refused.value)


def test_commands_are_held_to_processes_time_and_leave_nothing_running(tmp_path, base_image):
    env = environment(tmp_path, base_image, limits=Limits(processes=64))
    forks = env.execute("for i in $(seq 200); do sleep 30 & done; wait", timeout_s=60)
    assert forks.limit and forks.limit.startswith("process limit 64"), forks.render()
    left = env.execute("sleep 300 & echo started", timeout_s=20)
    assert left.exit_code == 0 and "started" in left.output
    timed = env.execute("sleep 300", timeout_s=2)
    assert timed.timed_out
    after = env.execute("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done", timeout_s=20)
    # The container's init and its sleep, and this command: nothing the earlier commands started is left.
    assert "sleep 600" in after.output and "sleep 30" not in after.output.replace("sleep 600", ""), after.render()
    containers = sandbox_containers(tmp_path / "ws")
    assert len(containers) == 1
    env.close()
    assert sandbox_containers(tmp_path / "ws") == []


def test_network_allow_reaches_the_listed_host_through_the_egress_proxy_and_nothing_else(
    tmp_path, base_image, listener
):
    other = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    egress = Egress(allow=[f"127.0.0.1:{listener.port}"])
    env = environment(tmp_path, base_image, network="allow", egress=egress)
    allowed = env.execute(listener.probe, timeout_s=30)
    assert allowed.exit_code == 0 and "b'reached'" in allowed.output, allowed.render()
    assert listener.hits == ["/probe"]
    unlisted = f"http://127.0.0.1:{other.server_port}/"
    blocked = env.execute(f"python3 -c \"import urllib.request; urllib.request.urlopen('{unlisted}', timeout=3)\"", 30)
    assert blocked.exit_code != 0 and blocked.blocked and "not in the allow-list" in blocked.blocked[0]
    direct = env.execute(
        f"python3 -c \"import socket; socket.create_connection(('172.17.0.1', {listener.port}), timeout=3)\"", 30
    )
    assert direct.exit_code != 0, "no route out of the container but the proxy"
    assert listener.hits == ["/probe"]
    env.close()
    other.server_close()


def test_orphans_are_swept_only_in_this_pid_namespace(base_image):
    import socket
    import uuid

    from tasks_lib.environments.docker import LABEL, docker, process_space, sweep_orphans

    dead = "4000000"  # above any pid_max: no process here has it
    mark = f"{LABEL}.workspace=/sweep-test-{uuid.uuid4().hex[:8]}"
    made = {}
    for name, host in (
        ("ours", process_space()),
        ("same host name, another pid namespace", f"{socket.gethostname()}.1"),
    ):
        args = [
            "run",
            "-d",
            "--rm",
            "--label",
            LABEL,
            "--label",
            f"{LABEL}.host={host}",
            "--label",
            f"{LABEL}.pid={dead}",
        ]
        done = docker([*args, "--label", mark, base_image, "sleep", "120"])
        assert done.returncode == 0, done.stderr
        made[name] = done.stdout.strip()[:12]
    try:
        sweep_orphans()
        left = docker(["ps", "-aq", "--filter", f"label={mark}"]).stdout.split()
        assert left == [made["same host name, another pid namespace"]], "only our namespace's dead worker's is removed"
    finally:
        docker(["rm", "-f", *made.values()])
