"""The `bwrap` environment: every command in its own bubblewrap sandbox.

What a command sees: the file system read-only, its session's workspace writable (or read-only for
a read-only agent) with the workspace's `.git` always read-only, a private `/tmp` that lasts for
the session (with `HOME=/tmp/home` in it), and nothing of the user's home, `AGENT_TASKS_HOME`
(store, mirrors, other sessions), `/run` (sockets) or a few secret system files. It runs in new
PID, IPC, UTS and cgroup namespaces — and a new network namespace (no network at all, not even
127.0.0.1) unless the network is on; with `allow`, only the egress proxy's socket, bridged to
127.0.0.1:3128 inside (environments/egress.py) — with every capability dropped, and held to its limits
(environments/limits.py). bubblewrap itself is started with an empty environment, so no process inside
can read the orchestrator's environment.
"""

from __future__ import annotations

import shutil
import weakref
from collections.abc import Sequence
from pathlib import Path

from tasks_lib.config import load_settings
from tasks_lib.domain.egress import Egress
from tasks_lib.domain.fields import NetworkMode
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
from tasks_lib.environments.egress import SOCKET_INSIDE, bridge_python, bridged
from tasks_lib.environments.limits import LimitGuard
from tasks_lib.environments.sandboxed import SANDBOX_HOME, SandboxedEnvironment
from tasks_lib.security.jail import SandboxUnavailable, find_bwrap, jail_arguments, probe


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


class BwrapEnvironment(SandboxedEnvironment):
    """Runs each command of one session in a fresh bubblewrap sandbox around its workspace."""

    name = "bwrap"

    def __init__(
        self,
        workspace: str | Path,
        scratch: str | Path,
        read_only: bool = False,
        network: NetworkMode = "off",
        env_names: Sequence[str] = (),
        read_only_paths: Sequence[str | Path] = (),
        hidden_paths: Sequence[str | Path] = (),
        binary: str | None = None,
        limits: Limits | None = None,
        egress: Egress | None = None,
    ):
        super().__init__(workspace, scratch, read_only, network, env_names, limits, egress)
        self.read_only_paths = [str(Path(p).resolve()) for p in read_only_paths]
        self.hidden_paths = [str(Path(p).expanduser().resolve()) for p in hidden_paths]
        self.binary = binary or bwrap_binary() or "bwrap"
        self.shell = shutil.which("bash") or "/bin/bash"
        self.limits = limits
        weakref.finalize(self, self.egress.stop)  # the proxies live as long as the environment

    def execute(
        self,
        command: Command,
        timeout_s: float,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        network: NetworkMode | None = None,
    ) -> CommandResult:
        """Run the command in a new sandbox; the whole sandbox dies when it ends or times out.

        ``network`` is given for the setup command: its `allow` also admits the registries the repository's
        manifests name."""
        (self.scratch / "home").mkdir(parents=True, exist_ok=True)
        mode = self.network if network is None else network
        proxy = self.egress.proxy(setup=network is not None) if mode == "allow" else None
        args = self.arguments(mode, proxy.socket_path if proxy else None, setup=network is not None)
        if proxy is not None:
            python = bridge_python()
            if python is None:
                raise SandboxUnavailable("network: allow needs a python3 the sandbox can see (e.g. /usr/bin/python3)")
            args += bridged(python, argv(command, self.shell))
        else:
            args += argv(command, self.shell)
        # bubblewrap starts with an empty environment: /proc/1/environ inside shows nothing.
        guard = LimitGuard(self.limits, self.disk) if self.limits else None
        result = run_process(args, self.workspace, {}, timeout_s, output_cap, shown(command), guard)
        if proxy is not None:
            result.blocked = [b.line() for b in proxy.take_blocked()]
        return result

    def close(self) -> None:
        """Stop the egress proxies (started again by the next command that needs one)."""
        self.egress.stop()

    def arguments(self, network: NetworkMode, proxy_socket: Path | None = None, setup: bool = False) -> list[str]:
        """The bwrap command line (without the command) for one run."""
        ws = str(self.workspace)
        writable = [] if self.read_only else [ws]
        read_only = [ws] if self.read_only else [f"{ws}/.git"]
        env = command_env(self.env_names, home=SANDBOX_HOME)
        if proxy_socket is not None:
            env.update(self.egress.variables(setup))
        return jail_arguments(
            self.binary,
            chdir=ws,
            writable=writable,
            read_only=[*read_only, *self.read_only_paths],
            hidden=self.hidden_paths,
            tmp=str(self.scratch),
            network=network == "on",
            env=env,
            sockets={str(proxy_socket): SOCKET_INSIDE} if proxy_socket is not None else None,
        )
