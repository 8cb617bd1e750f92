"""A cgroup for one agent command: the memory and process limits the kernel holds it to, the counters that say a
limit was hit, and a way to stop everything in it.

cgroup v2 is used where this process may create child groups with the memory and pids controllers (a delegated
subtree, or the root as root); cgroup v1 where the memory and pids hierarchies are writable (these machines).
Elsewhere there is no cgroup, and the caller falls back to rlimits.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PREFIX = "agent-tasks-"
STALE_AFTER_S = 3600


@dataclass(frozen=True)
class CgroupSupport:
    """Where command groups can be made: a parent folder per controller (v1) or one for both (v2)."""

    version: int | None = None
    memory: Path | None = None
    pids: Path | None = None
    problem: str = ""

    @property
    def name(self) -> str:
        """`cgroup v1`, `cgroup v2` or `no cgroup`."""
        return f"cgroup v{self.version}" if self.version else "no cgroup"


def _own_paths(listing: Path = Path("/proc/self/cgroup")) -> dict[str, str]:
    """This process's cgroup path per controller ('' for the v2 unified line)."""
    paths = {}
    try:
        for line in listing.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                paths[controller] = path
    except (OSError, ValueError):
        pass
    return paths


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK) and os.access(folder / "cgroup.procs", os.W_OK)


def _v2_parent(own: str, root: Path = ROOT) -> Path | None:
    """A v2 folder whose children get memory and pids limits: this process's own group when delegated with both
    controllers on, else (as root at the root) an `agent-tasks` group made for them."""
    mine = root / own.lstrip("/")
    if _writable(mine) and {"memory", "pids"} <= set((mine / "cgroup.subtree_control").read_text().split()):
        return mine
    if own != "/" or not _writable(root):
        return None
    try:
        if not {"memory", "pids"} <= set((root / "cgroup.controllers").read_text().split()):
            return None
        (root / "cgroup.subtree_control").write_text("+memory +pids")
        parent = root / "agent-tasks"
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text("+memory +pids")
        return parent
    except OSError:
        return None


@lru_cache(maxsize=1)
def cgroup_support() -> CgroupSupport:
    """Which cgroups this process can make for its commands (found once per process)."""
    return find_support(ROOT, _own_paths())


def find_support(root: Path, own: dict[str, str]) -> CgroupSupport:
    """Which cgroups can be made under the cgroup file system at ``root`` by a process in the groups ``own``."""
    if (root / "cgroup.controllers").is_file():
        parent = _v2_parent(own.get("", "/"), root)
        if parent is None:
            return CgroupSupport(problem="cgroup v2 is not delegated to this user with the memory and pids controllers")
        _sweep([parent])
        return CgroupSupport(version=2, memory=parent, pids=parent)
    found = {}
    for controller in ("memory", "pids"):
        folder = root / controller / own.get(controller, "/").lstrip("/")
        if _writable(folder):
            found[controller] = folder
    if not found:
        return CgroupSupport(problem="the cgroup v1 memory and pids hierarchies are not writable by this user")
    _sweep(found.values())
    return CgroupSupport(version=1, memory=found.get("memory"), pids=found.get("pids"))


def _sweep(parents) -> None:
    """Remove groups of ours an hour old with nothing left in them (a worker killed mid-command leaves them)."""
    for parent in parents:
        for child in parent.glob(f"{PREFIX}*"):
            try:
                if time.time() - child.stat().st_mtime > STALE_AFTER_S:
                    child.rmdir()  # fails while processes are in it
            except OSError:
                pass


class CommandCgroup:
    """The group one command runs in: made with its limits before the command starts, emptied and removed after."""

    def __init__(self, support: CgroupSupport, memory: int | None, processes: int | None):
        self.version = support.version
        name = f"{PREFIX}{uuid.uuid4().hex[:12]}"
        self.memory = support.memory / name if support.memory and memory else None
        self.pids = support.pids / name if support.pids and processes else None
        self.folders = list(dict.fromkeys(f for f in (self.memory, self.pids) if f is not None))
        for folder in self.folders:
            folder.mkdir()
        if self.memory is not None:
            self._set_memory(memory)
        if self.pids is not None:
            (self.pids / "pids.max").write_text(str(processes))

    def _set_memory(self, limit: int) -> None:
        folder = self.memory
        if self.version == 2:
            (folder / "memory.max").write_text(str(limit))
            if (folder / "memory.swap.max").exists():
                (folder / "memory.swap.max").write_text("0")
            return
        (folder / "memory.limit_in_bytes").write_text(str(limit))
        if (folder / "memory.memsw.limit_in_bytes").exists():  # memory + swap: no escape into swap
            (folder / "memory.memsw.limit_in_bytes").write_text(str(limit))

    @property
    def join_files(self) -> list[str]:
        """The files a process writes its pid to, to enter the group."""
        return [str(folder / "cgroup.procs") for folder in self.folders]

    @property
    def enforces_memory(self) -> bool:
        """True when the kernel holds the command's memory."""
        return self.memory is not None

    @property
    def enforces_processes(self) -> bool:
        """True when the kernel holds the command's number of processes."""
        return self.pids is not None

    def oom_kills(self) -> int:
        """How many processes of the group the kernel killed for memory."""
        if self.memory is None:
            return 0
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        return _counter(self.memory / name, "oom_kill")

    def process_limit_hits(self) -> int:
        """How many times a process could not start because the group was full."""
        return 0 if self.pids is None else _counter(self.pids / "pids.events", "max")

    def pids_inside(self) -> list[int]:
        """The processes in the group now."""
        found: set[int] = set()
        for folder in self.folders:
            try:
                found.update(int(p) for p in (folder / "cgroup.procs").read_text().split())
            except (OSError, ValueError):
                pass
        return sorted(found)

    def kill_all(self) -> None:
        """Stop every process in the group, including ones that left the command's session (daemons)."""
        for folder in self.folders:
            if self.version == 2 and (folder / "cgroup.kill").exists():
                try:
                    (folder / "cgroup.kill").write_text("1")
                except OSError:
                    pass
        for _ in range(200):  # a process may fork while we kill; the process limit bounds how often
            pids = self.pids_inside()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        """Stop what is left and remove the group (waits briefly for the kernel to let go of killed processes)."""
        self.kill_all()
        for folder in self.folders:
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _counter(path: Path, name: str) -> int:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0
