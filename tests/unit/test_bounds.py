"""Bounds (issue 11, item 7): diffs within limits, bounded file reads, a mirror lock that gives up.

One fetch a run is checked through the flow, in tests/flow/test_bounds.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from tasks_lib.agent.loop import EndReason, LoopResult
from tasks_lib.agent.reading import MAX_READ_CHARS
from tasks_lib.agent.tools import Toolbox
from tasks_lib.git.delivery import DeliveryError, commit_workspace, ensure_workspace
from tasks_lib.git.diff import DiffLimits, capture_increment, capture_workspace_diff, omitted_files
from tasks_lib.git.repo import RepositoryError, mirror_dir, update_mirror
from tasks_lib.steps.summarize import render_facts, session_facts
from tests.conftest import git
from tests.helpers import commit_file

ROOT = Path(__file__).resolve().parents[2]


def worktree(repo: Path, tmp_path: Path) -> tuple[Path, str]:
    """A worktree of the repository's head to change, and its base commit."""
    base = git(repo, "rev-parse", "HEAD")
    work = tmp_path / "work"
    git(repo, "worktree", "add", "-q", "-b", "work", str(work), base)
    return work, base


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --- what is part of the diff ------------------------------------------------------------------------


def test_untracked_node_modules_and_venv_are_left_out_but_tracked_files_in_them_stay(repo: Path, tmp_path: Path):
    commit_file(repo, "vendor/node_modules/lib/index.js", "module.exports = 1;\n")
    work, base = worktree(repo, tmp_path)
    write(work / "node_modules" / "left-pad" / "index.js", "module.exports = pad;\n")
    write(work / "web" / "node_modules" / "x" / "x.js", "x\n")
    write(work / ".venv" / "bin" / "activate", "# venv\n")
    write(work / "src" / "__pycache__" / "app.cpython-312.pyc", "bytes\n")
    write(work / "vendor" / "node_modules" / "lib" / "index.js", "module.exports = 2;\n")  # tracked: stays
    write(work / "vendor" / "node_modules" / "lib" / "extra.js", "more\n")  # in a tracked directory: stays
    write(work / "web" / "app.js", "app\n")

    diff = capture_workspace_diff(work, base)

    assert {f.path for f in diff.files} == {
        "vendor/node_modules/lib/index.js",
        "vendor/node_modules/lib/extra.js",
        "web/app.js",
    }
    assert diff.left_out == [".venv/", "node_modules/", "src/__pycache__/", "web/node_modules/"]
    assert b"left-pad" not in diff.patch and b"module.exports = 2;" in diff.patch

    commit = commit_workspace(work, "Work\n", "session-1")  # what is delivered is what was reviewed
    committed = set(git(work, "show", "--name-only", "--format=", commit).splitlines())
    assert committed == {f.path for f in diff.files}


# --- limits -------------------------------------------------------------------------------------------


def test_a_file_over_the_limit_is_shown_as_stats_only_and_the_rest_still_applies(repo: Path, tmp_path: Path):
    work, base = worktree(repo, tmp_path)
    write(work / "big.txt", "".join(f"line {i} of a big generated file\n" for i in range(2000)))  # ~64 kB
    write(work / "src" / "app.py", "def greet(name):\n    return 'Hi ' + name\n")
    (work / "obsolete.txt").unlink()

    diff = capture_workspace_diff(work, base, DiffLimits(max_files=100, max_bytes=1_000_000, max_file_bytes=10_000))

    stats = {f.path: (f.kind, f.added, f.removed, f.stats_only) for f in diff.files}
    assert stats["big.txt"] == ("added", 2000, 0, True), "left out of the patch, its numstat kept"
    assert stats["src/app.py"][3] is False and stats["obsolete.txt"] == ("deleted", 0, 1, False)
    assert b"of a big generated file" not in diff.patch and len(diff.patch) < 10_000
    assert diff.trimmed and diff.trimmed.startswith("diff trimmed: 1 file (")
    assert "shown as stats only" in diff.trimmed and diff.trimmed.endswith("the workspace has the full change")
    assert [f["path"] for f in omitted_files(diff.patch)] == ["big.txt"]

    fresh = tmp_path / "fresh"  # what is included still re-applies (the lines naming what is not are skipped)
    git(repo, "worktree", "add", "-q", "--detach", str(fresh), base)
    subprocess.run(["git", "apply", "--binary"], cwd=fresh, input=diff.patch, check=True)
    assert (fresh / "src" / "app.py").read_text() == (work / "src" / "app.py").read_text()
    assert not (fresh / "obsolete.txt").exists() and not (fresh / "big.txt").exists()

    loop = LoopResult(end_reason=EndReason.finished, detail="done")
    facts = render_facts(session_facts(loop, diff, 10))
    assert "- **⚠ Diff trimmed: 1 file (" in facts and "`big.txt` added: +2000 −0, stats only" in facts


