"""Run a shell command in a workspace with a timeout, an output cap and a scrubbed environment."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

from pydantic import BaseModel

from tasks_lib.secrets import scrubbed_env

DEFAULT_OUTPUT_CAP = 16_000  # bytes kept: half from the head, half from the tail


class CommandResult(BaseModel):
    """What a command did: exit code (None if killed), combined output and whether it was cut."""

    command: str
    exit_code: int | None
    output: str
    timed_out: bool = False
    truncated_bytes: int = 0
    duration_s: float = 0.0

    def render(self) -> str:
        """The result as the text the model reads."""
        if self.timed_out:
            head = f"[command timed out after {self.duration_s:.1f}s and was killed]"
        else:
            head = f"[exit code {self.exit_code}]"
        return f"{head}\n{self.output}" if self.output else head


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


def run_shell(
    command: str,
    cwd: str | Path,
    timeout_s: float = 120,
    output_cap: int = DEFAULT_OUTPUT_CAP,
    env: dict[str, str] | None = None,
) -> CommandResult:
    """Run ``command`` with bash in ``cwd``; kill its whole process group when it runs too long."""
    run_env = scrubbed_env() if env is None else env
    run_env = {**run_env, "GIT_TERMINAL_PROMPT": "0", "PAGER": "cat", "GIT_PAGER": "cat"}
    started = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=str(cwd),
        env=run_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
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
    output, omitted = reader.text()
    return CommandResult(
        command=command,
        exit_code=None if timed_out else proc.returncode,
        output=output,
        timed_out=timed_out,
        truncated_bytes=omitted,
        duration_s=time.monotonic() - started,
    )


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
