"""Scale benchmark: many agent tasks through the agent-task deployment served by several process workers.

The topology of tests/flow/test_scale_out.py (tests/topology.py): `prefect server start` on PostgreSQL, the
session store on PostgreSQL, a `process` work pool with a concurrency limit, `prefect deploy` from
prefect.yaml, and N `prefect worker start` processes, each with its own AGENT_TASKS_HOME. A scripted
model answers each session (chosen by the task number in its instructions) with 5-10 steps of
0.2-1 s latency, drawn from a seed, each step writing or editing a file, then finish; review=False.
Tasks are submitted with run_deployment(timeout=0). With --kill-one a worker is killed with SIGKILL at
~30% progress (its process only; --kill-group: its whole process group, the host gone with its runs).
The settle-sessions flow is run in this process every 20 s after the kill (as its deployment would
be, on a schedule and triggered by Crashed runs), and Prefect's zombie automation is installed (with
heartbeats every 30 s and its grace cut to 90 s for the bench). Prints figures as `label   value`;
exits 1 when an invariant fails (every session terminal, none lost, none duplicated, crashed
sessions keep their diff). One run, no timing asserts.

    python bench/bench_scale.py --tasks 100 --workers 3 --pool-limit 6 --kill-one
    python bench/bench_scale.py --same-repo 8        # 8 sessions at once on one repository
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TMP = Path(tempfile.mkdtemp(prefix="agent-bench-scale-"))
KEEP = os.environ.get("BENCH_KEEP_TMP") == "1"  # keep the logs and homes for a post-mortem
if not KEEP:
    atexit.register(shutil.rmtree, TMP, ignore_errors=True)
for name, value in {
    "AGENT_TASKS_HOME": str(TMP / "bench-home"),
    "PREFECT_HOME": str(TMP / "bench-prefect"),
    "OPENAI_API_KEY": "sk-bench-not-a-real-key",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(name, value)
for name in ("AGENT_TASKS_DB_URL", "PREFECT_API_URL"):
    os.environ.pop(name, None)  # the topology provides both
sys.path.insert(0, str(ROOT))

from tasks_lib.testing.scripted_server import DEFAULT_SUMMARY, calls, tool  # noqa: E402
from tests.topology import DEPLOYMENT, Topology, postgres  # noqa: E402

MODEL = "openai/scripted-model"
TASK_MARK = re.compile(r"bench task (\d+)\b")
TERMINAL = {"completed", "stopped", "failed", "accepted", "rejected", "expired", "cancelled", "crashed"}


def line(label: str, value: Any) -> None:
    print(f"{label:<40}{value}", flush=True)


def span(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    return float(low), float(high or low)


# --- the scripted model -------------------------------------------------------------------------


class Model:
    """Per task (the number in `bench task N`): a seeded number of steps and latencies; records what it served."""

    def __init__(self, seed: int, steps: tuple[int, int], latency: tuple[float, float]):
        self.seed, self.steps, self.latency = seed, steps, latency
        self.served_s: dict[int, float] = defaultdict(float)  # model latency applied, per task
        self.calls: Counter[int] = Counter()

    def plan(self, task: int) -> list[float]:
        """The latencies of the task's steps (their number is the plan's length; the last step finishes)."""
        rng = random.Random(f"{self.seed}-{task}")
        return [round(rng.uniform(*self.latency), 3) for _ in range(rng.randint(*self.steps))]

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("tools"):
            return {"content": DEFAULT_SUMMARY}  # the summary call: no latency added
        first = next((str(m.get("content")) for m in body.get("messages", []) if m.get("role") == "user"), "")
        found = TASK_MARK.search(first)
        if not found:
            return {"content": "(no task number in the instructions)"}
        task = int(found.group(1))
        plan = self.plan(task)
        k = sum(1 for m in body["messages"] if m.get("role") == "assistant")
        delay = plan[min(k, len(plan) - 1)]
        self.served_s[task] += delay
        self.calls[task] += 1
        if k >= len(plan) - 1:
            return calls(tool("finish", summary=f"bench task {task}: {len(plan) - 1} files"), delay=delay)
        if k % 3 == 2:  # edit the file the step before wrote
            return calls(
                tool(
                    "edit_file", path=f"bench_t{task}_s{k - 1}.txt", old=f"step {k - 1}", new=f"step {k - 1} (edited)"
                ),
                delay=delay,
            )
        return calls(
            tool("write_file", path=f"bench_t{task}_s{k}.txt", content=f"task {task}\nstep {k}\n"), delay=delay
        )


# --- CPU, from /proc ----------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, int, float, float] | None:
    """(ppid, starttime, own cpu s, own + reaped children's cpu s) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ppid, utime, stime, cutime, cstime, start = (int(fields[i]) for i in (1, 11, 12, 13, 14, 19))
    return ppid, start, (utime + stime) / TICK, (utime + stime + cutime + cstime) / TICK


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "X"


class CpuSampler(threading.Thread):
    """Samples /proc every 0.5 s: the flow-run processes the workers start (each with its reaped children,
    such as git, from cutime/cstime), the workers themselves, and the Prefect server's process tree.
    A lower bound: the last < 0.5 s of each flow-run process is not seen."""

    def __init__(self, workers: dict[str, int], server: int):
        super().__init__(daemon=True)
        self.workers, self.server = dict(workers), server
        self.runs: dict[tuple[int, int], float] = {}  # (pid, start) -> cpu s, children of a worker
        self.run_of: dict[tuple[int, int], str] = {}  # which worker started it
        self.worker_cpu: dict[str, float] = {}
        self.server_cpu: dict[tuple[int, int], float] = {}
        self.stop_event = threading.Event()

    def live_runs(self, worker: str) -> list[int]:
        """The worker's flow-run processes that are alive (not exited, not zombies)."""
        return [
            pid
            for (pid, start), w in self.run_of.items()
            if w == worker and (s := _stat(pid)) and s[1] == start and _state(pid) not in ("Z", "X")
        ]

    def sample(self) -> None:
        table = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (s := _stat(int(entry))):
                table[int(entry)] = s
        worker_pids = {pid: name for name, pid in self.workers.items()}
        server_tree = {self.server}
        for pid, (ppid, start, own, total) in sorted(table.items()):
            if pid in worker_pids:
                self.worker_cpu[worker_pids[pid]] = own
            elif ppid in worker_pids:
                self.run_of[(pid, start)] = worker_pids[ppid]
            if (pid, start) in self.run_of:  # stays tracked when its worker dies and it is reparented
                self.runs[(pid, start)] = total
        changed = True
        while changed:  # the server's descendants
            changed = False
            for pid, (ppid, *_rest) in table.items():
                if ppid in server_tree and pid not in server_tree:
                    server_tree.add(pid)
                    changed = True
        for pid in server_tree:
            if pid in table:
                self.server_cpu[(pid, table[pid][1])] = table[pid][2]

    def run(self) -> None:
        while not self.stop_event.wait(0.5):
            self.sample()


# --- helpers ------------------------------------------------------------------------------------


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)

    def run(*a: str) -> None:
        subprocess.run(
            ["git", "-c", "user.email=b@b", "-c", "user.name=b", *a], cwd=path, check=True, capture_output=True
        )

    run("init", "-q", "-b", "main")
    (path / "README.md").write_text("# bench\n" + "line\n" * 50)
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text("print('hello')\n")
    run("add", "-A")
    run("commit", "-qm", "init")
    return path


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def fmt_s(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"min {min(values):.2f} s  p50 {pct(values, 0.5):.2f} s  p95 {pct(values, 0.95):.2f} s  max {max(values):.2f} s  (n={len(values)})"


def read_runs(ids: list) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    out = {}
    with get_client(sync_client=True) as client:
        for i in range(0, len(ids), 100):
            chunk = ids[i : i + 100]
            for run in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=len(chunk)
            ):
                out[str(run.id)] = run
    return out


