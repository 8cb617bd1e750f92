"""What capturing a diff costs with one big added file: wall time and peak memory, against raw `git diff`.

A repository gets one added text file of --mb megabytes (random base64 lines). Each way of taking its
diff runs in a fresh process of its own, so its peak memory (ru_maxrss) is its own:

1. raw git: stage into a throwaway index and `git diff --cached --binary` to /dev/null (git alone);
2. before: the capture as it was before issue 11 — the whole patch in memory, parsed with unidiff,
   secrets masked over all of it for the artifact (skip with --no-before);
3. capture: `capture_workspace_diff` as it is now (stats, then the patch within the limits), plus the
   masked head the diff artifact shows.

The added file's blob is written once beforehand, so no way pays for it alone. Prints wall time and
peak memory of each (the Python process's own peak, VmHWM, counted from after its imports; and the
biggest git process it ran), and the ratios; judges nothing.

    python bench/bench_diff.py [--mb 50] [--no-before]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """stdout of a git call."""
    return subprocess.run(
        ["git", "-c", "user.email=b@example.com", "-c", "user.name=Bench", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    ).stdout.strip()


def make_repo(where: Path, megabytes: float) -> tuple[Path, str, int]:
    """A repository with one commit and an added, uncommitted text file; (path, base commit, file bytes)."""
    repo = where / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("bench\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    with open(
        repo / "data.txt", "wb"
    ) as out:  # a block at a time: this process stays small (its children inherit its peak)
        for _ in range(max(1, int(megabytes * 1_000_000 / 77_000))):
            block = base64.b64encode(os.urandom(57_000))
            out.write(b"".join(block[i : i + 76] + b"\n" for i in range(0, len(block), 76)))
    return repo, git(repo, "rev-parse", "HEAD"), (repo / "data.txt").stat().st_size


def memory_mb(field: str = "VmRSS") -> float:
    """This process's resident memory now (VmRSS) or at its peak (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1000
    return 0.0


def reset_peak() -> None:
    """Start this process's peak memory (VmHWM) afresh from what it holds now."""
    Path("/proc/self/clear_refs").write_text("5")


def child(mode: str, repo: str, base: str) -> None:
    """Run one way of taking the diff and print its figures as JSON."""
    from tasks_lib.git.diff import capture_workspace_diff
    from tasks_lib.security.secrets import Redactor

    redact = Redactor.from_env()
    reset_peak()  # ru_maxrss would carry the peak of the process that started this one
    before_rss = memory_mb()
    started = time.perf_counter()
    stored = 0
    if mode == "raw":
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": f"{tmp}/index"}
            git(Path(repo), "read-tree", base, env=env)
            git(Path(repo), "add", "-A", ".", env=env)
            subprocess.run(
                ["git", "diff", "--cached", "--binary", "-M", base],
                cwd=repo,
                check=True,
                stdout=subprocess.DEVNULL,
                env={**os.environ, **env},
            )
    elif mode == "before":
        import unidiff

        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": f"{tmp}/index"}
            git(Path(repo), "read-tree", base, env=env)
            git(Path(repo), "add", "-A", ".", env=env)
            patch = subprocess.run(
                ["git", "diff", "--cached", "--binary", "-M", "--no-color", base],
                cwd=repo,
                check=True,
                capture_output=True,
                env={**os.environ, **env},
            ).stdout
        unidiff.PatchSet(patch.decode("utf-8", errors="replace"))  # the stats, as they were taken
        redact(patch.decode("utf-8", errors="replace"))[:200_000]  # the artifact, masked before it was cut
        stored = len(patch)
    else:
        diff = capture_workspace_diff(repo, base)
        shown, _ = redact.head(diff.patch, 200_000)
        stored = len(diff.patch)
    wall = time.perf_counter() - started
    own = memory_mb("VmHWM")
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1000
    print(
        json.dumps(
            {
                "wall_s": wall,
                "peak_mb": own,
                "growth_mb": own - before_rss,
                "git_peak_mb": children,
                "stored_bytes": stored,
            }
        )
    )


def measure(mode: str, repo: Path, base: str) -> dict[str, float]:
    """The figures of one way, run in a fresh process."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(repo), base],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="size of the added file in MB")
    parser.add_argument("--no-before", action="store_true", help="skip the capture as it was before issue 11")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "REPO", "BASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from tasks_lib.git.diff import DiffLimits, size

    with tempfile.TemporaryDirectory(prefix="bench-diff-") as tmp:
        repo, base, nbytes = make_repo(Path(tmp), args.mb)
        with tempfile.TemporaryDirectory() as index:  # the new blob is written once, so that no way pays for it alone
            git(repo, "add", "-A", ".", env={"GIT_INDEX_FILE": f"{index}/index"})
        modes = ["raw", "capture"] if args.no_before else ["raw", "before", "capture"]
        figures = {mode: measure(mode, repo, base) for mode in modes}

    raw, cap = figures["raw"], figures["capture"]
    print(f"added file                     {size(nbytes)} of text")
    print(f"limits                         {DiffLimits.from_env().describe()}")
    for mode, label in (("raw", "raw git diff"), ("before", "before"), ("capture", "capture")):
        if mode not in figures:
            continue
        f = figures[mode]
        print(f"{label + ', wall':<31}{f['wall_s']:.2f} s")
        print(f"{label + ', python peak':<31}{f['peak_mb']:.0f} MB (+{f['growth_mb']:.0f} MB while capturing)")
        print(f"{label + ', git peak':<31}{f['git_peak_mb']:.0f} MB")
    print(f"patch stored by capture        {size(int(cap['stored_bytes']))}")
    print(f"ratio capture / raw, wall      {cap['wall_s'] / raw['wall_s']:.2f}x")
    if "before" in figures:
        before = figures["before"]
        print(f"ratio before / capture, wall   {before['wall_s'] / cap['wall_s']:.2f}x")
        print(f"ratio before / capture, growth {max(before['growth_mb'], 0.1) / max(cap['growth_mb'], 0.1):.2f}x")


if __name__ == "__main__":
    main()
