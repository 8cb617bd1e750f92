"""The warm engine: flow runs forked from a pre-imported server behave like `python -m prefect.engine` runs.

Each test creates a real deployment of agent_task (with the same pull step as prefect.yaml) and a flow run
of it on the test Prefect server, then starts the run as a process worker does: the pool's command with
PREFECT__FLOW_RUN_ID and PREFECT_API_URL in its environment. The warm server is started with a wrong
Prefect API URL, no model address and its own AGENT_TASKS_HOME, so a run can only reach the Prefect
server, the scripted model and the test's store through the environment the client sent.

The tests of the same code that need no Prefect server are in tests/unit/test_warm.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

from flows.agent_task import agent_task
from tasks_lib.domain.request import TaskRequest
from tasks_lib.store import Store
from tasks_lib.testing.scripted_server import calls, tool
from tests.helpers import MODEL, run_logs_and_artifacts

ROOT = Path(__file__).resolve().parents[2]
CLIENT = [sys.executable, "-m", "tasks_lib.warm", "client"]
FINISH = calls(tool("finish", summary="done"))


@pytest.fixture(scope="module")
def deployment_id(prefect_server) -> str:
    """A deployment of agent_task whose runs load the flow from this checkout, as prefect.yaml's do."""
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(agent_task.name)
        return str(
            client.create_deployment(
                flow_id=flow_id,
                name="warm-test",
                entrypoint="flows/agent_task.py:agent_task",
                pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}],
            )
        )


@pytest.fixture
def warm_server(tmp_path):
    """A warm server in a subprocess, with an environment that would fail any run that used it.

    ``.socket`` is its socket and ``.log`` its stderr (a file).
    """
    path, log = tmp_path / "warm.sock", tmp_path / "warm.log"
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api", "AGENT_TASKS_HOME": str(tmp_path / "server-home")}
    env.pop("OPENAI_API_BASE", None)
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tasks_lib.warm", "serve", "--socket", str(path)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        _wait(lambda: "warm server: ready" in log.read_text() or proc.poll() is not None, 180, "the warm server")
        assert proc.poll() is None, log.read_text()
        assert (path.stat().st_mode & 0o777) == 0o600
        proc.socket, proc.log = path, log  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _flow_run(deployment: str, repo: Path | str, instructions: str) -> str:
    request = TaskRequest(repository=str(repo), instructions=instructions, model=MODEL, review=False)
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(
            UUID(deployment), parameters={"request": request.model_dump(mode="json")}
        )
    return str(run.id)


def _start(run_id: str, socket_path: Path | str, **extra_env: str) -> subprocess.Popen:
    """The pool's command as a process worker starts it for one flow run."""
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT__FLOW_RUN_ID": run_id,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS": "1",
        **extra_env,
    }  # one machine: the store may be SQLite
    return subprocess.Popen(
        [*CLIENT, "--socket", str(socket_path)],
        env=env,
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    return proc.communicate(timeout=timeout)[0]


def _state(run_id: str):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(run_id)).state


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_warm_run_completes_with_the_clients_environment(warm_server, deployment_id, repo, scripted, store, tmp_path):
    server = scripted([calls(tool("write_file", path="warm.txt", content="from a fork\n")), FINISH])
    server_store = Store(f"sqlite:///{tmp_path / 'server-home' / 'agent-tasks.db'}")
    run_id = _flow_run(deployment_id, repo, "Write warm.txt")
    proc = _start(run_id, warm_server.socket)
    output = _finish(proc)

    assert proc.returncode == 0, output[-3000:]
    assert _state(run_id).is_completed()
    row = store.session_for_flow_run(run_id)  # the store of the client's AGENT_TASKS_HOME, not the server's
    assert row is not None and row.status == "completed", output[-3000:]
    assert [f["path"] for f in store.latest_diff(row.id).files] == ["warm.txt"]
    assert len(server.agent_requests()) == 2  # OPENAI_API_BASE came from the client only
    assert server_store.session_for_flow_run(run_id) is None
    messages, _ = run_logs_and_artifacts(run_id, until="step 2/")
    assert any("step 1/" in m for m in messages) and any("step 2/" in m for m in messages)
    assert _children(warm_server.pid) == []
    assert f"flow run {run_id} started as process" in warm_server.log.read_text()


