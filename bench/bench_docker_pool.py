"""Docker pool against process pool: the same sessions through each, one after the other, on this machine.

Each side on a fresh set of processes: `prefect server start` on PostgreSQL and the store on PostgreSQL,
then (process) the `local-process` pool of prefect.yaml with W `prefect worker start` processes
(tests/topology.py), or (docker) the pool and deployment of `agent-tasks pool docker` with W
`agent-tasks pool worker` processes, each flow run a container of the worker image (tests/docker_topology.py;
the image is built first, from cache when it can be). The same pool limit and the same seeded scripted model
(bench_scale.Model: 5-10 steps of 0.2-1 s, each writing or editing a file; review off), N tasks submitted at
once with run_deployment over R repositories.

Per session: submit to first agent step (start-up as a user waits for it), flow-run start to first step,
flow-run wall minus the model's latency (what orchestration costs), CPU seconds (process pool: the flow-run
process with its reaped children, from /proc; Docker: the container's cgroup, `cpuacct.usage`, which holds
everything in it) and peak memory (VmHWM of the flow-run process; the container's
`memory.max_usage_in_bytes`); per side: workers' and the Prefect server's CPU, and on the Docker side the
engine's (dockerd, containerd and the shims). Samplers poll every 0.5 s, so figures are lower bounds.
With --swap-worker one Docker worker is stopped at --swap-at progress and another started.
Invariants (exit 1 when one fails): every session completed, none lost, none run twice.

    python bench/bench_docker_pool.py [--tasks 20] [--workers 2] [--pool-limit 4] [--only docker] [--swap-worker]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import TMP, CpuSampler, Model, fmt_s, line, make_repo, pct, read_runs, sessions_of, span, submit  # noqa: E402

CGROUP = Path("/sys/fs/cgroup")
ENGINE = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "docker-proxy", "runc")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _proc_cpu(pid: int) -> tuple[str, int, float] | None:
    """(command name, start time, own CPU s) of a process, or None when it is gone. Not its reaped children's:
    a container's shim reaps the container's processes, whose CPU the container's cgroup already counts."""
    text = _read(Path(f"/proc/{pid}/stat"))
    if not text:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12))
    return name, int(fields[19]), ticks / os.sysconf("SC_CLK_TCK")


class ContainerSampler(threading.Thread):
    """Polls the containers' cgroups (v1 `docker/<id>` or v2 `system.slice/docker-<id>.scope`) for CPU and
    peak memory, maps each container to its flow run by Prefect's label, and the engine's processes' CPU."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.cpu_s: dict[str, float] = {}  # container id -> CPU s
        self.peak: dict[str, int] = {}  # container id -> bytes
        self.run_of: dict[str, str] = {}  # container id -> flow run id
        self.engine: dict[tuple[int, int], float] = {}
        self.engine_start = self._engine_now()
        self.stop_event = threading.Event()

    @staticmethod
    def _engine_now() -> dict[tuple[int, int], float]:
        out = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (s := _proc_cpu(int(entry))) and s[0].startswith(ENGINE):
                out[(int(entry), s[1])] = s[2]
        return out

    def _containers(self) -> dict[str, tuple[Path, Path]]:
        v1 = CGROUP / "cpuacct" / "docker"
        if v1.is_dir():
            return {
                d.name: (d / "cpuacct.usage", CGROUP / "memory" / "docker" / d.name / "memory.max_usage_in_bytes")
                for d in v1.iterdir()
                if d.is_dir()
            }
        v2 = CGROUP / "system.slice"
        return {
            d.name[len("docker-") : -len(".scope")]: (d / "cpu.stat", d / "memory.peak")
            for d in (v2.glob("docker-*.scope") if v2.is_dir() else [])
        }

    def sample(self) -> None:
        for cid, (cpu, mem) in self._containers().items():
            raw = _read(cpu)
            if raw.startswith("usage_usec"):
                value = int(raw.split()[1]) / 1e6
            elif raw.strip().isdigit():
                value = int(raw) / 1e9
            else:
                continue
            self.cpu_s[cid] = max(self.cpu_s.get(cid, 0.0), value)
            if (peak := _read(mem).strip()).isdigit():
                self.peak[cid] = max(self.peak.get(cid, 0), int(peak))
            if cid not in self.run_of:
                label = '{{index .Config.Labels "io.prefect.flow-run-id"}}'
                done = subprocess.run(["docker", "inspect", "-f", label, cid], capture_output=True, text=True)
                if done.returncode == 0:
                    self.run_of[cid] = done.stdout.strip()
        for key, value in self._engine_now().items():
            self.engine[key] = value

    def engine_cpu(self) -> float:
        """CPU s the engine's processes used since the sampler was made (shims that came and went included)."""
        return sum(v - self.engine_start.get(k, 0.0) for k, v in self.engine.items())

    def per_run(self) -> tuple[dict[str, float], dict[str, int]]:
        """CPU s and peak bytes per flow run (summed over its containers: a resumed run has several)."""
        cpu: Counter[str] = Counter()
        mem: dict[str, int] = {}
        for cid, run in self.run_of.items():
            cpu[run] += self.cpu_s.get(cid, 0.0)
            mem[run] = max(mem.get(run, 0), self.peak.get(cid, 0))
        return dict(cpu), mem

    def run(self) -> None:
        while not self.stop_event.wait(0.5):
            self.sample()


