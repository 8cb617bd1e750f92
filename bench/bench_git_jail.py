"""What jailing the orchestrator's git costs: `git status` and a full diff capture on a 1,000-file workspace, jailed
(the workspace in the workspaces folder) against unjailed (the same workspace copied elsewhere), in one run.

    python bench/bench_git_jail.py [--files 1000] [--rounds 15]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HOME = Path(tempfile.mkdtemp(prefix="bench-git-jail-"))
os.environ["AGENT_TASKS_HOME"] = str(HOME / "home")

from tasks_lib.config import load_settings  # noqa: E402
from tasks_lib.git.cli import run_git, workspace_jail  # noqa: E402
from tasks_lib.git.diff import capture_workspace_diff  # noqa: E402
from tasks_lib.git.repo import create_workspace, update_mirror  # noqa: E402


def git(cwd: Path, *args: str) -> str:
    """Plain git for the set-up."""
    done = subprocess.run(
        ["git", "-c", "user.email=b@b", "-c", "user.name=b", *args], cwd=cwd, check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def make_workspace(files: int) -> tuple[Path, str]:
    """A session workspace of ``files`` files, a tenth of them changed and a few added."""
    source = HOME / "source"
    source.mkdir()
    git(source, "init", "-q", "-b", "main")
    for i in range(files):
        (source / f"pkg{i % 20}").mkdir(exist_ok=True)
        (source / f"pkg{i % 20}" / f"mod{i}.py").write_text("".join(f"line {j} of {i}\n" for j in range(30)))
    git(source, "add", "-A")
    git(source, "commit", "-qm", "base")
    base = git(source, "rev-parse", "HEAD")
    settings = load_settings()
    mirror, _ = update_mirror(str(source), settings.mirrors_dir)
    workspace = settings.workspaces_dir / "bench"
    create_workspace(mirror, workspace, "agent/bench", base, str(source))
    for i in range(0, files, 10):
        path = workspace / f"pkg{i % 20}" / f"mod{i}.py"
        path.write_text(path.read_text().replace("line 3 ", "line three "))
    for i in range(5):
        (workspace / f"new{i}.py").write_text("print('new')\n")
    return workspace, base


def median_ms(action, rounds: int) -> float:
    """Median milliseconds of ``action`` over ``rounds`` runs (after one warm-up)."""
    action()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def main() -> None:
    """Measure and print both ways side by side, with the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    options = parser.parse_args()
    try:
        jailed, base = make_workspace(options.files)
        unjailed = HOME / "elsewhere"
        shutil.copytree(jailed, unjailed, symlinks=True)
        assert workspace_jail(jailed, {}) is not None, "bubblewrap must work here to measure the jail"
        assert workspace_jail(unjailed, {}) is None
        rows = []
        for what, action in (
            ("git status", lambda ws: run_git("status", "--porcelain", cwd=ws)),
            ("diff capture", lambda ws: capture_workspace_diff(ws, base)),
        ):
            inside = median_ms(lambda a=action: a(jailed), options.rounds)
            outside = median_ms(lambda a=action: a(unjailed), options.rounds)
            rows.append((what, inside, outside))
        print(f"{options.files} files, median of {options.rounds}:")
        for what, inside, outside in rows:
            print(
                f"  {what:13} jailed {inside:8.1f} ms   unjailed {outside:8.1f} ms   "
                f"+{inside - outside:6.1f} ms   ratio {inside / outside:.2f}x"
            )
    finally:
        shutil.rmtree(HOME, ignore_errors=True)


if __name__ == "__main__":
    main()
