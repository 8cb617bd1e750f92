"""Best-of-N: wall time of a session with N attempts at once versus one attempt.

The whole flow (checkout, the attempts, ranking, diff, summary; no review) runs in this process against
a scripted model on 127.0.0.1 that takes --latency seconds per reply; each attempt takes --steps steps
(commands and reads, then finish). Attempt 1 and the single run do the same work, so the ratio is what
running the other attempts beside it costs: their workspaces, sandboxes, threads and the shared store.
Alternating rounds; prints the medians and the ratio from this one run.

    python bench/bench_attempts.py [--attempts 3] [--steps 6] [--latency 1.0] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_concurrency import slow_responder  # noqa: E402
from bench_overhead import TMP, _nothing, make_repo  # noqa: E402

from tasks_lib.testing.scripted_server import ScriptedServer  # noqa: E402


def session_seconds(attempts: int, steps: int) -> float:
    """Wall time of one session with ``attempts`` attempts, checked to have run them all."""
    from flows.agent_task import agent_task
    from tasks_lib.domain.request import TaskRequest
    from tasks_lib.store import open_store

    agent = TMP / "bench-agent.md"
    agent.write_text(f"---\nname: bench\nmax_steps: {steps * attempts}\n---\nBenchmark agent.\n")
    request = TaskRequest(
        repository=str(make_repo()),
        instructions="bench",
        agent=str(agent),
        model="openai/bench",
        review=False,
        attempts=attempts,
    )
    started = time.perf_counter()
    result = agent_task(request)
    seconds = time.perf_counter() - started
    recorded = open_store().steps(result.session_id)
    assert len(recorded) == steps * attempts, (len(recorded), result.reason)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with ScriptedServer(responder=slow_responder(args.steps, args.latency)) as server:
        os.environ["OPENAI_API_BASE"] = server.api_base
        with prefect_test_harness(server_startup_timeout=120) if not PREFECT_API_URL.value() else _nothing():
            session_seconds(1, 2)  # warm-up: imports, first connections
            ones, many = [], []
            for _ in range(args.rounds):
                ones.append(session_seconds(1, args.steps))
                many.append(session_seconds(args.attempts, args.steps))
    one, several = statistics.median(ones), statistics.median(many)
    rows = [
        ("steps per attempt", f"{args.steps}, {args.latency:.2f} s a reply (median of {args.rounds} rounds)"),
        ("1 attempt", f"{one:.2f} s"),
        (f"{args.attempts} attempts at once", f"{several:.2f} s"),
        (f"ratio {args.attempts} attempts / 1", f"{several / one:.2f}x"),
        ("load average (1 min)", f"{os.getloadavg()[0]:.1f}"),
    ]
    for label, figure in rows:
        print(f"{label:<31}{figure}")


if __name__ == "__main__":
    main()