def test_the_file_count_and_total_size_limits_trim_too(repo: Path, tmp_path: Path, monkeypatch):
    work, base = worktree(repo, tmp_path)
    for i in range(5):
        write(work / f"f{i}.txt", f"file {i}\n" * 300)  # ~2.4 kB of patch each
    monkeypatch.setenv("AGENT_TASKS_DIFF_MAX_FILES", "3")
    by_count = capture_workspace_diff(work, base)
    assert [f.stats_only for f in by_count.files] == [False, False, False, True, True]
    assert by_count.trimmed.startswith("diff trimmed: 2 files") and "3 files in all" in by_count.trimmed
    monkeypatch.delenv("AGENT_TASKS_DIFF_MAX_FILES")
    monkeypatch.setenv("AGENT_TASKS_DIFF_MAX_BYTES", "6_000")
    by_size = capture_workspace_diff(work, base)
    assert sum(not f.stats_only for f in by_size.files) == 2 and len(by_size.patch) <= 6_000 + 500
    assert (by_size.added, len(by_size.files)) == (1500, 5), "the totals count every file"


def test_the_increment_after_a_trimmed_diff_does_not_claim_the_big_file_is_new(repo: Path, tmp_path: Path):
    work, base = worktree(repo, tmp_path)
    limits = DiffLimits(max_file_bytes=5_000)
    write(work / "big.txt", "x" * 40 + "\n" * 1 + "y\n" * 3000)
    first = capture_workspace_diff(work, base, limits)
    write(work / "src" / "app.py", "changed\n")

    increment = capture_increment(work, base, first.patch, limits)

    assert [f.path for f in increment.files] == ["src/app.py"]
    assert (
        increment.trimmed
        and "not compared with the last review" in increment.trimmed
        and "big.txt" in increment.trimmed
    )


def test_a_workspace_is_not_rebuilt_from_a_trimmed_patch(repo: Path, tmp_path: Path):
    work, base = worktree(repo, tmp_path)
    write(work / "big.txt", "y\n" * 3000)
    diff = capture_workspace_diff(work, base, DiffLimits(max_file_bytes=1_000))
    gone = tmp_path / "gone"
    with pytest.raises(DeliveryError, match=r"cannot rebuild the workspace .*big\.txt"):
        ensure_workspace(str(repo), tmp_path / "mirrors", gone, "agent/x", base, diff.patch)
    assert not gone.exists(), "nothing half-rebuilt is left to be taken for the real workspace"


MEMORY_PROBE = """
import json, sys
from pathlib import Path
from tasks_lib.git.diff import capture_workspace_diff
from tasks_lib.security.secrets import Redactor

def mb(field):
    line = next(l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith(field + ':'))
    return int(line.split()[1]) / 1000

redact = Redactor.from_env()
Path('/proc/self/clear_refs').write_text('5')  # the peak from here on (VmHWM), not inherited from pytest
before = mb('VmRSS')
diff = capture_workspace_diff(sys.argv[1], sys.argv[2])
shown, _ = redact.head(diff.patch, 200_000)
print(json.dumps({'growth_mb': mb('VmHWM') - before, 'patch': len(diff.patch), 'stats_only': diff.files[0].stats_only,
                  'added': diff.files[0].added}))
"""


