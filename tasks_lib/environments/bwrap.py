"""The `bwrap` environment: every command in its own bubblewrap sandbox.

What a command sees: the file system read-only, its session's workspace writable (or read-only for
a read-only agent) with the workspace's `.git` always read-only, a private `/tmp` that lasts for
the session (with `HOME=/tmp/home` in it), and nothing of the user's home, `AGENT_TASKS_HOME`
(store, mirrors, other sessions), `/run` (sockets) or a few secret system files. It runs in new
PID, IPC, UTS and cgroup namespaces — and a new network namespace (no network at all, not even
127.0.0.1) unless the network is on — with every capability dropped. bubblewrap itself is started
with an empty environment, so no process inside can read the orchestrator's environment.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from tasks_lib.config import load_settings
from tasks_lib.environments.base import (
    DEFAULT_OUTPUT_CAP,
    Command,
    CommandResult,
    argv,
    command_env,
    run_process,
    shown,
)
from tasks_lib.errors import AgentTasksError

SANDBOX_HOME = "/tmp/home"
# Directories replaced by an empty tmpfs inside the sandbox (when they exist).
HIDDEN_DIRS = ("/home", "/root", "/run", "/var/run", "/var/tmp", "/mnt", "/media", "/srv")
# Files replaced by an empty one (when they exist).
HIDDEN_FILE_PATTERNS = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/ssh/ssh_host_*_key")


class SandboxUnavailable(AgentTasksError, RuntimeError):
    """bubblewrap is missing or cannot create its namespaces here; the message says why."""


def bwrap_binary() -> str | None:
    """The bubblewrap executable: ``AGENT_TASKS_BWRAP`` if set, else ``bwrap`` on the PATH."""
    chosen = load_settings().bwrap
    if chosen:
        return chosen if os.path.isfile(chosen) and os.access(chosen, os.X_OK) else None
    return shutil.which("bwrap")


@lru_cache(maxsize=4)
def _probe(binary: str) -> str:
    try:
        version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, env={}
        ).stdout.strip()
    except OSError as exc:
        raise SandboxUnavailable(f"{binary} cannot be run: {exc.strerror or exc}") from None
    with tempfile.TemporaryDirectory(prefix="agent-sandbox-probe-") as tmp:
        box = BwrapEnvironment(tmp, Path(tmp) / "scratch", binary=binary)
        result = box.execute("true", timeout_s=30)
    if result.exit_code != 0:
        detail = result.output.strip().splitlines()[-1] if result.output.strip() else f"exit code {result.exit_code}"
        raise SandboxUnavailable(f"{binary} is installed but cannot create a sandbox here: {detail}")
    return version or "bubblewrap"


def sandbox_version() -> str:
    """bubblewrap's version once it has proved it can sandbox a command; SandboxUnavailable otherwise."""
    binary = bwrap_binary()
    if binary is None:
        where = load_settings().bwrap
        raise SandboxUnavailable(
            f"bubblewrap not found at AGENT_TASKS_BWRAP={where}" if where else "bubblewrap is not installed"
        )
    return _probe(binary)


def _under(path: str, parents: Sequence[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in parents)


class BwrapEnvironment:
    """Runs each command of one session in a fresh bubblewrap sandbox around its workspace."""

    name = "bwrap"

    def __init__(
        self,
        workspace: str | Path,
        scratch: str | Path,
        read_only: bool = False,
        network: bool = False,
        env_names: Sequence[str] = (),
        read_only_paths: Sequence[str | Path] = (),
        hidden_paths: Sequence[str | Path] = (),
        binary: str | None = None,
    ):
        self.workspace = Path(workspace).resolve()
        self.scratch = Path(scratch)
        self.read_only, self.network = read_only, network
        self.env_names = tuple(env_names)
        self.read_only_paths = [str(Path(p).resolve()) for p in read_only_paths]
        self.hidden_paths = [str(Path(p).expanduser().resolve()) for p in hidden_paths]
        self.binary = binary or bwrap_binary() or "bwrap"
        self.shell = shutil.which("bash") or "/bin/bash"

    def execute(
        self, command: Command, timeout_s: float, output_cap: int = DEFAULT_OUTPUT_CAP, network: bool | None = None
    ) -> CommandResult:
        """Run the command in a new sandbox; the whole sandbox dies when it ends or times out."""
        (self.scratch / "home").mkdir(parents=True, exist_ok=True)
        args = self.arguments(self.network if network is None else network) + argv(command, self.shell)
        # bubblewrap starts with an empty environment: /proc/1/environ inside shows nothing.
        return run_process(args, self.workspace, {}, timeout_s, output_cap, shown(command))

    def arguments(self, network: bool) -> list[str]:
        """The bwrap command line (without the command) for one run."""
        args = [self.binary, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        home = os.environ.get("HOME")
        hidden = {d for d in HIDDEN_DIRS if os.path.isdir(d) and not os.path.islink(d)}
        if home and home != "/" and os.path.isdir(home):
            hidden.add(str(Path(home).resolve()))
        hidden.update(p for p in self.hidden_paths if os.path.isdir(p))
        hidden = {d for d in hidden if not _under(d, ["/tmp"])}  # /tmp is replaced as a whole below
        # Parents before children, so a later mount is not hidden by an earlier one.
        tops = sorted(d for d in hidden if not _under(d, [h for h in hidden if h != d]))
        for d in tops:
            args += ["--tmpfs", d]
        for pattern in HIDDEN_FILE_PATTERNS:
            for path in glob.glob(pattern):
                if not _under(path, tops):
                    args += ["--ro-bind", "/dev/null", path]
        if network:  # DNS may live under a hidden /run (systemd-resolved)
            resolv = os.path.realpath("/etc/resolv.conf")
            if os.path.isfile(resolv) and _under(resolv, tops):
                args += ["--ro-bind", resolv, resolv]
        args += ["--bind", str(self.scratch), "/tmp"]
        ws = str(self.workspace)
        args += ["--ro-bind" if self.read_only else "--bind", ws, ws]
        if (self.workspace / ".git").exists() and not self.read_only:
            args += ["--ro-bind", f"{ws}/.git", f"{ws}/.git"]
        for path in self.read_only_paths:
            if os.path.exists(path):
                args += ["--ro-bind", path, path]
        args += [
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "agent-sandbox",
        ]
        if not network:
            args.append("--unshare-net")
        args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv"]
        for key, value in command_env(self.env_names, home=SANDBOX_HOME).items():
            args += ["--setenv", key, value]
        args += ["--chdir", ws]
        return args
