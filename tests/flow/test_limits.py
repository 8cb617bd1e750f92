"""Red team: a runaway command — a 6 GB allocation, a chain of 5,000 processes, a 3 GB file in the workspace and in
/tmp, a daemon that leaves its session — in the sandbox and unconfined. Each is stopped with a clear observation,
nothing it started survives, the session ends clearly with its diff and the next one runs normally. Bounded: every
attempt is finite, so the machine survives even when a limit fails."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tasks_lib.domain.limits import Limits
from tasks_lib.environments.cgroups import PREFIX, cgroup_support
from tasks_lib.testing.scripted_server import calls, tool
from tests.helpers import run_task

TIGHT = {"memory": "128MiB", "processes": 64, "file_size": "16MiB", "disk": "96MiB", "tmp": "48MiB", "cpu_time": 4}
ALLOCATE = "python3 -c 'b = bytearray(6 * 1024**3); print(\"allocated\", len(b))'"
FORK_CHAIN = "for i in $(seq 5000); do sleep 30 & done; wait; echo all started"
BIG_FILE = "dd if=/dev/zero of={where}/big bs=1M count=3000 status=none; ls -l {where}/big"
MANY_FILES = (
    "mkdir -p {where}/fill && for i in $(seq 200); do head -c 15M /dev/zero > {where}/fill/f$i; done; echo wrote"
)
SPIN = "python3 -c 'while True: pass'"


def daemon(tag: str) -> str:
    """A command that leaves a process behind in a session of its own."""
    return f"setsid nohup sleep 4{tag} >/dev/null 2>&1 & echo daemon started"


def survivors(tag: str) -> str:
    return subprocess.run(["pgrep", "-af", f"sleep 4{tag}"], capture_output=True, text=True).stdout


def groups_left() -> list[Path]:
    support = cgroup_support()
    return [p for parent in {support.memory, support.pids} if parent for p in parent.glob(f"{PREFIX}*")]


@pytest.mark.parametrize("kind", ["bwrap", "none"])
def test_each_runaway_command_is_stopped_and_nothing_it_started_survives(kind, tmp_path):
    from tasks_lib.environments.bwrap import BwrapEnvironment
    from tasks_lib.environments.local import LocalEnvironment

    workspace, scratch = tmp_path / "ws", tmp_path / "scratch"
    workspace.mkdir()
    scratch.mkdir()
    limits = Limits().over(TIGHT)
    if kind == "bwrap":
        env = BwrapEnvironment(workspace, scratch, limits=limits)
    else:
        env = LocalEnvironment(workspace, limits=limits)

    def run(command: str):
        return env.execute(command, timeout_s=60)

    memory = run(ALLOCATE)
    assert memory.limit == "memory limit 128 MiB" and "allocated" not in memory.output, memory.render()
    assert memory.render().startswith("[killed: memory limit 128 MiB; the command and everything it started")
    forks = run(FORK_CHAIN)
    assert forks.limit and forks.limit.startswith("process limit 64"), forks.render()
    assert forks.duration_s < 30 and "all started" not in forks.output  # stopped at the limit, not at the timeout
    big = run(BIG_FILE.format(where="."))
    assert "File size limit exceeded" in big.output and (workspace / "big").stat().st_size == 16 * 2**20
    (workspace / "big").unlink()
    filled = run(MANY_FILES.format(where="."))
    assert filled.limit and filled.limit.startswith("disk limit 96 MiB"), filled.render()
    assert sum(f.stat().st_size for f in (workspace / "fill").iterdir()) < 1024**3  # far from the 3 GB it aimed at
    run("rm -rf fill")
    if kind == "bwrap":  # unconfined, /tmp is the host's and no session's own: only the file size holds it
        in_tmp = run(MANY_FILES.format(where="/tmp"))
        assert in_tmp.limit and in_tmp.limit.startswith("/tmp limit 48 MiB"), in_tmp.render()
        assert sum(f.stat().st_size for f in (scratch / "fill").iterdir()) < 1024**3
        cleaned = run("rm -rf /tmp/fill && echo cleaned")  # over the limit, a command that frees space still runs
        assert cleaned.output == "cleaned\n" and not (scratch / "fill").exists(), cleaned.render()
    spin = run(SPIN)
    assert spin.exit_code in (152, -24) and "CPU time limit (4 s)" in spin.render(), spin.render()
    tag = "1" + str(abs(hash(str(tmp_path))) % 10**6)
    started = run(daemon(tag))
    assert "daemon started" in started.output
    assert survivors(tag) == ""
    assert groups_left() == []
    assert run("echo still fine").render() == "[exit code 0]\nstill fine\n"


def test_a_session_whose_commands_run_away_ends_clearly_with_its_diff_and_the_next_runs_normally(repo, scripted, store):
    tag = "2" + str(abs(hash(str(repo))) % 10**6)
    scripted(
        [
            calls(tool("write_file", path="notes.txt", content="kept\n")),
            calls(tool("run_command", command=ALLOCATE)),
            calls(tool("run_command", command=FORK_CHAIN)),
            calls(tool("run_command", command=BIG_FILE.format(where="/tmp"))),
            calls(tool("run_command", command=daemon(tag))),
            calls(tool("finish", summary="Tried everything; wrote notes.txt.")),
        ]
    )
    result = run_task(repo, "Run away", limits=TIGHT)
    assert result.status.value == "completed", result.reason
    results = [c.result for s in store.steps(result.session_id) for c in s.tool_calls if c.name == "run_command"]
    assert results[0].startswith("[killed: memory limit 128 MiB")
    assert results[1].startswith("[killed: process limit 64")
    assert "File size limit exceeded" in results[2] and "16777216" in results[2]
    facts = store.latest_summary(result.session_id).facts
    assert facts["limits_hit"] == ["memory limit 128 MiB", "process limit 64 (processes and threads at once)"]
    assert facts["limits"].startswith("memory 128 MiB (cgroup v")
    assert "Commands stopped by a limit" in store.latest_summary(result.session_id).markdown
    assert [f["path"] for f in store.latest_diff(result.session_id).files] == ["notes.txt"]
    assert survivors(tag) == "" and groups_left() == []

    scripted([calls(tool("run_command", command="seq 3 | wc -l")), calls(tool("finish", summary="Counted."))])
    again = run_task(repo, "Count")
    assert again.status.value == "completed", again.reason
    (counted,) = [c.result for s in store.steps(again.session_id) for c in s.tool_calls if c.name == "run_command"]
    assert counted == "[exit code 0]\n3\n"
