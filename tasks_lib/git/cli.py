"""The one way the orchestrator runs git: hooks and fsmonitor off, no system or global config, a minimal
environment and a timeout — and, on a session's workspace, inside a bubblewrap jail.

An agent's workspace is untrusted: whatever it writes must not make the orchestrator's own git calls (diff
capture, delivery, rebuilds, `git status`) run a command as the orchestrator. The workspace's own `.git` is out of
the agent's reach, but a nested repository or a submodule it makes is not: its config can name filters, a diff
program or a pager, and git can be led into it. So every git call whose directory is in the workspaces folder runs
in a jail (tasks_lib/security/jail.py): no network, an environment of git's variables only, the host's private
places hidden, only the workspace (and the mirror objects it borrows) to be seen. Recursion into submodules is
switched off as well (defence in depth, not the boundary). Where bubblewrap cannot run, those calls run unjailed and
the sandbox line says the orchestrator is exposed too. Calls that talk to a remote (fetch, push, ls-remote) run in
the mirror, which no sandbox can write, and keep the user's global config so credential helpers and `insteadOf`
rules still work.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel

from tasks_lib.config import load_settings
from tasks_lib.errors import AgentTasksError
from tasks_lib.security.jail import jail_arguments, under, usable_bwrap

HARDENING = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "core.untrackedCache=false",
    # never into a nested repository or submodule (whose config the agent writes): commits only, no work trees
    "-c",
    "submodule.recurse=false",
    "-c",
    "diff.ignoreSubmodules=dirty",
    "-c",
    "status.submoduleSummary=false",
    "-c",
    "core.pager=cat",
)
PASSED_THROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "SSH_AUTH_SOCK",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "XDG_CONFIG_HOME",
    "GIT_CONFIG_GLOBAL",
)
NO_PROMPTS = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GIT_SSH_COMMAND": "ssh -o BatchMode=yes"}
DEFAULT_TIMEOUT_S = 120


class GitError(AgentTasksError, RuntimeError):
    """A git call that failed or timed out; the message carries git's own words."""


class GitResult(BaseModel):
    """What a git call printed and how it ended."""

    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        """stdout as stripped text."""
        return self.stdout.decode("utf-8", errors="replace").strip()


def git_env(remote: bool = False, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a git call: a few variables from ours, no prompts, no system (or global) config."""
    env = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH}
    env.update(NO_PROMPTS)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    if not remote:  # the user's global config (credentials, insteadOf) only where the origin is reached
        env["GIT_CONFIG_GLOBAL"] = os.devnull
    env.update(extra or {})
    return env


def git_command(
    args: Sequence[str],
    cwd: str | Path,
    env: Mapping[str, str] | None = None,
    remote: bool = False,
    writable: Sequence[str | Path] = (),
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one hardened git call in ``cwd``: jailed when ``cwd`` is in a session's
    workspace (``writable``: other paths the call must write, e.g. the mirror it pushes to)."""
    command, environment = ["git", *HARDENING, *args], git_env(remote, env)
    jail = None if remote else workspace_jail(Path(cwd), environment, writable)
    if jail is None:
        return command, environment
    return [*jail, *command], {}  # bubblewrap starts with an empty environment; git's is set inside


def workspace_jail(cwd: Path, env: Mapping[str, str], writable: Sequence[str | Path] = ()) -> list[str] | None:
    """The jail of a git call in a session's workspace, or None (not in a workspace, or no bubblewrap here)."""
    settings = load_settings()
    workspaces = settings.workspaces_dir.resolve()
    place = cwd.resolve()
    if not under(str(place), [str(workspaces)]) or place == workspaces:
        return None
    binary = usable_bwrap(settings.bwrap)
    if binary is None:
        return None
    workspace = workspaces / place.relative_to(workspaces).parts[0]
    alternates = workspace / ".git" / "objects" / "info" / "alternates"
    borrowed = (
        [line.strip() for line in alternates.read_text().splitlines() if line.strip()] if alternates.exists() else []
    )
    index = env.get("GIT_INDEX_FILE")
    extra = [str(Path(p).resolve()) for p in writable] + ([str(Path(index).resolve().parent)] if index else [])
    inside = {k: v for k, v in env.items() if k != "HOME"} | {"HOME": "/nonexistent"}
    return jail_arguments(
        binary,
        chdir=str(place),
        writable=[str(workspace), *extra],
        read_only=[path for path in borrowed if not under(path, extra)],  # a push writes the mirror's objects
        hidden=[str(settings.home)],
        env=inside,
        hostname="agent-tasks-git",
    )


def run_git(
    *args: str,
    cwd: str | Path,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    remote: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    check: bool = True,
    writable: Sequence[str | Path] = (),
) -> GitResult:
    """Run ``git args`` in ``cwd`` hardened (and jailed, in a workspace) as this module describes; GitError on
    failure when ``check``.

    ``remote`` marks calls that reach the origin (keeps the user's global config for credentials); ``writable``
    names paths outside the workspace a jailed call must write.
    """
    feed = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    command, environment = git_command(args, cwd, env, remote, writable)
    try:
        proc = subprocess.run(
            command,
            cwd=str(cwd),
            capture_output=True,
            timeout=timeout_s,
            env=environment,
            **feed,
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} timed out after {timeout_s:.0f} s") from None
    result = GitResult(returncode=proc.returncode, stdout=proc.stdout, stderr=proc.stderr.decode(errors="replace"))
    if check and proc.returncode != 0:
        raise GitError(f"git {args[0]} failed: {message(result)}")
    return result


def git_text(*args: str, cwd: str | Path, **kwargs) -> str:
    """stdout of a git call as stripped text (GitError on failure)."""
    return run_git(*args, cwd=cwd, **kwargs).text


def message(result: GitResult) -> str:
    """git's error output on one line."""
    lines = [
        ln.strip().removeprefix("fatal: ").removeprefix("error: ") for ln in result.stderr.splitlines() if ln.strip()
    ]
    return "; ".join(lines) or f"exit code {result.returncode}"