def test_a_failing_warm_run_exits_as_the_cold_engine_does(warm_server, deployment_id, tmp_path):
    codes = {}
    for way, socket_path in (("warm", warm_server.socket), ("cold", tmp_path / "nobody-listens.sock")):
        run_id = _flow_run(deployment_id, tmp_path / "no-such-repo", "Anything")
        proc = _start(run_id, socket_path)
        output = _finish(proc)
        assert _state(run_id).is_failed(), output[-3000:]
        assert "no-such-repo" in output  # the child's logs reached the client's stdout
        codes[way] = proc.returncode
    # Prefect's engine exits 0 once it has reported the failure to the server (the state says Failed).
    assert codes["warm"] == codes["cold"], codes
    bad = _start("not-a-flow-run-id", warm_server.socket)
    output = _finish(bad)
    assert bad.returncode == 1 and "Invalid flow run id" in output, output[-3000:]


@pytest.mark.parametrize(
    "way, how",
    [("warm", signal.SIGTERM), ("warm", signal.SIGKILL), ("cold", signal.SIGTERM)],
    ids=["warm-sigterm", "warm-sigkill", "cold-sigterm"],
)
def test_killing_the_client_stops_its_flow_run_process(
    way, how, warm_server, deployment_id, repo, scripted, store, tmp_path
):
    scripted(
        [calls(tool("write_file", path="a.txt", content="one\n")), calls(tool("finish", summary="late"), delay=120)]
    )
    run_id = _flow_run(deployment_id, repo, "Write and wait")
    proc = _start(run_id, warm_server.socket if way == "warm" else tmp_path / "nobody-listens.sock")
    try:
        _wait(lambda: (row := store.session_for_flow_run(run_id)) is not None and row.steps_used >= 1, 180, "step 1")
        [child] = _children(warm_server.pid) if way == "warm" else [proc.pid]  # cold: the client exec'd the engine
        assert _alive(child) and _state(run_id).is_running()
        proc.send_signal(how)
        output = _finish(proc, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    # SIGTERM is forwarded and the engine reports it; a SIGKILLed client leaves the server to stop the child.
    assert proc.returncode == -how, output[-3000:]
    _wait(lambda: not _alive(child), 60, "the flow-run process to end")
    state = _wait(lambda: (s := _state(run_id)).is_final() and s, 30, "a final state")
    assert state.is_crashed(), state  # a termination without a cancel request: Crashed, warm or cold
    assert _children(warm_server.pid) == []


def test_without_a_server_the_client_runs_the_engine_itself(deployment_id, repo, scripted, store, tmp_path):
    scripted([calls(tool("write_file", path="cold.txt", content="no server\n")), FINISH])
    run_id = _flow_run(deployment_id, repo, "Write cold.txt")
    proc = _start(run_id, tmp_path / "nobody-listens.sock", AGENT_TASKS_WARM_VERBOSE="1")
    output = _finish(proc)
    assert proc.returncode == 0, output[-3000:]
    assert "no warm server at" in output and "starting the engine cold" in output
    row = store.session_for_flow_run(run_id)
    assert row.status == "completed" and [f["path"] for f in store.latest_diff(row.id).files] == ["cold.txt"]


def test_a_process_worker_with_the_client_as_its_command_runs_flow_runs_warm(
    warm_server, repo, scripted, store, tmp_path
):
    import uuid

    model = scripted([calls(tool("write_file", path="worker.txt", content="via a worker\n")), FINISH])
    pool = f"warm-{uuid.uuid4().hex[:8]}"
    prefect = str(Path(sys.executable).with_name("prefect"))
    subprocess.run(
        [prefect, "work-pool", "create", pool, "--type", "process"],
        check=True,
        capture_output=True,
        env={**os.environ, "PREFECT_API_URL": _api_url()},
    )
    with get_client(sync_client=True) as client:
        deployment = client.create_deployment(
            flow_id=client.create_flow_from_name(agent_task.name),
            name=pool,
            entrypoint="flows/agent_task.py:agent_task",
            work_pool_name=pool,
            job_variables={"command": f"{sys.executable} -m tasks_lib.warm client --socket {warm_server.socket}"},
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}],
        )
    run_id = _flow_run(str(deployment), repo, "Write worker.txt")
    env = {
        **os.environ,
        "PREFECT_API_URL": _api_url(),
        "AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS": "1",
        "OPENAI_API_BASE": model.api_base,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
    }
    worker = subprocess.run(
        [prefect, "worker", "start", "--pool", pool, "--run-once"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert _state(run_id).is_completed(), worker.stdout[-3000:] + worker.stderr[-3000:]
    assert f"flow run {run_id} started as process" in warm_server.log.read_text()
    row = store.session_for_flow_run(run_id)
    assert row.status == "completed" and [f["path"] for f in store.latest_diff(row.id).files] == ["worker.txt"]


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()
