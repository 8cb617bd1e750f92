"""Screenshots of the review pages, to look at them: the inbox and a session page, on a wide screen and a phone.

Fills a fresh SQLite store with a few sessions (mixed statuses, workflows and reviewers) and one session
waiting for review as a CLI run leaves it (no workflow): a real diff captured from a temporary git
repository (a modified, an added and a deleted file), a summary as the summarize step writes it (narrative
and facts), a check and a few steps. Serves the review app in this process (uvicorn in a thread, as the
tests do) on a free port and takes headless Chromium screenshots (``chromium --headless --screenshot``, no
Playwright) of each page at each window size — 1400×1000, a 390×844 phone, and the phone's window made
2400 px tall to see what follows its first screen — into ``--out``, printing their paths.

    python bench/screenshots.py [--out /tmp/agent-tasks-screens] [--chromium chromium]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tasks_lib  # noqa: E402,F401  (quiet defaults before anything reads its settings)
from tasks_lib.domain.records import CheckResult, StepRecord, ToolCallRecord, Usage  # noqa: E402
from tasks_lib.domain.session import SessionStatus  # noqa: E402
from tasks_lib.git.diff import capture_workspace_diff  # noqa: E402
from tasks_lib.store import Store  # noqa: E402

SIZES = {"wide": (1400, 1000), "phone": (390, 844), "phone-long": (390, 2400)}  # the last: what follows on a phone
CALC = "".join(f"def f{k}(x):\n    return x + {k}\n\n\n" for k in range(5))  # 20 lines
SUMMARY = """## Summary

### What was done
Fixed the operator in `src/calc.py` so `f2` adds instead of subtracting, added a test for it and removed
the unused `old_helpers.py`.

### Why
The task said the calculator returned wrong results for `f2`; the check now passes.

### Key changes
- `src/calc.py`: `f2` returns `x + 2`, and a docstring explains the rounding.
- `tests/test_calc.py`: a new test covering `f0` to `f4`.
- `old_helpers.py`: deleted, nothing imported it.

### Facts
- **Ended:** finished — the agent called finish
- **Files changed:** 3 (+14 −6)
  - `src/calc.py` modified +3 −1
  - `tests/test_calc.py` added +9 −0
  - `old_helpers.py` deleted +0 −5
- **Commands run:** 2
  - `pytest -q`
  - `git status`
- **Steps:** 6 of 40 (6 model calls, 0 tool errors)
- **Tokens:** 21000 prompt, 900 completion, 0 cached
- **Duration:** 42.0 s
- **Sandbox:** bwrap, network off
- **Check:** `pytest -q` passed in 1.2 s
"""


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd``; its output."""
    return subprocess.run(
        ["git", "-c", "user.email=b@example.com", "-c", "user.name=Bench", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def change(tmp: Path):
    """A real diff: src/calc.py modified (20 lines), tests/test_calc.py added, old_helpers.py deleted."""
    repo = tmp / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "calc.py").write_text(CALC.replace("x + 2", "x - 2"))
    (repo / "old_helpers.py").write_text("".join(f"def helper_{n}():\n    pass\n" for n in range(3))[:-1] + "\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    (repo / "src" / "calc.py").write_text(CALC.replace("def f2(x):\n", 'def f2(x):\n    """Adds 2."""\n'))
    (repo / "tests").mkdir()
    tests = "from src import calc\n\n\ndef test_all():\n" + "".join(
        f"    assert calc.f{k}(1) == {1 + k}\n" for k in range(5)
    )
    (repo / "tests" / "test_calc.py").write_text(tests)
    (repo / "old_helpers.py").unlink()
    return capture_workspace_diff(repo, base)


def fill(store: Store, tmp: Path) -> str:
    """A few sessions for the inbox and the one to review (returned): a CLI run waiting for review."""
    workflows = [None, "github-issue-labeled", "nightly-deps"]
    reviewers = [None, "alice", "bob"]
    ends = [SessionStatus.completed, SessionStatus.failed, SessionStatus.accepted, SessionStatus.rejected]
    for i in range(8):
        sid = store.create_session(
            {
                "repository": f"https://github.com/acme/service-{i % 3}.git",
                "branch": "main",
                "instructions": f"Task number {i}: make the parser accept trailing commas in every list literal",
                "reviewer": reviewers[i % 3],
                "model": "openai/gpt-4o-mini",
            },
            workflow=workflows[i % 3],
        )
        store.transition(sid, SessionStatus.running, "running", [SessionStatus.pending], by="flow")
        end = ends[i % len(ends)]
        store.transition(sid, end, f"now {end.value}", [SessionStatus.running], by="flow")
    session_id = store.create_session(
        {
            "repository": str(tmp / "repo"),
            "instructions": "Fix the calculator: f2 subtracts instead of adding\n\nAdd a test for every function.",
            "model": "openai/gpt-4o-mini",
        }
    )
    store.transition(session_id, SessionStatus.running, "running", [SessionStatus.pending], by="flow")
    started = datetime.now(timezone.utc)
    for i in range(1, 7):
        call = ToolCallRecord(id=f"c{i}", name="read_file", arguments={"path": "src/calc.py"}, result=CALC)
        store.add_step(
            session_id,
            StepRecord(index=i, started_at=started, text="Reading the code.", tool_calls=[call], prompt_tokens=3500),
            Usage(steps=i, prompt_tokens=3500 * i, completion_tokens=150 * i),
        )
    store.save_diff(session_id, change(tmp))
    store.save_check(session_id, 1, CheckResult(command="pytest -q", passed=True, exit_code=0, duration_s=1.2))
    store.save_summary(session_id, SUMMARY, {})
    store.transition(
        session_id, SessionStatus.awaiting_review, "waiting for a reviewer", [SessionStatus.running], by="flow"
    )
    return session_id


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """The review app over ``store`` under uvicorn in a thread, on a free port of 127.0.0.1."""

    def __init__(self, store: Store):
        import uvicorn

        from tasks_lib.web import create_app

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(store, "127.0.0.1", self.port), port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> App:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise SystemExit("the review app did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def screenshot(chromium: str, url: str, path: Path, size: tuple[int, int], profile: Path) -> None:
    """One screenshot of ``url`` in a window of ``size`` (the first screen, as a reader sees it)."""
    width, height = size
    command = [
        chromium,
        "--headless",
        "--no-sandbox",  # as root in a container
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--virtual-time-budget=3000",
        f"--screenshot={path}",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not path.exists():
        raise SystemExit(f"chromium failed on {url}:\n{done.stderr[-2000:]}")


def main() -> None:
    """Fill a store, serve the app, take the screenshots, print their paths."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/agent-tasks-screens"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="agent-screens-"))
    try:
        store = Store(f"sqlite:///{tmp / 'store.db'}")
        session_id = fill(store, tmp)
        pages = {
            "inbox": "/sessions",
            "session": f"/sessions/{session_id}",
            "session-split": f"/sessions/{session_id}?view=split",
        }
        with App(store) as app:
            for name, address in pages.items():
                for label, size in SIZES.items():
                    path = args.out / f"{name}-{label}-{size[0]}x{size[1]}.png"
                    screenshot(args.chromium, app.base + address, path, size, tmp / "chromium")
                    print(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
