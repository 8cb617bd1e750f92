"""The one way the orchestrator runs git: hooks and fsmonitor off, no system or global config, a minimal
environment and a timeout.

An agent's workspace is untrusted: whatever it writes must not make the orchestrator's own git calls
(diff capture, delivery, rebuilds) run a command. Hooks and fsmonitor are switched off on every call,
system and global config are ignored, and the environment carries only what git needs. Calls that
talk to a remote (fetch, push, ls-remote) run in the mirror, which no sandbox can write, and keep the
user's global config so credential helpers and `insteadOf` rules still work.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel

from tasks_lib.errors import AgentTasksError

HARDENING = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "core.untrackedCache=false",
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


def run_git(
    *args: str,
    cwd: str | Path,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    remote: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    check: bool = True,
) -> GitResult:
    """Run ``git args`` in ``cwd`` hardened as this module describes; GitError on failure when ``check``.

    ``remote`` marks calls that reach the origin (keeps the user's global config for credentials).
    """
    feed = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    try:
        proc = subprocess.run(
            ["git", *HARDENING, *args],
            cwd=str(cwd),
            capture_output=True,
            timeout=timeout_s,
            env=git_env(remote, env),
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
