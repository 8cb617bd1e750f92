"""The benchmark script still runs to its report (its figures are not judged here: no timed tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_overhead_benchmark_completes_and_reports_both_ratios(prefect_server, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "AGENT_TASKS_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_overhead.py"), "--steps", "4", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["steps", "per", "session", "4", "(median", "of", "1", "rounds)"]
    figures = {
        label: next(line for line in lines if line.startswith(label)).removeprefix(label).strip()
        for label in ("per-step overhead of the flow", "ratio flow loop / bare loop", "ratio whole flow / bare loop")
    }
    assert figures["per-step overhead of the flow"].endswith(" ms")
    float(figures["per-step overhead of the flow"].removesuffix(" ms"))  # a number, whatever its sign
    assert float(figures["ratio flow loop / bare loop"].removesuffix("x")) > 0
    assert float(figures["ratio whole flow / bare loop"].removesuffix("x")) > 0


def test_the_sandbox_benchmark_completes_and_reports_both_comparisons(prefect_server, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "AGENT_TASKS_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_sandbox.py"), "--commands", "5", "--steps", "4", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {line[:31].strip(): line[31:].strip() for line in proc.stdout.splitlines()}  # label column, then figure
    assert lines["sandbox"].startswith("bubblewrap")
    float(lines["sandbox overhead per command"].removesuffix(" ms"))  # a number, whatever its sign
    float(lines["sandbox overhead per step"].removesuffix(" ms"))
    assert float(lines["ratio bwrap / none, command"].removesuffix("x")) > 0
    assert float(lines["ratio bwrap / none, session"].removesuffix("x")) > 0


def test_the_diff_benchmark_completes_and_reports_time_memory_and_ratios(tmp_path):
    env = {**os.environ, "AGENT_TASKS_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_diff.py"), "--mb", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {line[:31].strip(): line[31:].strip() for line in proc.stdout.splitlines()}  # label column, then figure
    assert lines["added file"].endswith("MB of text")
    for way in ("raw git diff", "before", "capture"):
        float(lines[f"{way}, wall"].removesuffix(" s"))
        assert lines[f"{way}, python peak"].endswith("while capturing)")
    assert lines["patch stored by capture"].endswith(" B"), "a 2 MB file is over the 1 MB a file limit: stats only"
    for ratio in ("ratio capture / raw, wall", "ratio before / capture, wall", "ratio before / capture, growth"):
        assert float(lines[ratio].removesuffix("x")) > 0


def test_the_inbox_benchmark_reads_through_the_index(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_inbox.py"),
            "--sessions",
            "500",
            "--repeat",
            "3",
            "--conversation-kb",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {line[:29].strip(): line[29:].strip() for line in proc.stdout.splitlines()}
    assert "USING INDEX ix_sessions_created_at" in lines["query plan"], "the inbox sorts through the created_at index"
    float(lines["inbox query now"].removesuffix(" ms"))
    assert float(lines["ratio before / now"].removesuffix("x")) > 0


def test_the_scale_benchmark_completes_and_reports_its_figures(tmp_path):
    """Its smallest mode: its own PostgreSQL, Prefect server, pool, deployment and two workers; four short sessions."""
    env = {**os.environ, "AGENT_TASKS_HOME": str(tmp_path / "home")}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_scale.py"),
            "--tasks",
            "4",
            "--workers",
            "2",
            "--pool-limit",
            "2",
            "--steps",
            "2-3",
            "--latency",
            "0.05-0.1",
            "--deadline",
            "150",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = {line[:40].strip(): line[40:].strip() for line in proc.stdout.splitlines()}  # label column, then figure
    assert lines["sessions per status"] == "completed=4"
    assert lines["flow run states"] == "Completed=4"
    assert lines["flow runs without session (lost)"] == "0"
    assert lines["flow runs with >1 session (dup)"] == "0"
    assert lines["sessions not terminal (stuck)"].startswith("0 ")
    assert float(lines["sessions per minute"].split()[0]) > 0
    for figure in ("orchestration overhead/session", "submit to flow-run start"):
        assert lines[figure].startswith("min ") and lines[figure].endswith("(n=4)"), lines[figure]
    assert lines["flow-run processes seen"] == "4"
    assert lines["'database is locked' in logs"] == "0"
    assert lines["invariants"] == "OK"


def test_the_concurrency_benchmark_completes_and_reports_both_ways(prefect_server, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "AGENT_TASKS_HOME": str(tmp_path / "home")}
    env.pop("OPENAI_API_BASE", None)  # the benchmark's own slow model, not a test's
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_concurrency.py"),
            "--sessions",
            "2",
            "--steps",
            "2",
            "--latency",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {line[:31].strip(): line[31:].strip() for line in proc.stdout.splitlines()}  # label column, then figure
    assert lines["sessions at once"].startswith("2 (2 steps")
    for way in ("cold", "warm"):
        assert float(lines[f"{way}, 1 session wall"].removesuffix(" s")) > 0
        assert float(lines[f"{way}, 2 at once wall"].removesuffix(" s")) > 0
        assert float(lines[f"{way}, ratio 2 / 1"].removesuffix("x")) > 0
        assert float(lines[f"{way}, CPU per session"].removesuffix(" s")) > 0
    assert lines["warm server start-up"].endswith("CPU-s once")
    assert float(lines["ratio cold / warm, CPU"].removesuffix("x")) > 0


def test_the_review_page_benchmark_serves_both_pages_and_reports_their_ttfb(tmp_path):
    env = {**os.environ, "AGENT_TASKS_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_review_page.py"),
            "--sessions",
            "300",
            "--files",
            "30",
            "--repeat",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {line[:36].strip(): line[36:].strip() for line in proc.stdout.splitlines()}  # label column, then figure
    assert lines["sessions in the store"] == "301"
    assert lines["diff of the session page"].startswith("30 files, ")
    for page in (
        "/sessions",
        "/sessions, filtered",
        "/sessions, page 100",
        "session page",
        "session page, side by side",
    ):
        assert float(lines[f"{page}, TTFB"].removesuffix(" ms")) > 0
        assert lines[f"{page}, whole"].endswith(" kB)")


def test_the_git_jail_benchmark_completes_and_reports_both_calls(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_git_jail.py"), "--files", "40", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "40 files, median of 2:"
    for what in ("git status", "diff capture"):
        row = next(line for line in lines if line.strip().startswith(what))
        assert float(row.split("ratio")[1].strip().removesuffix("x")) > 0


def test_the_boundary_benchmark_completes_and_reports_three_ratios():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_boundary.py"), "--rounds", "2", "--requests", "3"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ratios = [line for line in proc.stdout.splitlines() if "ratio" in line]
    assert len(ratios) == 3 and all(float(r.split("ratio")[1].strip().removesuffix("x")) > 0 for r in ratios)