def sessions_of(store, run_ids: set[str]) -> dict[str, list]:
    by_run: dict[str, list] = defaultdict(list)
    for row in store.list_sessions(limit=100_000):
        if row.flow_run_id in run_ids:
            by_run[row.flow_run_id].append(row)
    return by_run


def submit(
    n: int, repos: list[Path], label: str, deployment: str = DEPLOYMENT
) -> tuple[list[str], dict[str, float], dict[str, int]]:
    """Submit n tasks to a deployment; their flow run ids, submit times (epoch s) and task numbers."""
    from prefect.deployments import run_deployment

    ids, submitted, task_of = [], {}, {}
    for i in range(n):
        run = run_deployment(
            deployment,
            timeout=0,
            parameters={
                "request": {
                    "repository": str(repos[i % len(repos)]),
                    "instructions": f"{label}: bench task {i}. Write the files.",
                    "model": MODEL,
                    "review": False,
                }
            },
        )
        ids.append(str(run.id))
        submitted[str(run.id)] = time.time()
        task_of[str(run.id)] = i
    return ids, submitted, task_of


def worker_took(top: Topology, name: str) -> set[str]:
    """Flow runs a worker's log says it submitted (and did not abort)."""
    text = (top.base / f"worker-{name}.log").read_text(errors="replace")
    took = set(re.findall(r"submitting flow run '([0-9a-f-]{36})'", text))
    return took - set(re.findall(r"Aborted submission of flow run '([0-9a-f-]{36})'", text))


