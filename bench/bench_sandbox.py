"""What the bubblewrap sandbox costs: per command, and per scripted session, bwrap against none.

1. One command (`true`) run many times in each environment around the same repository.
2. A scripted session of --steps steps (a zero-latency model on 127.0.0.1 answering with
   run_command("true") and read_file steps, then finish) through the whole flow, once with
   sandbox: none and once with sandbox: bwrap, alternating, several rounds.

Both are measured side by side in this one run; prints the medians, the differences and the ratios.

    python bench/bench_sandbox.py [--commands 200] [--steps 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_overhead import TMP, _nothing, loop_seconds_from_steps, make_repo, responder  # noqa: E402

from tasks_lib.testing.scripted_server import ScriptedServer  # noqa: E402


def per_command_ms(environment, count: int) -> float:
    """Mean milliseconds to run `true` in ``environment``."""
    started = time.perf_counter()
    for _ in range(count):
        result = environment.execute("true", timeout_s=30)
        assert result.exit_code == 0, result.output
    return 1000 * (time.perf_counter() - started) / count


def session_seconds(steps: int, sandbox: str) -> tuple[float, float]:
    """(whole flow, agent loop) seconds of one scripted session with this sandbox."""
    from flows.agent_task import agent_task
    from tasks_lib.domain.request import TaskRequest
    from tasks_lib.store import open_store

    agent = TMP / "bench-agent.md"
    agent.write_text(f"---\nname: bench\nmax_steps: {steps}\n---\nBenchmark agent.\n")
    started = time.perf_counter()
    result = agent_task(
        TaskRequest(
            repository=str(make_repo()),
            instructions="bench",
            agent=str(agent),
            model="openai/bench",
            review=False,
            sandbox=sandbox,
        )
    )
    total = time.perf_counter() - started
    recorded = open_store().steps(result.session_id)
    assert len(recorded) == steps, (len(recorded), result.reason)
    return total, loop_seconds_from_steps(recorded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from tasks_lib.environments.bwrap import BwrapEnvironment, sandbox_version
    from tasks_lib.environments.local import LocalEnvironment

    version = sandbox_version()
    repo = make_repo()
    environments = {"none": LocalEnvironment(repo), "bwrap": BwrapEnvironment(repo, TMP / "scratch")}
    command_ms: dict[str, list[float]] = {"none": [], "bwrap": []}
    for _ in range(args.rounds):
        for name, environment in environments.items():
            command_ms[name].append(per_command_ms(environment, args.commands))

    totals: dict[str, list[float]] = {"none": [], "bwrap": []}
    loops: dict[str, list[float]] = {"none": [], "bwrap": []}
    with ScriptedServer(responder=responder(args.steps)) as server:
        import os

        os.environ["OPENAI_API_BASE"] = server.api_base
        with prefect_test_harness(server_startup_timeout=120) if not PREFECT_API_URL.value() else _nothing():
            session_seconds(args.steps, "none")  # warm-up: imports, first connections
            for _ in range(args.rounds):
                for name in ("none", "bwrap"):
                    total, loop = session_seconds(args.steps, name)
                    totals[name].append(total)
                    loops[name].append(loop)

    cmd = {k: statistics.median(v) for k, v in command_ms.items()}
    total = {k: statistics.median(v) for k, v in totals.items()}
    loop = {k: statistics.median(v) for k, v in loops.items()}
    n = args.steps
    print(f"sandbox                        {version}")
    print(f"commands per round             {args.commands} x `true` (median of {args.rounds} rounds)")
    print(f"per command, none              {cmd['none']:.2f} ms")
    print(f"per command, bwrap             {cmd['bwrap']:.2f} ms")
    print(f"sandbox overhead per command   {cmd['bwrap'] - cmd['none']:.2f} ms")
    print(f"ratio bwrap / none, command    {cmd['bwrap'] / cmd['none']:.2f}x")
    print(f"steps per session              {n} (median of {args.rounds} rounds)")
    print(f"agent loop, none               {loop['none']:.3f} s = {1000 * loop['none'] / n:.2f} ms/step")
    print(f"agent loop, bwrap              {loop['bwrap']:.3f} s = {1000 * loop['bwrap'] / n:.2f} ms/step")
    print(f"whole session, none            {total['none']:.3f} s")
    print(f"whole session, bwrap           {total['bwrap']:.3f} s")
    print(f"sandbox overhead per step      {1000 * (loop['bwrap'] - loop['none']) / n:.2f} ms")
    print(f"ratio bwrap / none, session    {total['bwrap'] / total['none']:.2f}x")


if __name__ == "__main__":
    main()