class PeakSampler(threading.Thread):
    """VmHWM of the process pool's flow-run processes (the children of the workers)."""

    def __init__(self, cpu: CpuSampler) -> None:
        super().__init__(daemon=True)
        self.cpu, self.peak = cpu, {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(0.5):
            for pid, start in list(self.cpu.run_of):
                for row in _read(Path(f"/proc/{pid}/status")).splitlines():
                    if row.startswith("VmHWM:"):
                        self.peak[(pid, start)] = max(self.peak.get((pid, start), 0), int(row.split()[1]) * 1024)


def wait_all(store, ids: list[str], deadline: float, during=lambda ended: None) -> None:
    """Until every flow run is final in Prefect and each has a terminal session, or the deadline."""
    while time.monotonic() < deadline:
        runs, by_run = read_runs(ids), sessions_of(store, set(ids))
        ended = sum(1 for rid in ids if by_run.get(rid) and by_run[rid][0].finished_at)
        during(ended)
        if ended == len(ids) and all(r.state and r.state.is_final() for r in runs.values()):
            return
        time.sleep(2)


def pending_to_running(flow_run_id: str) -> float | None:
    """Seconds from the worker's Pending (it took the run) to the engine's first Running: what starting the flow-run
    process or container costs, imports included, without the queue before it."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        states = sorted(client.read_flow_run_states(flow_run_id), key=lambda s: s.timestamp)
    pending = next((s.timestamp for s in states if s.type.value == "PENDING"), None)
    running = next((s.timestamp for s in states if s.type.value == "RUNNING"), None)
    return (running - pending).total_seconds() if pending and running else None


def measure(store, model: Model, ids: list[str], submitted: dict[str, float], task_of: dict[str, int]) -> dict:
    """The per-session figures and the invariants, from Prefect's runs and the store."""
    runs, by_run = read_runs(ids), sessions_of(store, set(ids))
    rows = [r for rid in ids for r in by_run.get(rid, [])]
    first_step, start_to_step, overhead, queue, launch = [], [], [], [], []
    for rid in ids:
        run, sess = runs.get(rid), by_run.get(rid, [])
        if not (run and run.start_time and run.end_time and sess and sess[0].status == "completed"):
            continue
        steps = store.steps(sess[0].id)
        if steps:
            at = steps[0].started_at
            first = (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).timestamp()
            first_step.append(first - submitted[rid])
            start_to_step.append(first - run.start_time.timestamp())
        overhead.append((run.end_time - run.start_time).total_seconds() - model.served_s[task_of[rid]])
        launch.append(pending_to_running(rid))
        queue.append(run.start_time.timestamp() - submitted[rid])
    ends = [r.finished_at.timestamp() for r in rows if r.finished_at]
    return {
        "statuses": Counter(r.status for r in rows),
        "lost": [rid for rid in ids if not by_run.get(rid)],
        "duplicated": [rid for rid in ids if len(by_run.get(rid, [])) > 1],
        "first_step": first_step,
        "start_to_step": start_to_step,
        "overhead": overhead,
        "queue": queue,
        "launch": [x for x in launch if x is not None],
        "span_s": (max(ends) - min(submitted.values())) if ends else float("nan"),
    }


def side_process(args, pg: str) -> dict:
    from tasks_lib.store import Store
    from tests.topology import Topology

    model = Model(args.seed, args.steps, args.latency)
    workers = tuple("abcdefghij"[: args.workers])
    with Topology(pg, TMP / "process", model, workers, args.pool_limit) as top:
        store = Store(top.store_url)
        cpu = CpuSampler({n: p.pid for n, p in top.workers.items()}, top.procs[0].pid)
        peak = PeakSampler(cpu)
        cpu.start()
        peak.start()
        repos = [make_repo(TMP / "repos-process" / f"repo-{r}") for r in range(args.repos)]
        ids, submitted, task_of = submit(args.tasks, repos, "process")
        wait_all(store, ids, time.monotonic() + args.deadline)
        cpu.sample()
        cpu.stop_event.set()
        peak.stop_event.set()
        out = measure(store, model, ids, submitted, task_of)
        out["cpu"] = list(cpu.runs.values())
        out["peak"] = [b / 2**20 for b in peak.peak.values()]
        out["workers_cpu"] = sum(cpu.worker_cpu.values())
        out["server_cpu"] = sum(cpu.server_cpu.values())
        return out


def side_docker(args, pg: str) -> dict:
    from tests.docker_topology import DEPLOYMENT, DockerPool, worker_image

    started = time.monotonic()
    image = worker_image()
    line("worker image", f"{image} ready in {time.monotonic() - started:.0f} s")
    model = Model(args.seed, args.steps, args.latency)
    (TMP / "docker").mkdir(exist_ok=True)
    top = DockerPool(
        pg,
        TMP / "docker",
        TMP,
        model,
        secrets={"OPENAI_API_KEY": "sk-bench-not-a-real-key"},
        pool_limit=args.pool_limit,
    )
    from prefect.settings import PREFECT_API_URL, temporary_settings

    try:
        with temporary_settings({PREFECT_API_URL: top.api}):
            names = list("abcdefghij"[: args.workers])
            for name in names:
                top.start_worker(name)
            containers = ContainerSampler()
            workers_cpu = CpuSampler({n: p.pid for n, p in top.workers.items()}, top.procs[0].pid)
            containers.start()
            workers_cpu.start()
            repos = [make_repo(TMP / "repos-docker" / f"repo-{r}") for r in range(args.repos)]
            ids, submitted, task_of = submit(args.tasks, repos, "docker", deployment=DEPLOYMENT)
            swapped: dict[str, Any] = {}

            def swap(ended: int) -> None:
                if args.swap_worker and not swapped and ended >= args.swap_at * args.tasks:
                    swapped["at"] = ended
                    top.stop_worker(names[0])
                    top.start_worker("z")
                    workers_cpu.workers["z"] = top.workers["z"].pid

            wait_all(top.store, ids, time.monotonic() + args.deadline, swap)
            containers.sample()
            workers_cpu.sample()
            containers.stop_event.set()
            workers_cpu.stop_event.set()
            out = measure(top.store, model, ids, submitted, task_of)
            cpu, peak = containers.per_run()
            out["cpu"] = [cpu[rid] for rid in ids if rid in cpu]
            out["peak"] = [peak[rid] / 2**20 for rid in ids if rid in peak]
            out["workers_cpu"] = sum(workers_cpu.worker_cpu.values())
            out["server_cpu"] = sum(workers_cpu.server_cpu.values())
            out["engine_cpu"] = containers.engine_cpu()
            out["containers"] = len(containers.run_of)
            took = Counter(rid for name in [*names, "z"] for rid in top.took(name) if rid in set(ids))
            out["started_twice"] = [rid for rid, n in took.items() if n > 1]
            out["never_started"] = [rid for rid in ids if rid not in took]
            if swapped:
                out["swap"] = f"worker {names[0]} stopped and worker z started after {swapped['at']} sessions ended"
            return out
    finally:
        top.close()


def report(name: str, r: dict) -> None:
    mib = r["peak"]
    line(f"[{name}] sessions per status", " ".join(f"{k}={v}" for k, v in sorted(r["statuses"].items())) or "none")
    line(f"[{name}] from first submit to last end", f"{r['span_s']:.1f} s")
    line(f"[{name}] submit to flow-run start", fmt_s(r["queue"]))
    line(f"[{name}] Pending to Running (launch)", fmt_s(r["launch"]))
    line(f"[{name}] submit to first step", fmt_s(r["first_step"]))
    line(f"[{name}] flow-run start to first step", fmt_s(r["start_to_step"]))
    line(f"[{name}] overhead (run wall - model)", fmt_s(r["overhead"]))
    if r["cpu"]:
        line(f"[{name}] CPU s per session", f"p50 {pct(r['cpu'], 0.5):.2f}  mean {statistics.fmean(r['cpu']):.2f}")
    if mib:
        line(f"[{name}] peak memory per session", f"p50 {pct(mib, 0.5):.0f} MiB  max {max(mib):.0f} MiB")
    line(f"[{name}] CPU s, workers / server", f"{r['workers_cpu']:.0f} / {r['server_cpu']:.0f}")
    if "engine_cpu" in r:
        line(f"[{name}] CPU s, Docker engine", f"{r['engine_cpu']:.0f} ({r['containers']} containers)")
    if "swap" in r:
        line(f"[{name}] worker swap", r["swap"])


def invariants(name: str, r: dict, tasks: int) -> list[str]:
    bad = []
    if r["statuses"].get("completed", 0) != tasks:
        bad.append(f"{name}: not all completed {dict(r['statuses'])}")
    if r["lost"] or r["duplicated"]:
        bad.append(f"{name}: lost {len(r['lost'])}, duplicated {len(r['duplicated'])}")
    if r.get("started_twice") or r.get("never_started"):
        bad.append(f"{name}: started twice {len(r['started_twice'])}, never started {len(r['never_started'])}")
    return bad


def main() -> None:
    from tests.topology import postgres

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool-limit", type=int, default=4)
    parser.add_argument("--repos", type=int, default=4)
    parser.add_argument("--steps", type=span, default=(5, 10))
    parser.add_argument("--latency", type=span, default=(0.2, 1.0))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deadline", type=float, default=900)
    parser.add_argument("--only", choices=("process", "docker"))
    parser.add_argument("--swap-worker", action="store_true", help="stop one Docker worker and start another")
    parser.add_argument("--swap-at", type=float, default=0.3)
    args = parser.parse_args()
    args.steps = (int(args.steps[0]), int(args.steps[1]))
    line("sessions / workers / pool limit", f"{args.tasks} / {args.workers} / {args.pool_limit}")
    line("steps / model latency", f"{args.steps[0]}-{args.steps[1]} / {args.latency[0]}-{args.latency[1]} s")
    results, failures = {}, []
    with postgres() as pg:
        for name, side in (("process", side_process), ("docker", side_docker)):
            if args.only in (None, name):
                results[name] = side(args, pg)
                report(name, results[name])
                failures += invariants(name, results[name], args.tasks)
    if len(results) == 2:
        p, d = results["process"], results["docker"]
        pairs = (
            ("launch", "launch"),
            ("start to first step", "start_to_step"),
            ("submit to first step", "first_step"),
            ("overhead", "overhead"),
            ("CPU s", "cpu"),
            ("peak memory", "peak"),
        )
        for label, key in pairs:
            if p[key] and d[key]:
                ratio = pct(d[key], 0.5) / max(pct(p[key], 0.5), 1e-9)
                line(f"docker/process p50, {label}", f"{ratio:.2f}x ({pct(d[key], 0.5):.2f} vs {pct(p[key], 0.5):.2f})")
        line("docker / process, span", f"{d['span_s'] / p['span_s']:.2f}x")
    line("invariants", "OK" if not failures else "FAILED: " + "; ".join(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
