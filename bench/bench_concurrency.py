"""N sessions at once versus one, each a flow-run process started cold or through the warm engine.

The setup of issue 11: a scripted model on 127.0.0.1 that takes --latency seconds per reply, --steps
steps per session (run_command / read_file steps, then finish), sandbox none. Every session is a flow
run of a deployment of agent_task (with prefect.yaml's pull step) and its own process, started the way
a process worker starts it, with PREFECT__FLOW_RUN_ID and PREFECT_API_URL in the environment:

  cold  `python -m prefect.engine` (what a process worker runs by default)
  warm  `python -m tasks_lib.warm client`, served by a `python -m tasks_lib.warm serve` started here

For each way: the wall time of 1 session and of --sessions at once, their ratio, and CPU-seconds per
session. Cold CPU is what the engine processes used (getrusage of this process's children); warm CPU
adds the clients', the forked children's (the server's cutime/cstime from /proc) and what the server
itself spent meanwhile. The warm server's one-time start-up is printed apart. One run, no asserts.

    python bench/bench_concurrency.py [--sessions 8] [--steps 10] [--latency 1.0]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_overhead import TMP, _nothing, make_repo  # noqa: E402

from tasks_lib.testing.scripted_server import ScriptedServer, calls, tool  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SOCKET = TMP / "warm.sock"
CLK_TCK = os.sysconf("SC_CLK_TCK")
os.environ.setdefault("AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS", "1")  # one machine: the store may be SQLite


def slow_responder(steps: int, latency: float):
    """Replies after ``latency`` seconds: distinct steps, then finish at step ``steps``; summaries too."""

    def reply(body):
        if not body.get("tools"):
            return {"content": "### What was done\nbench", "delay": latency}
        done = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if done >= steps - 1:
            return calls(tool("finish", summary="bench done"), delay=latency)
        step = (
            tool("run_command", command=f"echo step {done}")
            if done % 2 == 0
            else tool("read_file", path="README.md", start_line=done, end_line=done + 5)
        )
        return calls(step, delay=latency)

    return reply


def create_deployment(steps: int) -> str:
    """A deployment of agent_task loading the flow from this checkout, as prefect.yaml's do; its id."""
    from prefect.client.orchestration import get_client

    from flows.agent_task import agent_task

    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name(agent_task.name)
        return str(
            client.create_deployment(
                flow_id=flow_id,
                name=f"bench-concurrency-{time.monotonic_ns()}",
                entrypoint="flows/agent_task.py:agent_task",
                pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}],
            )
        )


def flow_runs(deployment: str, count: int, steps: int) -> list[str]:
    """``count`` new flow runs of the deployment, each on its own repository."""
    from prefect.client.orchestration import get_client

    from tasks_lib.domain.request import TaskRequest

    agent = TMP / "bench-agent.md"
    agent.write_text(f"---\nname: bench\nmax_steps: {steps}\n---\nBenchmark agent.\n")
    ids = []
    with get_client(sync_client=True) as client:
        for _ in range(count):
            request = TaskRequest(
                repository=str(make_repo()), instructions="bench", agent=str(agent), model="openai/bench", review=False
            )
            run = client.create_flow_run_from_deployment(
                UUID(deployment), parameters={"request": request.model_dump(mode="json")}
            )
            ids.append(str(run.id))
    return ids


def command(way: str) -> list[str]:
    if way == "cold":
        return [sys.executable, "-m", "prefect.engine"]
    return [sys.executable, "-m", "tasks_lib.warm", "client", "--socket", str(SOCKET)]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def proc_cpu(pid: int) -> tuple[float, float]:
    """(own, waited-for children's) CPU-seconds of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    return own, children


def run_sessions(way: str, run_ids: list[str], server_pid: int | None) -> tuple[float, float]:
    """Start one process per flow run at once and wait for all: (wall seconds, CPU-seconds in total)."""
    from prefect.settings import PREFECT_API_URL

    base = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    cpu_before = children_cpu() + (sum(proc_cpu(server_pid)) if server_pid else 0.0)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            command(way),
            env={**base, "PREFECT__FLOW_RUN_ID": run_id},
            cwd=TMP,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for run_id in run_ids
    ]
    outputs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - started
    cpu = children_cpu() + (sum(proc_cpu(server_pid)) if server_pid else 0.0) - cpu_before
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output.decode(errors="replace")[-3000:]
    check_completed(run_ids)
    return wall, cpu


def check_completed(run_ids: list[str]) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for run_id in run_ids:
            state = client.read_flow_run(UUID(run_id)).state
            assert state is not None and state.is_completed(), (run_id, state)


def start_warm_server() -> tuple[subprocess.Popen, float, float]:
    """The warm server, ready: (process, seconds to ready, its start-up CPU-seconds)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tasks_lib.warm", "serve", "--socket", str(SOCKET)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stderr.readline()  # type: ignore[union-attr]
    assert line.startswith("warm server: ready"), line
    own, children = proc_cpu(proc.pid)
    return proc, time.perf_counter() - started, own + children


def measure(way: str, deployment: str, sessions: int, steps: int, server_pid: int | None) -> dict[str, float]:
    """Wall time of 1 and of ``sessions`` at once, and CPU-seconds per session (over all of them)."""
    one_wall, one_cpu = run_sessions(way, flow_runs(deployment, 1, steps), server_pid)
    many_wall, many_cpu = run_sessions(way, flow_runs(deployment, sessions, steps), server_pid)
    return {
        "one": one_wall,
        "many": many_wall,
        "ratio": many_wall / one_wall,
        "cpu": (one_cpu + many_cpu) / (1 + sessions),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--latency", type=float, default=1.0)
    args = parser.parse_args()

    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with ScriptedServer(responder=slow_responder(args.steps, args.latency)) as model:
        os.environ["OPENAI_API_BASE"] = model.api_base
        with prefect_test_harness(server_startup_timeout=120) if not PREFECT_API_URL.value() else _nothing():
            os.environ["PREFECT_API_URL"] = PREFECT_API_URL.value()
            deployment = create_deployment(args.steps)
            run_sessions("cold", flow_runs(deployment, 1, args.steps), None)  # warm-up: the store, the server
            cold = measure("cold", deployment, args.sessions, args.steps, None)
            server, ready_s, startup_cpu = start_warm_server()
            try:
                warm = measure("warm", deployment, args.sessions, args.steps, server.pid)
            finally:
                server.terminate()
                server.wait(60)
    n = args.sessions
    line("sessions at once", f"{n} ({args.steps} steps, {args.latency:g} s model latency, sandbox none)")
    line("load average at the end", f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    for way, figures in (("cold", cold), ("warm", warm)):
        line(f"{way}, 1 session wall", f"{figures['one']:.2f} s")
        line(f"{way}, {n} at once wall", f"{figures['many']:.2f} s")
        line(f"{way}, ratio {n} / 1", f"{figures['ratio']:.2f}x")
        line(f"{way}, CPU per session", f"{figures['cpu']:.2f} s")
    line("warm server start-up", f"{ready_s:.2f} s wall, {startup_cpu:.2f} CPU-s once")
    line("ratio cold / warm, CPU", f"{cold['cpu'] / warm['cpu']:.2f}x")
    line(f"ratio cold / warm, {n} wall", f"{cold['many'] / warm['many']:.2f}x")


def line(label: str, figure: str) -> None:
    """One report line: the label column (31 wide), then the figure."""
    print(f"{label:<31}{figure}")


if __name__ == "__main__":
    main()