def log_hits(top: Topology, pattern: str) -> dict[str, int]:
    hits = {}
    for path in sorted(top.base.glob("*.log")):
        count = path.read_text(errors="replace").count(pattern)
        if count:
            hits[path.stem] = count
    return hits


def settle_now() -> dict[str, list[str]]:
    from flows.settle import settle_sessions

    return settle_sessions()


# --- part 1: many tasks, several workers, one killed --------------------------------------------


def scale(args, pg: str) -> bool:
    import flows.settle as settle_mod
    from tasks_lib.store import Store

    model = Model(args.seed, args.steps, args.latency)
    workers = tuple("abcdefghij"[: args.workers])
    env = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}
    t0 = time.monotonic()
    with Topology(pg, TMP / "scale", model, workers, args.pool_limit, worker_env=env) as top:
        os.environ["AGENT_TASKS_DB_URL"] = top.store_url
        settle_mod.HEARTBEAT_GRACE = timedelta(seconds=90)  # the product's automation, with a bench-sized grace
        settle_mod.ensure_zombie_automation()
        store = Store(top.store_url)
        sampler = CpuSampler({n: p.pid for n, p in top.workers.items()}, top.procs[0].pid)
        sampler.start()
        ready = time.monotonic()
        repos = [make_repo(TMP / "repos" / f"repo-{r}") for r in range(min(args.repos, args.tasks))]
        start_wall = time.time()
        ids, submitted, task_of = submit(args.tasks, repos, "scale")
        submit_s = time.time() - start_wall
        id_set = set(ids)
        deadline = time.monotonic() + args.deadline
        killed: dict[str, Any] = {}
        last_settle = 0.0
        settled_by_bench: Counter[str] = Counter()
        while time.monotonic() < deadline:
            runs = read_runs(ids)
            by_run = sessions_of(store, id_set)
            ended = sum(1 for rid in ids if by_run.get(rid) and all(r.status in TERMINAL for r in by_run[rid]))
            runs_final = sum(1 for r in runs.values() if r.state and r.state.is_final())
            if args.kill_one and not killed and ended >= args.kill_at * args.tasks:
                name = max(top.workers, key=lambda n: len(sampler.live_runs(n)))
                live = sampler.live_runs(name)
                unfinished = {rid for rid, r in runs.items() if not (r.state and r.state.is_final())}
                held = worker_took(top, name) & unfinished
                pid = top.kill_worker(name, group=args.kill_group)
                killed = {
                    "worker": name,
                    "pid": pid,
                    "at_ended": ended,
                    "processes": live,
                    "runs": held,
                    "at": time.monotonic(),
                }
            if killed and time.monotonic() - last_settle > 20:
                last_settle = time.monotonic()
                for what, sids in settle_now().items():
                    settled_by_bench[what] += len(sids)
            if ended == args.tasks and runs_final == len(ids):
                break
            if killed:  # the killed worker's runs may never end: stop once nothing changed for --grace seconds
                others_done = all(
                    (
                        runs[rid].state
                        and runs[rid].state.is_final()
                        and by_run.get(rid)
                        and all(r.status in TERMINAL for r in by_run[rid])
                    )
                    for rid in ids
                    if rid in runs and rid not in killed["runs"]
                )
                snapshot = (
                    runs_final,
                    ended,
                    tuple(
                        sorted(
                            (
                                rid,
                                runs[rid].state.name if runs[rid].state else "",
                                tuple(r.status for r in by_run.get(rid, [])),
                            )
                            for rid in killed["runs"]
                            if rid in runs
                        )
                    ),
                )
                if snapshot != killed.get("snapshot"):
                    killed["snapshot"], killed["changed"] = snapshot, time.monotonic()
                if others_done and time.monotonic() - killed["changed"] > args.grace:
                    break
            time.sleep(2)
        if killed:  # a last pass, as the scheduled settle-sessions run would make
            for what, sids in settle_now().items():
                settled_by_bench[what] += len(sids)
        sampler.sample()
        sampler.stop_event.set()
        wall = time.monotonic() - t0

        runs = read_runs(ids)
        by_run = sessions_of(store, id_set)
        rows = [r for rid in ids for r in by_run.get(rid, [])]
        statuses = Counter(r.status for r in rows)
        lost = [rid for rid in ids if not by_run.get(rid)]
        duplicated = [rid for rid in ids if len(by_run.get(rid, [])) > 1]
        stuck = [r for r in rows if r.status not in TERMINAL]
        runs_not_final = Counter(r.state.name for r in runs.values() if not (r.state and r.state.is_final()))
        states = Counter(r.state.name if r.state else "none" for r in runs.values())

        crashed = [r for r in rows if r.status == "crashed"]
        crashed_with_work, crashed_kept = 0, 0
        for r in crashed:
            wrote = any(c.name in ("write_file", "edit_file") for s in store.steps(r.id) for c in s.tool_calls)
            diff = store.latest_diff(r.id)
            crashed_with_work += wrote
            crashed_kept += bool(wrote and diff and diff.files)
        crashed_by = Counter(t.by for r in crashed for t in store.transitions(r.id) if t.to_status == "crashed")

        ends = [r.finished_at for r in rows if r.finished_at]
        last_end = max(ends).timestamp() if ends else time.time()
        minutes = (last_end - start_wall) / 60
        overhead, run_wall, queue = [], [], []
        for rid in ids:
            run, sess = runs.get(rid), by_run.get(rid, [])
            if not (run and run.start_time and run.end_time and sess and sess[0].status == "completed"):
                continue
            took = (run.end_time - run.start_time).total_seconds()
            run_wall.append(took)
            overhead.append(took - model.served_s[task_of[rid]])
            queue.append(run.start_time.timestamp() - submitted[rid])
        flow_cpu = sorted(sampler.runs.values())
        server_cpu = sum(sampler.server_cpu.values())
        workers_cpu = sum(sampler.worker_cpu.values())

        line("tasks submitted", f"{args.tasks} in {submit_s:.1f} s (run_deployment, timeout=0)")
        line("workers / pool limit", f"{args.workers} / {args.pool_limit}")
        line(
            "steps / model latency",
            f"{args.steps[0]}-{args.steps[1]} / {args.latency[0]}-{args.latency[1]} s (seed {args.seed})",
        )
        line("topology start", f"{ready - t0:.1f} s")
        line("wall time", f"{wall:.1f} s (topology start to last check)")
        line("sessions per status", " ".join(f"{k}={v}" for k, v in sorted(statuses.items())) or "none")
        line("flow run states", " ".join(f"{k}={v}" for k, v in sorted(states.items())))
        line("flow runs not final in Prefect", " ".join(f"{k}={v}" for k, v in sorted(runs_not_final.items())) or "0")
        line("flow runs without session (lost)", len(lost))
        line("flow runs with >1 session (dup)", len(duplicated))
        line(
            "sessions not terminal (stuck)",
            f"{len(stuck)} (deadline {args.deadline:.0f} s after submit"
            + (f", or no change for {args.grace:.0f} s after the kill)" if killed else ")"),
        )
        if killed:
            held = killed["runs"]
            held_status = Counter(by_run[rid][0].status if by_run.get(rid) else "no session" for rid in held)
            held_state = Counter(runs[rid].state.name if runs[rid].state else "none" for rid in held)
            line(
                "killed worker",
                f"worker-{killed['worker']} pid {killed['pid']} with SIGKILL "
                f"({'process group' if args.kill_group else 'worker process only'}) after {killed['at_ended']} ended",
            )
            line("its flow-run processes at kill", len(killed["processes"]))
            alive = [pid for pid in killed["processes"] if os.path.exists(f"/proc/{pid}")]
            line("of them alive now", len(alive))
            line(
                "its unfinished runs: sessions", " ".join(f"{k}={v}" for k, v in sorted(held_status.items())) or "none"
            )
            line("its unfinished runs: Prefect", " ".join(f"{k}={v}" for k, v in sorted(held_state.items())) or "none")
            kept = sum(1 for rid in held if by_run.get(rid) and (d := store.latest_diff(by_run[rid][0].id)) and d.files)
            line("its unfinished runs: diff kept", f"{kept} of {len(held)}")
            for why, count in Counter(
                f"{by_run[rid][0].status}: {(by_run[rid][0].status_reason or '')[:110]}"
                for rid in held
                if by_run.get(rid)
            ).most_common(4):
                line("its unfinished runs: reason", f"{count} x {' '.join(why.split())}")
            line("settle-sessions ended", " ".join(f"{k}={v}" for k, v in sorted(settled_by_bench.items())))
        line(
            "crashed sessions",
            f"{len(crashed)} (ended by: {' '.join(f'{k}={v}' for k, v in sorted(crashed_by.items())) or '-'})",
        )
        line("crashed with work, diff kept", f"{crashed_kept} of {crashed_with_work}")
        line(
            "sessions per minute",
            f"{len(ends) / minutes:.1f} ({len(ends)} ended in {minutes:.2f} min from first submit)"
            if minutes > 0
            else "n/a",
        )
        line("submit to flow-run start", fmt_s(queue))
        line("flow-run wall (completed)", fmt_s(run_wall))
        line("orchestration overhead/session", fmt_s(overhead))
        line(
            "overhead = run wall - model latency",
            f"model latency served p50 {pct([model.served_s[task_of[r]] for r in ids], 0.5):.2f} s",
        )
        line("flow-run processes seen", len(flow_cpu))
        line(
            "CPU s per flow-run process",
            f"p50 {pct(flow_cpu, 0.5):.2f}  mean {statistics.fmean(flow_cpu):.2f}  "
            f"total {sum(flow_cpu):.0f} (/proc, lower bound)"
            if flow_cpu
            else "not measured",
        )
        line("CPU s, workers themselves", f"{workers_cpu:.0f} total")
        line("CPU s, prefect server tree", f"{server_cpu:.0f} total = {server_cpu / max(1, args.tasks):.2f} per task")
        line(
            "CPU s, bench process",
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime:.0f}",
        )
        locked = log_hits(top, "database is locked")
        line("'database is locked' in logs", sum(locked.values()) if not locked else locked)
        line("logs kept in", top.base if KEEP else "(removed; BENCH_KEEP_TMP=1 keeps them)")

        failures = []
        if lost:
            failures.append(f"lost: {lost[:5]}")
        if duplicated:
            failures.append(f"duplicated: {duplicated[:5]}")
        if stuck:
            failures.append(f"stuck: {[(r.id[:8], r.status, r.flow_run_id) for r in stuck[:5]]}")
        if crashed_kept != crashed_with_work:
            failures.append("crashed sessions without their diff")
        line("invariants", "OK" if not failures else "FAILED: " + "; ".join(failures))
        return not failures


