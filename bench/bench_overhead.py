"""Per-step overhead of running the agent loop inside the Prefect flow versus bare.

A 50-step scripted session (a zero-latency model on 127.0.0.1 answering with run_command("true")
and read_file steps, then finish) runs through the full flow and through the bare agent loop, in
the same process, alternating, several rounds. Both talk to the model through litellm over HTTP,
so the difference is what the flow adds per step: the store, Prefect logging and progress
artifacts. Prints the medians and the flow/bare ratio from this one run.

    python bench/bench_overhead.py [--steps 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TMP = Path(tempfile.mkdtemp(prefix="agent-bench-"))
atexit.register(shutil.rmtree, TMP, ignore_errors=True)  # nothing left behind
# Both sides run commands the same way (unconfined), so the difference is orchestration; the sandbox's
# own cost is measured by bench/bench_sandbox.py.
os.environ.setdefault("AGENT_TASKS_SANDBOX", "none")
os.environ.setdefault("AGENT_TASKS_HOME", str(TMP / "home"))
os.environ.setdefault("PREFECT_HOME", str(TMP / "prefect"))
os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tasks_lib  # noqa: E402,F401
from tasks_lib.testing.scripted_server import ScriptedServer, calls, tool  # noqa: E402


def make_repo() -> Path:
    repo = TMP / f"repo-{time.monotonic_ns()}"
    repo.mkdir()

    def run(*a: str) -> None:
        subprocess.run(
            ["git", "-c", "user.email=b@b", "-c", "user.name=b", *a], cwd=repo, check=True, capture_output=True
        )

    run("init", "-q", "-b", "main")
    (repo / "README.md").write_text("# bench\n" + "line\n" * 200)
    run("add", "-A")
    run("commit", "-qm", "init")
    return repo


def responder(steps: int):
    def reply(body):
        if not body.get("tools"):
            return {"content": "### What was done\nbench"}
        done = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if done >= steps - 1:
            return calls(tool("finish", summary="bench done"))
        # every step differs, as real work does (repeating the same calls is stopped as going round in circles)
        return calls(
            tool("run_command", command=f"echo step {done}")
            if done % 2 == 0
            else tool("read_file", path="README.md", start_line=done, end_line=done + 5)
        )

    return reply


def loop_seconds_from_steps(steps) -> float:
    """Wall time from the first step's start to the last step's end (includes per-step recording)."""
    last = steps[-1]
    return (last.started_at - steps[0].started_at).total_seconds() + last.duration_s


def bench_flow(steps: int) -> tuple[float, float]:
    from flows.agent_task import agent_task
    from tasks_lib.domain.request import TaskRequest
    from tasks_lib.store import open_store

    agent = TMP / "bench-agent.md"
    agent.write_text(f"---\nname: bench\nmax_steps: {steps}\n---\nBenchmark agent.\n")
    repo = make_repo()
    started = time.perf_counter()
    request = TaskRequest(
        repository=str(repo), instructions="bench", agent=str(agent), model="openai/bench", review=False
    )  # measure the session's work, not a wait for a reviewer
    result = agent_task(request)
    total = time.perf_counter() - started
    recorded = open_store().steps(result.session_id)
    assert len(recorded) == steps, (len(recorded), result.reason)
    return total, loop_seconds_from_steps(recorded)


def bench_bare(steps: int) -> float:
    from tasks_lib.agent.loop import Limits, run_agent_loop
    from tasks_lib.agent.model import LitellmModel
    from tasks_lib.agent.prompt import initial_messages
    from tasks_lib.agent.tools import Toolbox

    repo = make_repo()
    result = run_agent_loop(
        LitellmModel("openai/bench"), Toolbox(repo), initial_messages("bench", "bench"), Limits(max_steps=steps)
    )
    assert result.usage.steps == steps and result.end_reason.value == "finished", (
        result.usage.steps,
        result.end_reason,
        result.detail,
    )
    return loop_seconds_from_steps(result.steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with ScriptedServer(responder=responder(args.steps)) as server:
        os.environ["OPENAI_API_BASE"] = server.api_base
        with prefect_test_harness(server_startup_timeout=120) if not PREFECT_API_URL.value() else _nothing():
            bench_bare(args.steps)  # warm-up: imports, first connections
            bench_flow(args.steps)
            flow_totals, flow_loops, bare_loops = [], [], []
            for _ in range(args.rounds):
                total, loop = bench_flow(args.steps)
                flow_totals.append(total)
                flow_loops.append(loop)
                bare_loops.append(bench_bare(args.steps))
    flow_loop, bare_loop, flow_total = map(statistics.median, (flow_loops, bare_loops, flow_totals))
    n = args.steps
    print(f"steps per session           {n} (median of {args.rounds} rounds)")
    print(f"bare loop                   {bare_loop:.3f} s  = {1000 * bare_loop / n:.2f} ms/step")
    print(f"loop inside the flow        {flow_loop:.3f} s  = {1000 * flow_loop / n:.2f} ms/step")
    print(f"whole flow (checkout..summary) {flow_total:.3f} s")
    print(f"per-step overhead of the flow  {1000 * (flow_loop - bare_loop) / n:.2f} ms")
    print(f"ratio flow loop / bare loop    {flow_loop / bare_loop:.2f}x")
    print(f"ratio whole flow / bare loop   {flow_total / bare_loop:.2f}x")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
