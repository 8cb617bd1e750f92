"""The egress proxy of `network: allow`: an HTTP proxy (CONNECT tunnels and plain requests) on a Unix socket that
the sandbox sees as a file, which lets a command reach only what an EgressPolicy allows. Names are resolved here,
every resolved address is checked, and the connection goes to the address that was checked (no second lookup a
rebinding name could answer differently). Refusals are answered 403 with the reason, and kept for the session."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tasks_lib.security.egress import EgressPolicy

HEAD_LIMIT = 64 * 1024
CONNECT_TIMEOUT_S = 15


@dataclass
class Blocked:
    """A request the proxy refused."""

    method: str
    target: str
    reason: str

    def line(self) -> str:
        """The refusal as one line."""
        return f"{self.method} {self.target}: {self.reason}"


@dataclass
class EgressProxy:
    """One session's proxy: serves on ``socket_path`` from a thread of its own until stopped."""

    policy: EgressPolicy
    socket_path: Path
    blocked: list[Blocked] = field(default_factory=list)
    requests: int = 0

    def start(self) -> EgressProxy:
        """Serve on the socket (ready when this returns)."""
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            self._server = await asyncio.start_unix_server(self._handle, path=str(self.socket_path), limit=HEAD_LIMIT)
            os.chmod(self.socket_path, 0o666)  # the sandbox may run as another user
            ready.set()

        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="egress-proxy")
        self._thread.start()
        asyncio.run_coroutine_threadsafe(serve(), self._loop).result(timeout=10)
        ready.wait(10)
        return self

    def stop(self) -> None:
        """Stop serving and remove the socket."""
        if getattr(self, "_loop", None) is None:
            return
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._loop = None

    def take_blocked(self) -> list[Blocked]:
        """The refusals since the last call."""
        taken, self.blocked = self.blocked, []
        return taken

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        self.requests += 1
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            await self._refuse(writer, "?", lines[0][:100], "not an HTTP proxy request", status="400 Bad Request")
            return
        method, target, version = parts
        tunnel = method == "CONNECT"
        if tunnel:
            host, _, port_text = target.rpartition(":")
            host = host.strip("[]")
            path = ""
        else:
            url = urlsplit(target)
            try:
                port_text = str(url.port or 80)
            except ValueError:
                port_text = "?"
            if url.scheme != "http" or not url.hostname:
                await self._refuse(writer, method, target, "only http:// URLs and CONNECT tunnels go through")
                return
            host = url.hostname
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        try:
            port = int(port_text)
        except ValueError:
            await self._refuse(writer, method, target, "no port", status="400 Bad Request")
            return
        reason = self.policy.refuse_method(method, tunnel) or self.policy.refuse_name(host, port)
        address = None
        if reason is None:
            address, reason = await self._resolve(host, port)
        if reason is not None:
            await self._refuse(writer, method, f"{host}:{port}", reason)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(address, port), timeout=CONNECT_TIMEOUT_S
            )
        except (OSError, asyncio.TimeoutError) as exc:
            await self._refuse(writer, method, f"{host}:{port}", f"cannot connect: {exc}", status="502 Bad Gateway")
            return
        if tunnel:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            kept = [h for h in lines[1:] if h and not h.lower().startswith(("proxy-", "connection:"))]
            request = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""])
            up_writer.write(request.encode("latin-1"))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        for stream in (writer, up_writer):
            stream.close()

    async def _resolve(self, host: str, port: int) -> tuple[str | None, str | None]:
        """The address to connect to, or why none may be used: every address the name has must be allowed."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            return None, f"cannot resolve: {exc}"
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for address in addresses:
            reason = self.policy.refuse_address(address, port)
            if reason is not None:
                return None, reason
        return (addresses[0], None) if addresses else (None, "no address")

    async def _refuse(
        self, writer: asyncio.StreamWriter, method: str, target: str, reason: str, status: str = "403 Forbidden"
    ) -> None:
        self.blocked.append(Blocked(method, target, reason))
        body = f"agent-tasks egress proxy: {method} {target} refused: {reason}\n".encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.write_eof() if writer.can_write_eof() else writer.close()
