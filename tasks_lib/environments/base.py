"""The Environment protocol: where the agent's commands run, and what a command run gives back.

Every process the agent causes — its shell commands, its check, the git calls behind its search and
list tools, the setup command — runs through an Environment. ``local`` runs them as plain child
processes; ``bwrap`` runs each one in a bubblewrap sandbox. A container environment would be one
more implementation of the same two methods.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from tasks_lib.environments.limits import LimitGuard

DEFAULT_OUTPUT_CAP = 16_000  # bytes kept: half from the head, half from the tail
# Variables every agent command gets (when the orchestrator has them); anything else must be listed under `env:`.
ALLOWED_ENV = ("PATH", "LANG", "LANGUAGE", "TERM", "TZ")
ALLOWED_ENV_PREFIXES = ("LC_",)
# Quiet, non-interactive defaults for the tools agents run most.
COMMAND_DEFAULTS = {"GIT_TERMINAL_PROMPT": "0", "PAGER": "cat", "GIT_PAGER": "cat"}
Command = str | Sequence[str]
KILLED = "[killed: "  # how a result stopped by a limit starts (read back for the summary facts)
BLOCKED = "[network blocked: "  # how each refused request is told under a command's output


class CommandResult(BaseModel):
    """What a command did: exit code (None if killed), combined output and whether it was cut."""

    command: str
    exit_code: int | None
    output: str
    timed_out: bool = False
    truncated_bytes: int = 0
    duration_s: float = 0.0
    limit: str | None = None  # the limit that stopped it ("memory limit 4 GiB"), when one did
    note: str | None = None  # what its exit code means, when a limit's signal ended a process
    blocked: list[str] = Field(default_factory=list)  # requests the egress proxy refused ("CONNECT host:443: why")

    def render(self) -> str:
        """The result as the text the model reads."""
        if self.limit:
            head = f"{KILLED}{self.limit}; the command and everything it started were stopped]"
        elif self.timed_out:
            head = f"[command timed out after {self.duration_s:.1f}s and was killed]"
        elif self.note:
            head = f"[exit code {self.exit_code}: {self.note}]"
        else:
            head = f"[exit code {self.exit_code}]"
        text = f"{head}\n{self.output}" if self.output else head
        for line in self.blocked[:20]:
            text += f"\n{BLOCKED}{line}]"
        return text


class Environment(Protocol):
    """Runs commands for one session's agent, confined as the environment promises."""

    name: str  # "bwrap", "none", ...

    def execute(
        self, command: Command, timeout_s: float, output_cap: int = DEFAULT_OUTPUT_CAP, network: bool | None = None
    ) -> CommandResult:
        """Run ``command`` (a shell string, or an argv list) in the workspace.

        ``network`` overrides the environment's network setting for this command (the setup step).
        """
        ...

    def close(self) -> None:
        """Let go of what runs between commands (proxies, containers); the next command starts them again."""
        ...


def command_env(
    names: Sequence[str] = (), source: Mapping[str, str] | None = None, home: str | None = None
) -> dict[str, str]:
    """The environment of an agent command: the allow-list, plus the variables named in ``names``."""
    source = os.environ if source is None else source
    env = {k: v for k, v in source.items() if k in ALLOWED_ENV or k.startswith(ALLOWED_ENV_PREFIXES)}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update({name: source[name] for name in names if name in source})
    if home is not None:
        env["HOME"] = home
    return {**env, **COMMAND_DEFAULTS}


def shown(command: Command) -> str:
    """A command as a person reads it."""
    return command if isinstance(command, str) else " ".join(command)


def argv(command: Command, shell: str = "bash") -> list[str]:
    """A shell string run with bash, or an argv list as it is."""
    return [shell, "-c", command] if isinstance(command, str) else list(command)


class _CappedReader:
    """Reads a stream to the end, keeping only its head and tail."""

    def __init__(self, stream, cap: int):
        self.stream, self.half = stream, max(cap // 2, 1)
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_len = 0
        self.total = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for chunk in iter(lambda: self.stream.read1(65536), b""):
            self.total += len(chunk)
            room = self.half - len(self.head)
            if room > 0:
                self.head += chunk[:room]
                chunk = chunk[room:]
            if chunk:
                self.tail.append(chunk)
                self.tail_len += len(chunk)
                while self.tail_len - len(self.tail[0]) >= self.half:
                    self.tail_len -= len(self.tail.popleft())

    def text(self) -> tuple[str, int]:
        tail = b"".join(self.tail)[-self.half :] if self.tail else b""
        omitted = self.total - len(self.head) - len(tail)
        body = bytes(self.head)
        if omitted > 0:
            body += f"\n[... {omitted} bytes of output omitted ...]\n".encode()
        return (body + tail).decode("utf-8", errors="replace"), max(omitted, 0)


def run_process(
    args: list[str],
    cwd: str | Path,
    env: Mapping[str, str],
    timeout_s: float,
    output_cap: int,
    shown_as: str,
    guard: LimitGuard | None = None,
) -> CommandResult:
    """Run ``args`` in its own process group; kill the whole group when it runs too long or ``guard`` finds it over
    a limit; cap its output."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            guard.wrap(args) if guard else args,
            cwd=str(cwd),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except BaseException:
        if guard:
            guard.finish(None)
        raise
    if guard:
        guard.watch(lambda: _signal_group(proc))
    reader = _CappedReader(proc.stdout, output_cap)
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
    # A background child that left the group may keep the pipe open: don't wait for it forever.
    reader.thread.join(timeout=2)
    _kill_group(proc)
    limit = guard.finish(proc.returncode) if guard else None
    output, omitted = reader.text()
    return CommandResult(
        command=shown_as,
        exit_code=None if timed_out or limit else proc.returncode,
        output=output,
        timed_out=timed_out,
        truncated_bytes=omitted,
        duration_s=time.monotonic() - started,
        limit=limit,
        note=guard.hint(proc.returncode) if guard and not limit else None,
    )


def _signal_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    _signal_group(proc)
    proc.wait()
