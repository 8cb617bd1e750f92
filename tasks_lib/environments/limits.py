"""Holding one agent command to its limits: memory and processes by a cgroup where this host has one (rlimits for
memory otherwise), CPU time and file size by rlimits, the session's disk by watching what its workspace and /tmp
hold. A command over a limit is killed with everything it started, and the model is told which limit stopped it.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tasks_lib.domain.limits import Limits, seconds_text, size_text
from tasks_lib.environments.cgroups import CgroupSupport, CommandCgroup, cgroup_support

# Joins the cgroups ($1, ':'-separated procs files), sets the rlimits ($2-$5), then becomes the command.
WRAPPER = (
    'IFS=:; for f in $1; do printf %s "$$" > "$f" || exit 125; done; unset IFS; '
    'ulimit -S -t "$3" && ulimit -H -t "$2" && ulimit -f "$4" && ulimit -d "$5" || exit 125; shift 5; exec "$@"'
)
SIGXCPU, SIGXFSZ = 24, 25
CPU_GRACE_S = 5  # SIGXCPU at the limit, SIGKILL this much later


def enforcement(limits: Limits, support: CgroupSupport | None = None) -> dict[str, str]:
    """How each limit is held on this host, for `run`, `up` and the summary facts."""
    support = support or cgroup_support()
    words = limits.words()
    memory = f"{support.name}" if support.memory else "rlimit on data, per process"
    processes = support.name if support.pids else "not enforced: " + (support.problem or "no pids cgroup")
    return {
        "memory": f"{words['memory']} ({memory})" if limits.memory else "unlimited",
        "processes": f"{words['processes']} ({processes})" if limits.processes else "unlimited",
        "cpu_time": f"{words['cpu_time']} per process (rlimit)" if limits.cpu_time else "unlimited",
        "file_size": f"{words['file_size']} per file (rlimit)" if limits.file_size else "unlimited",
        "disk": f"{words['disk']} added to workspace and /tmp (watched)" if limits.disk else "unlimited",
        "tmp": f"{words['tmp']} (watched)" if limits.tmp else "unlimited",
    }


def describe_limits(limits: Limits, support: CgroupSupport | None = None) -> str:
    """The limits in force, in one line."""
    held = enforcement(limits, support)
    return (
        f"memory {held['memory']}, processes {held['processes']}, CPU {held['cpu_time']}, "
        f"file {held['file_size']}, disk {held['disk']}, /tmp {held['tmp']}"
    )


def disk_usage(path: Path) -> int:
    """Bytes the files under ``path`` take on disk (links not followed)."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += info.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total


class DiskBudget:
    """What a session's commands may add to its workspace and /tmp, measured from when its environment was made."""

    def __init__(self, limits: Limits, workspace: Path, tmp: Path | None):
        self.limits, self.workspace, self.tmp = limits, workspace, tmp
        self.baseline: int | None = None
        self.at_start = (0, 0)
        self.last: tuple[int, int] | None = None  # the latest measure (the end of the last command)

    def measure(self) -> tuple[int, int]:
        """Bytes in the workspace and /tmp together, and in /tmp alone."""
        tmp = disk_usage(self.tmp) if self.tmp else 0
        self.last = (disk_usage(self.workspace) + tmp, tmp)
        return self.last

    def start(self) -> None:
        """Before each command: take the baseline (the first time) and what the command starts from."""
        if not (self.limits.disk or self.limits.tmp):
            return
        self.at_start = self.last or self.measure()  # what the last command left: one walk per command
        if self.baseline is None:
            self.baseline = self.at_start[0]

    def problem(self) -> str | None:
        """Which disk limit the running command took the session over, if any (a command that frees space while
        the session is over a limit is left alone)."""
        if self.baseline is None:
            return None
        total, tmp = self.measure()
        if self.limits.tmp and tmp > self.limits.tmp and tmp > self.at_start[1]:
            return f"/tmp limit {size_text(self.limits.tmp)} (/tmp holds {size_text(tmp)}; delete files there)"
        added = total - self.baseline
        if self.limits.disk and added > self.limits.disk and total > self.at_start[0]:
            return (
                f"disk limit {size_text(self.limits.disk)} (the session added {size_text(added)} to its workspace "
                "and /tmp; delete files before going on)"
            )
        return None


class LimitGuard:
    """Holds one command to its limits while it runs, and says afterwards which one stopped it."""

    def __init__(self, limits: Limits, disk: DiskBudget | None = None, support: CgroupSupport | None = None):
        self.limits, self.disk = limits, disk
        support = support or cgroup_support()
        self.cgroup: CommandCgroup | None = None
        if support.version and (limits.memory or limits.processes):
            self.cgroup = CommandCgroup(support, limits.memory, limits.processes)
        self.hit: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wrap(self, args: Sequence[str]) -> list[str]:
        """``args`` run so that they start inside the cgroup with the rlimits set."""
        joins = ":".join(self.cgroup.join_files) if self.cgroup else ""
        cpu = self.limits.cpu_time
        data = self.limits.memory if self.limits.memory and not (self.cgroup and self.cgroup.enforces_memory) else None
        values = [
            str(cpu + CPU_GRACE_S) if cpu else "unlimited",
            str(cpu) if cpu else "unlimited",
            str(-(-self.limits.file_size // 1024)) if self.limits.file_size else "unlimited",  # 1 KiB blocks
            str(data // 1024) if data else "unlimited",
        ]
        return [shutil.which("bash") or "/bin/bash", "-c", WRAPPER, "limits", joins, *values, *args]

    def watch(self, kill: Callable[[], None]) -> None:
        """Check the counters and the disk while the command runs; on a limit, record it and ``kill``."""
        if self.disk is not None:
            self.disk.start()

        def loop() -> None:
            next_disk = 0.0
            while not self._stop.wait(0.2):
                problem = self._counters()
                if problem is None and self.disk is not None and time.monotonic() >= next_disk:
                    began = time.monotonic()
                    problem = self.disk.problem()
                    next_disk = time.monotonic() + max(0.25, 10 * (time.monotonic() - began))
                if problem is not None:
                    self.hit = problem
                    kill()
                    if self.cgroup:
                        self.cgroup.kill_all()
                    return

        self._thread = threading.Thread(target=loop, daemon=True, name="limit-guard")
        self._thread.start()

    def _counters(self) -> str | None:
        if self.cgroup is None:
            return None
        if self.cgroup.oom_kills():
            return f"memory limit {size_text(self.limits.memory)}"
        if self.cgroup.process_limit_hits():
            return f"process limit {self.limits.processes:,} (processes and threads at once)"
        return None

    def finish(self, exit_code: int | None) -> str | None:
        """Stop watching, stop whatever the command left running, and say which limit stopped it (None: none)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.hit is None:
            self.hit = self._counters()
        if self.hit is None and self.disk is not None:
            self.hit = self.disk.problem()
        if self.cgroup is not None:
            self.cgroup.remove()
        return self.hit

    def hint(self, exit_code: int | None) -> str | None:
        """What an exit by an rlimit's signal means, for the model."""
        if exit_code in (128 + SIGXFSZ, -SIGXFSZ) and self.limits.file_size:
            return f"a process went over the file size limit ({size_text(self.limits.file_size)}) and was stopped"
        if exit_code in (128 + SIGXCPU, -SIGXCPU) and self.limits.cpu_time:
            return f"a process used up its CPU time limit ({seconds_text(self.limits.cpu_time)}) and was stopped"
        return None
