"""What the warm client and the warm server agree on: where they meet and how their messages are framed.

The client opens the connection with a request: an 8-byte big-endian length, sent together with its
stdin/stdout/stderr as SCM_RIGHTS file descriptors, then that many bytes of JSON
(``{"argv": [...], "env": {...}, "cwd": "..."}``). After that both sides speak newline-delimited JSON:
the server answers ``{"pid": N}`` once the flow-run process is forked (or ``{"error": "..."}`` when it
refuses the request) and ``{"exit": CODE, ...}`` when that process ended; the client sends
``{"signal": N}`` for each signal it forwards.

Like every module of the warm engine, its top level imports only os, sys, socket, json and signal
(and its siblings): the client must start fast.
"""

from __future__ import annotations

import json
import os
import signal
import socket

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (milliseconds the client does not spend)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, TypeAlias

    Message: TypeAlias = dict[str, Any]  # one newline-delimited JSON message

HEADER_BYTES = 8  # big-endian length of the JSON request that follows the header
STDIO = (0, 1, 2)
FORWARDED = (signal.SIGTERM, signal.SIGINT)  # the signals a client forwards and a server passes on to its child


def default_socket() -> str:
    """Where the server listens and the client connects unless told otherwise."""
    if os.environ.get("AGENT_TASKS_WARM_SOCKET"):
        return os.environ["AGENT_TASKS_WARM_SOCKET"]
    home = os.environ.get("AGENT_TASKS_HOME") or os.path.join(os.path.expanduser("~"), ".agent-tasks")
    return os.path.join(os.path.expanduser(home), "warm.sock")


def send_line(conn: socket.socket, message: Message) -> None:
    """Send ``message`` as one line of JSON."""
    conn.sendall(json.dumps(message).encode() + b"\n")


def recv_exact(conn: socket.socket, size: int, start: bytes = b"") -> bytes:
    """Read from ``conn`` until ``start`` plus what was read is ``size`` bytes; raise if the peer closes first."""
    data = start
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the peer closed the connection mid-message")
        data += chunk
    return data


class Lines:
    """Newline-delimited JSON messages read from a socket."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""

    def next(self) -> Message | None:
        """The next message, or None when the peer closed the connection."""
        while b"\n" not in self.buffer:
            chunk = self.conn.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)


def encode_request(argv: list[str], env: dict[str, str], cwd: str) -> bytes:
    """The JSON body of a client's request: the engine's arguments, its environment and working directory."""
    return json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode()


def send_request(conn: socket.socket, request: bytes) -> None:
    """Send the length header with this process's stdin/stdout/stderr attached, then the request body."""
    socket.send_fds(conn, [len(request).to_bytes(HEADER_BYTES, "big")], list(STDIO))
    conn.sendall(request)


def read_request(conn: socket.socket) -> tuple[Message, list[int]]:
    """The client's request and its stdin/stdout/stderr."""
    header, fds, _flags, _addr = socket.recv_fds(conn, HEADER_BYTES, len(STDIO))
    if len(fds) != len(STDIO):
        for fd in fds:
            os.close(fd)
        raise ValueError(f"expected {len(STDIO)} file descriptors, got {len(fds)}")
    try:
        header = recv_exact(conn, HEADER_BYTES, header)
        request = json.loads(recv_exact(conn, int.from_bytes(header, "big")))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    if not isinstance(request.get("env"), dict) or not isinstance(request.get("argv"), list):
        for fd in fds:
            os.close(fd)
        raise ValueError("the request needs env and argv")
    return request, fds


def forwarded_signals(data: bytes) -> Iterator[int]:
    """The forwardable signals named by the ``{"signal": N}`` lines in ``data``; other lines (not JSON, not an
    object, no number) are skipped."""
    for line in data.splitlines():
        try:
            signum = int(json.loads(line).get("signal", 0))
        except (ValueError, AttributeError, TypeError):
            continue
        if signum in FORWARDED:
            yield signum


def whole_lines(pending: bytes, data: bytes) -> tuple[bytes, bytes]:
    """The complete lines of ``pending + data``, and the start of a line still to come (kept for the next read)."""
    joined = pending + data
    cut = joined.rfind(b"\n") + 1
    return joined[:cut], joined[cut:][-4096:]
