"""How fast the review pages answer on a big store: time to first byte of /sessions and of a session page.

Fills a fresh SQLite store with N sessions (bulk inserts, mixed statuses, workflows and reviewers, each
with a conversation of a few kB as the flow stores it) and one more session whose diff has F files — a
real patch captured from a temporary git repository where every file was changed — with a summary and
steps. Serves the review app as `agent-tasks up` does (``python -m tasks_lib.web`` under uvicorn, its own
process) on a free port, then times, for each address, the median over R requests of the time to the
first byte of the body (httpx, streaming) and of the whole answer.

    python bench/bench_review_page.py [--sessions 10000] [--files 1000] [--lines-per-file 40] [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from bench_inbox import fill as fill_sessions  # noqa: E402

from tasks_lib.domain.records import StepRecord, ToolCallRecord, Usage  # noqa: E402
from tasks_lib.domain.session import SessionStatus  # noqa: E402
from tasks_lib.git.diff import capture_workspace_diff  # noqa: E402
from tasks_lib.store import Store  # noqa: E402

STATUSES = ["completed", "accepted", "rejected", "failed", "awaiting_review", "expired", "crashed"]
WORKFLOWS = [None, "github-issue-labeled", "nightly-deps", "pr-review"]
REVIEWERS = [None, "alice", "bob", "carol"]


def fill(store: Store, sessions: int, conversation_kb: int) -> None:
    """N sessions, newest last, with a mix of statuses, workflows and reviewers."""
    fill_sessions(
        store,
        sessions,
        conversation_kb,
        vary=lambda i: dict(
            status=STATUSES[i % len(STATUSES)],
            request={"repository": "/srv/repo", "instructions": f"task {i}"},
            repository=f"/srv/repo-{i % 20}",
            branch="main",
            instructions=f"Task number {i}: fix the thing",
            reviewer=REVIEWERS[i % len(REVIEWERS)],
            workflow=WORKFLOWS[i % len(WORKFLOWS)],
        ),
    )


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``; its output."""
    return subprocess.run(
        ["git", "-c", "user.email=b@example.com", "-c", "user.name=Bench", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def big_change(tmp: Path, files: int, lines: int):
    """A real diff of ``files`` changed files of ``lines`` lines: a repository of them, then every fifth function
    of each edited and a new one added."""
    repo = tmp / "repo"
    for n in range(files):
        path = repo / f"pkg{n // 100}" / f"module_{n}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"def f{k}(x):  # module {n}\n    return x + {k}\n" for k in range(lines // 2)))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    for n in range(files):
        path = repo / f"pkg{n // 100}" / f"module_{n}.py"
        text = path.read_text().splitlines(keepends=True)
        for k in range(1, len(text), 10):  # every fifth function changes
            text[k] = f"    return x - {k}  # changed\n"
        path.write_text("".join(text) + "\n\ndef added(y):\n    return y\n")
    return capture_workspace_diff(repo, base)


def big_session(store: Store, tmp: Path, files: int, lines: int) -> str:
    """The session with the big diff, waiting for review, with a summary and 30 steps."""
    diff = big_change(tmp, files, lines)
    session_id = store.create_session(
        {"repository": str(tmp / "repo"), "instructions": "Change every module", "reviewer": "alice"},
        workflow="pr-review",
    )
    store.transition(session_id, SessionStatus.running, "running", [SessionStatus.pending], by="flow")
    started = datetime.now(timezone.utc)
    for i in range(1, 31):
        call = ToolCallRecord(
            id=f"c{i}",
            name="edit_file",
            arguments={"path": f"pkg0/module_{i}.py", "old": "x", "new": "y"},
            result="edited\n" + "context line\n" * 40,
        )
        store.add_step(
            session_id,
            StepRecord(
                index=i,
                started_at=started,
                text="Editing the next module.",
                tool_calls=[call],
                prompt_tokens=2000,
                completion_tokens=50,
            ),
            Usage(steps=i, prompt_tokens=2000 * i, completion_tokens=50 * i),
        )
    store.save_diff(session_id, diff)
    store.save_summary(session_id, "### What was done\nChanged every module.\n\n### Key changes\n- all of them", {})
    store.transition(
        session_id, SessionStatus.awaiting_review, "waiting for a reviewer", [SessionStatus.running], by="flow"
    )
    return session_id


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(db_url: str, home: Path, port: int) -> subprocess.Popen:
    """The review app in its own process, as `agent-tasks up` runs it; returns once it answers."""
    env = {**os.environ, "AGENT_TASKS_DB_URL": db_url, "AGENT_TASKS_HOME": str(home)}
    env.pop("AGENT_TASKS_REVIEW_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "tasks_lib.web", "--port", str(port)], env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the review app did not start")


def timed(client: httpx.Client, url: str, repeat: int) -> tuple[float, float, int]:
    """Median seconds to the first body byte and to the whole answer over ``repeat`` requests (after a warm-up),
    and the answer's size."""
    firsts, totals, size = [], [], 0
    for i in range(repeat + 1):
        started = time.perf_counter()
        with client.stream("GET", url) as response:
            assert response.status_code == 200, (url, response.status_code)
            chunks = response.iter_raw()
            first = next(chunks)
            t_first = time.perf_counter() - started
            size = len(first) + sum(len(c) for c in chunks)
        if i:  # the first request warms caches up
            firsts.append(t_first)
            totals.append(time.perf_counter() - started)
    return statistics.median(firsts), statistics.median(totals), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--lines-per-file", type=int, default=40, help="Lines of each file of the big diff.")
    parser.add_argument("--conversation-kb", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agent-bench-review-"))
    proc = None
    try:
        db_url = f"sqlite:///{tmp / 'store.db'}"
        store = Store(db_url)
        fill(store, args.sessions, args.conversation_kb)
        session_id = big_session(store, tmp, args.files, args.lines_per_file)
        patch_bytes = len(store.latest_diff(session_id).patch)
        port = free_port()
        proc = serve(db_url, tmp / "home", port)
        base = f"http://127.0.0.1:{port}"
        pages = {
            "/sessions": "/sessions",
            "/sessions, filtered": "/sessions?status=awaiting_review&workflow=pr-review",
            "/sessions, page 100": "/sessions?page=100",
            "session page": f"/sessions/{session_id}",
            "session page, side by side": f"/sessions/{session_id}?view=split",
        }
        with httpx.Client(base_url=base, timeout=60) as client:
            results = {label: timed(client, url, args.repeat) for label, url in pages.items()}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'sessions in the store':<36}{args.sessions + 1}")
    print(f"{'diff of the session page':<36}{args.files} files, {patch_bytes / 1e6:.2f} MB patch")
    print(f"{'requests per address':<36}{args.repeat} (median)")
    for label, (first, total, size) in results.items():
        print(f"{label + ', TTFB':<36}{1000 * first:.1f} ms")
        print(f"{label + ', whole':<36}{1000 * total:.1f} ms ({size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
