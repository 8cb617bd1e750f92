"""A bubblewrap jail: the command line that runs one process with the file system read-only, the private parts of
the host hidden, only the paths it needs bound in, no network, no capabilities and an environment of our choosing.

The agent's commands (tasks_lib/environments/bwrap.py) and the orchestrator's own git calls on what an agent wrote
(tasks_lib/git/cli.py) both run in one. bubblewrap itself is started with an empty environment by its callers, so
nothing inside can read the orchestrator's (`/proc/1/environ` shows bubblewrap's own).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

from tasks_lib.errors import AgentTasksError

# Directories replaced by an empty tmpfs inside a jail (when they exist).
HIDDEN_DIRS = ("/home", "/root", "/run", "/var/run", "/var/tmp", "/mnt", "/media", "/srv")
# Files replaced by an empty one (when they exist).
HIDDEN_FILE_PATTERNS = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/ssh/ssh_host_*_key")


class SandboxUnavailable(AgentTasksError, RuntimeError):
    """bubblewrap is missing or cannot create its namespaces here; the message says why."""


def find_bwrap(chosen: str | None = None) -> str | None:
    """The bubblewrap executable: ``chosen`` (AGENT_TASKS_BWRAP) when it is one, else ``bwrap`` on the PATH."""
    if chosen:
        return chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None
    return shutil.which("bwrap")


def under(path: str, parents: Sequence[str]) -> bool:
    """True when ``path`` is one of ``parents`` or inside one."""
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in parents)


def jail_arguments(
    binary: str,
    *,
    chdir: str,
    writable: Sequence[str] = (),
    read_only: Sequence[str] = (),
    hidden: Sequence[str] = (),
    tmp: str | None = None,
    network: bool = False,
    env: Mapping[str, str] | None = None,
    hostname: str = "agent-sandbox",
    sockets: Mapping[str, str] | None = None,
) -> list[str]:
    """The bwrap command line (without the command) for one jailed process.

    The root is read-only; the user's home, ``hidden`` directories and the usual private places are empty; ``tmp``
    (a host directory) is the jail's /tmp, else /tmp is an empty tmpfs; ``writable`` paths are bound read-write and
    then ``read_only`` paths read-only, in that order (so a read-only path inside a writable one stays read-only).
    New PID, IPC, UTS and cgroup namespaces, and a new network namespace unless ``network``; every capability
    dropped; the environment is exactly ``env``. ``sockets`` (host path → path inside) are bound in last.
    """
    args = [binary, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    home = os.environ.get("HOME")
    secret_dirs = {d for d in HIDDEN_DIRS if os.path.isdir(d) and not os.path.islink(d)}
    if home and home != "/" and os.path.isdir(home):
        secret_dirs.add(str(Path(home).resolve()))
    secret_dirs.update(p for p in hidden if os.path.isdir(p))
    secret_dirs = {d for d in secret_dirs if not under(d, ["/tmp"])}  # /tmp is replaced as a whole below
    # Parents before children, so a later mount is not hidden by an earlier one.
    tops = sorted(d for d in secret_dirs if not under(d, [h for h in secret_dirs if h != d]))
    for d in tops:
        args += ["--tmpfs", d]
    for pattern in HIDDEN_FILE_PATTERNS:
        for path in glob.glob(pattern):
            if not under(path, tops):
                args += ["--ro-bind", "/dev/null", path]
    if network:  # DNS may live under a hidden /run (systemd-resolved)
        resolv = os.path.realpath("/etc/resolv.conf")
        if os.path.isfile(resolv) and under(resolv, tops):
            args += ["--ro-bind", resolv, resolv]
    args += ["--bind", tmp, "/tmp"] if tmp else ["--tmpfs", "/tmp"]
    for path in writable:
        args += ["--bind", path, path]
    for path in read_only:
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    for host_path, inside in (sockets or {}).items():
        args += ["--bind", host_path, inside]
    if root_without_admin():  # root in a container: namespaces only inside a user namespace of its own
        args.append("--unshare-user")
    args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", hostname]
    if not network:
        args.append("--unshare-net")
    args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv"]
    for key, value in (env or {}).items():
        args += ["--setenv", key, value]
    args += ["--chdir", chdir]
    return args


@lru_cache(maxsize=1)
def root_without_admin() -> bool:
    """True for root without CAP_SYS_ADMIN (root in a container): bubblewrap, which as root makes no user namespace
    by itself, must be asked to."""
    if os.geteuid() != 0:
        return False
    try:
        status = Path("/proc/self/status").read_text()
        effective = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")), 16)
    except (OSError, StopIteration, ValueError):
        return False
    return not effective & (1 << 21)  # CAP_SYS_ADMIN


@lru_cache(maxsize=4)
def probe(binary: str) -> str:
    """bubblewrap's version once it has proved it can jail a command here; SandboxUnavailable otherwise."""
    try:
        version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, env={}
        ).stdout.strip()
    except OSError as exc:
        raise SandboxUnavailable(f"{binary} cannot be run: {exc.strerror or exc}") from None
    with tempfile.TemporaryDirectory(prefix="agent-sandbox-probe-") as tmp:
        args = jail_arguments(binary, chdir=tmp, writable=[tmp], env={"PATH": "/usr/bin:/bin"})
        try:
            done = subprocess.run([*args, "true"], capture_output=True, text=True, timeout=30, env={})
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SandboxUnavailable(f"{binary} cannot create a sandbox here: {exc}") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        detail = lines[-1] if lines else f"exit code {done.returncode}"
        raise SandboxUnavailable(f"{binary} is installed but cannot create a sandbox here: {detail}")
    return version or "bubblewrap"


def usable_bwrap(chosen: str | None = None) -> str | None:
    """The bubblewrap executable when it can jail a command here, else None."""
    binary = find_bwrap(chosen)
    if binary is None:
        return None
    try:
        probe(binary)
    except SandboxUnavailable:
        return None
    return binary