# --- part 2: N sessions at once on one repository -----------------------------------------------


def same_repo(args, pg: str) -> bool:
    from tasks_lib.store import Store

    n = args.same_repo
    model = Model(args.seed, args.steps, args.latency)
    workers = tuple("abcdefghij"[: args.workers])
    db = TMP / "same-repo-store.db"
    store_url = f"sqlite:///{db}" if args.store == "sqlite" else None
    env = {"AGENT_TASKS_ALLOW_SQLITE_DEPLOYMENTS": "1"} if store_url else {}
    t0 = time.monotonic()
    with Topology(
        pg, TMP / "same-repo", model, workers, max(n, args.pool_limit), store_url=store_url, worker_env=env
    ) as top:
        store = Store(top.store_url)
        repo = make_repo(TMP / "repos" / "shared")
        start_wall = time.time()
        ids, submitted, _ = submit(n, [repo], "same-repo")
        deadline = time.monotonic() + args.deadline
        while time.monotonic() < deadline:
            runs = read_runs(ids)
            by_run = sessions_of(store, set(ids))
            if (
                all(r.state and r.state.is_final() for r in runs.values())
                and len(runs) == n
                and all(by_run.get(rid) and by_run[rid][0].status in TERMINAL for rid in ids)
            ):
                break
            time.sleep(1)
        wall = time.monotonic() - t0
        runs = read_runs(ids)
        by_run = sessions_of(store, set(ids))
        rows = [r for rid in ids for r in by_run.get(rid, [])]
        statuses = Counter(r.status for r in rows)
        branches = [r.work_branch for r in rows if r.work_branch]
        to_first, start_to_first = [], []
        for rid in ids:
            sess = by_run.get(rid)
            steps = store.steps(sess[0].id) if sess else []
            if not steps:
                continue
            first = steps[0].started_at.replace(tzinfo=steps[0].started_at.tzinfo or timezone.utc).timestamp()
            to_first.append(first - submitted[rid])
            run = runs.get(rid)
            if run and run.start_time:
                start_to_first.append(first - run.start_time.timestamp())
        spans = [(r.start_time, r.end_time or datetime.now(timezone.utc)) for r in runs.values() if r.start_time]
        points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
        running = peak = 0
        for _, d in points:
            running += d
            peak = max(peak, running)
        locked = log_hits(top, "database is locked")
        busy = log_hits(top, "is busy: another process has held its lock")
        lost = [rid for rid in ids if not by_run.get(rid)]
        duplicated = [rid for rid in ids if len(by_run.get(rid, [])) > 1]
        stuck = [r for r in rows if r.status not in TERMINAL]

        line("same-repo sessions", f"{n} on one repository, submitted at once through the deployment")
        line(
            "workers / pool limit / store",
            f"{args.workers} / {max(n, args.pool_limit)} / {top.store_url.split(':')[0]}"
            + (" (one file shared by every worker)" if store_url else ""),
        )
        line("wall time", f"{wall:.1f} s (topology start to last check); {time.time() - start_wall:.1f} s from submit")
        line("sessions per status", " ".join(f"{k}={v}" for k, v in sorted(statuses.items())) or "none")
        line("flow runs running at once (peak)", peak)
        line("distinct work branches", f"{len(set(branches))} of {len(rows)}")
        line("flow runs without session (lost)", len(lost))
        line("flow runs with >1 session (dup)", len(duplicated))
        line("sessions not terminal (stuck)", len(stuck))
        line("'database is locked' in logs", sum(locked.values()) if not locked else locked)
        line("mirror lock timeouts in logs", sum(busy.values()) if not busy else busy)
        line("submit to first step", fmt_s(to_first))
        line("flow-run start to first step", fmt_s(start_to_first) + " (checkout incl. mirror lock wait)")
        line("logs kept in", top.base if KEEP else "(removed; BENCH_KEEP_TMP=1 keeps them)")
        failures = []
        if lost or duplicated or stuck:
            failures.append(f"lost {len(lost)}, duplicated {len(duplicated)}, stuck {len(stuck)}")
        if statuses.get("completed", 0) != n:
            failures.append(f"not all completed: {dict(statuses)}")
        if len(set(branches)) != len(rows):
            failures.append("work branches collide")
        if locked:
            failures.append("database is locked")
        if busy:
            failures.append("mirror lock stall")
        line("invariants", "OK" if not failures else "FAILED: " + "; ".join(failures))
        return not failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument(
        "--workers", type=int, default=None, help="default 3 (1 with --same-repo: one mirror, one lock)"
    )
    parser.add_argument("--pool-limit", type=int, default=6)
    parser.add_argument(
        "--kill-one", action="store_true", help="SIGKILL one worker (its process) at --kill-at progress"
    )
    parser.add_argument("--kill-group", action="store_true", help="with --kill-one: kill the worker's process group")
    parser.add_argument("--kill-at", type=float, default=0.3, help="fraction of sessions ended before the kill")
    parser.add_argument("--steps", type=span, default=(5, 10), help="steps per session, e.g. 5-10 (the last finishes)")
    parser.add_argument("--latency", type=span, default=(0.2, 1.0), help="model latency per step in s, e.g. 0.2-1")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repos", type=int, default=10, help="repositories the tasks are spread over")
    parser.add_argument(
        "--deadline", type=float, default=None, help="seconds after submit before sessions count as stuck"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=150,
        help="after a kill: stop waiting once the killed worker's runs have not changed for this long",
    )
    parser.add_argument("--same-repo", type=int, default=0, help="instead: N sessions at once on one repository")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite", help="the store for --same-repo")
    args = parser.parse_args()
    args.steps = (int(args.steps[0]), int(args.steps[1]))
    if args.workers is None:
        args.workers = 1 if args.same_repo else 3
    if args.deadline is None:
        args.deadline = 240 + 15 * (args.same_repo or args.tasks)
    with postgres() as pg:
        ok = same_repo(args, pg) if args.same_repo else scale(args, pg)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
