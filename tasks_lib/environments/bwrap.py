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

import shutil
from collections.abc import Sequence
from pathlib import Path

from tasks_lib.config import load_settings
from tasks_lib.domain.limits import Limits
from tasks_lib.environments.base import (
    DEFAULT_OUTPUT_CAP,
    Command,
    CommandResult,
    argv,
    command_env,
    run_process,
    shown,
)
from tasks_lib.environments.limits import DiskBudget, LimitGuard
from tasks_lib.security.jail import SandboxUnavailable, find_bwrap, jail_arguments, probe

SANDBOX_HOME = "/tmp/home"


def bwrap_binary() -> str | None:
    """The bubblewrap executable: ``AGENT_TASKS_BWRAP`` if set, else ``bwrap`` on the PATH."""
    return find_bwrap(load_settings().bwrap)


def sandbox_version() -> str:
    """bubblewrap's version once it has proved it can sandbox a command; SandboxUnavailable otherwise."""
    binary = bwrap_binary()
    if binary is None:
        where = load_settings().bwrap
        raise SandboxUnavailable(
            f"bubblewrap not found at AGENT_TASKS_BWRAP={where}" if where else "bubblewrap is not installed"
        )
    return probe(binary)


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
        limits: Limits | None = None,
    ):
        self.workspace = Path(workspace).resolve()
        self.scratch = Path(scratch)
        self.read_only, self.network = read_only, network
        self.env_names = tuple(env_names)
        self.read_only_paths = [str(Path(p).resolve()) for p in read_only_paths]
        self.hidden_paths = [str(Path(p).expanduser().resolve()) for p in hidden_paths]
        self.binary = binary or bwrap_binary() or "bwrap"
        self.shell = shutil.which("bash") or "/bin/bash"
        self.limits = limits
        self.disk = DiskBudget(limits, self.workspace, self.scratch) if limits else None

    def execute(
        self, command: Command, timeout_s: float, output_cap: int = DEFAULT_OUTPUT_CAP, network: bool | None = None
    ) -> CommandResult:
        """Run the command in a new sandbox; the whole sandbox dies when it ends or times out."""
        (self.scratch / "home").mkdir(parents=True, exist_ok=True)
        args = self.arguments(self.network if network is None else network) + argv(command, self.shell)
        # bubblewrap starts with an empty environment: /proc/1/environ inside shows nothing.
        guard = LimitGuard(self.limits, self.disk) if self.limits else None
        return run_process(args, self.workspace, {}, timeout_s, output_cap, shown(command), guard)

    def arguments(self, network: bool) -> list[str]:
        """The bwrap command line (without the command) for one run."""
        ws = str(self.workspace)
        writable = [] if self.read_only else [ws]
        read_only = [ws] if self.read_only else [f"{ws}/.git"]
        return jail_arguments(
            self.binary,
            chdir=ws,
            writable=writable,
            read_only=[*read_only, *self.read_only_paths],
            hidden=self.hidden_paths,
            tmp=str(self.scratch),
            network=network,
            env=command_env(self.env_names, home=SANDBOX_HOME),
        )