def test_a_50_mb_added_file_is_captured_with_bounded_memory(repo: Path, tmp_path: Path):
    work, base = worktree(repo, tmp_path)
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01234\n"  # 80 bytes
    with open(work / "data.csv", "wb") as out:
        for _ in range(625):
            out.write(line * 1000)  # 50 MB in all

    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(work), base], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["stats_only"] and figures["added"] == 625_000
    assert figures["patch"] < 1000
    assert figures["growth_mb"] < 200, f"capturing a 50 MB file took {figures['growth_mb']:.0f} MB"


# --- the agent's reads --------------------------------------------------------------------------------


def test_read_file_on_a_big_file_reads_a_bounded_amount(tmp_path: Path):
    (tmp_path / "big.log").write_bytes(b"".join(b"entry %07d some log text\n" % i for i in range(1_000_000)))  # 28 MB
    (tmp_path / "minified.js").write_bytes(b"var a='" + b"x" * 5_000_000 + b"';\nvar b=1;\n")
    box = Toolbox(tmp_path, tools=("read_file", "search", "finish"))

    tracemalloc.start()
    head = box.execute("read_file", {"path": "big.log"})
    far = box.execute("read_file", {"path": "big.log", "start_line": 900_000, "end_line": 900_002})
    one_line = box.execute("read_file", {"path": "minified.js"})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert len(head.output) < MAX_READ_CHARS + 1000 and head.output.startswith("     1\tentry 0000000 ")
    assert head.output.endswith(
        "\n[the file is 28.0 MB, too big to count its lines; showing lines 1-2000; use start_line/end_line to read on]"
    )
    assert far.output.splitlines()[0] == "900000\tentry 0899999 some log text"
    assert len(far.output.splitlines()) == 4
    assert "[... line cut at 2000 characters]" in one_line.output and "     2\tvar b=1;" in one_line.output
    assert len(one_line.output) < 3000
    assert peak < 5_000_000, f"read_file held {peak} bytes at once"


def test_search_reads_only_the_head_of_a_huge_output(tmp_path: Path):
    git(tmp_path, "init", "-q")
    (tmp_path / "one.js").write_bytes(b"".join(b"match %d " % i + b"z" * 2000 + b"\n" for i in range(2000)))
    box = Toolbox(tmp_path, tools=("search", "finish"))
    found = box.execute("search", {"pattern": "match"})
    lines = found.output.splitlines()
    assert lines[0].startswith("one.js:1:match 0 zzz") and lines[0].endswith(" [...]")
    assert "more than is read; narrow the pattern or path" in lines[-1]
    assert len(found.output) < 100_000


# --- the mirror -------------------------------------------------------------------------------------


HOLD_LOCK = """
import fcntl, sys, time
handle = open(sys.argv[1], 'w')
fcntl.flock(handle, fcntl.LOCK_EX)
print('held', flush=True)
time.sleep(60)
"""


def test_the_mirror_lock_gives_up_with_a_clear_error_when_another_process_holds_it(
    repo: Path, tmp_path: Path, monkeypatch
):
    mirrors = tmp_path / "mirrors"
    mirror = mirror_dir(mirrors, str(repo))
    mirrors.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, f"{mirror}.lock"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setenv("AGENT_TASKS_MIRROR_LOCK_TIMEOUT", "1")
        started = time.monotonic()
        with pytest.raises(RepositoryError, match=rf"the mirror {mirror.name} is busy: .* for the 1 s this one waited"):
            update_mirror(str(repo), mirrors)
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait()
    path, action = update_mirror(str(repo), mirrors)  # free again: it goes through
    assert action == "cloned" and (path / "HEAD").is_file()
