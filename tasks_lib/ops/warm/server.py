"""The warm server: listens on a unix socket and forks a flow-run process for each client, then minds it.

It accepts a client's request, forks a child that becomes the flow run (see ``child``), passes on the
signals the client forwards, reaps the child and reports its exit status back. A client that vanished
without a word gets its child stopped: SIGTERM, then SIGKILL ``KILL_GRACE_S`` later. SIGTERM/SIGINT stop
the server once the running flow runs finished; a second signal stops them too.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from tasks_lib.ops.warm.child import become_flow_run
from tasks_lib.ops.warm.preload import fork_hazards, preload
from tasks_lib.ops.warm.protocol import FORWARDED, forwarded_signals, read_request, send_line, whole_lines

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (milliseconds the client does not spend)
if TYPE_CHECKING:
    import selectors
    from types import FrameType

    from tasks_lib.ops.warm.protocol import Message

KILL_GRACE_S = 30.0  # after a client vanished: SIGTERM to its child, then SIGKILL this much later


class _Run:
    """One flow run in progress: its child process and the client's connection."""

    def __init__(self, pid: int, conn: socket.socket) -> None:
        self.pid = pid
        self.conn = conn
        self.kill_at: float | None = None
        self.pending = b""  # the start of a line the client has not finished sending


class WarmServer:
    """Accepts clients on a unix socket and forks a flow-run process for each."""

    def __init__(self, path: str) -> None:
        import selectors

        self.path = path
        self.listener = _listen(path)
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.runs: dict[int, _Run] = {}
        self.stopping = 0

    def serve(self) -> None:
        """Serve until SIGTERM/SIGINT, then let the running flow runs finish (a second signal stops them)."""
        import selectors

        self._install_signals()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        try:
            while not (self.stopping and not self.runs):
                for key, _ in self.selector.select(timeout=self._timeout()):
                    self._dispatch(key)
                self._reap()
                self._kill_overdue()
        finally:
            self._close_listener()

    def _timeout(self) -> float | None:
        import time

        deadlines = [r.kill_at for r in self.runs.values() if r.kill_at is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _install_signals(self) -> None:
        self.wake_w.setblocking(False)
        self.wake_r.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select through the wakeup fd
        for signum in FORWARDED:
            signal.signal(signum, self._on_stop)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping += 1
        self._close_listener()
        if self.stopping > 1:
            for run in self.runs.values():
                _signal_child(run.pid, signal.SIGTERM)

    def _close_listener(self) -> None:
        if self.listener.fileno() < 0:
            return
        try:
            self.selector.unregister(self.listener)
        except (KeyError, ValueError):
            pass
        self.listener.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _dispatch(self, key: selectors.SelectorKey) -> None:
        if key.data == "wake":
            try:
                self.wake_r.recv(4096)
            except BlockingIOError:
                pass
        elif key.data == "accept":
            self._accept()
        else:
            self._from_client(key.data)

    def _accept(self) -> None:
        import selectors

        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        try:
            conn.settimeout(10)  # a client that connects but never sends cannot hold the server for long
            request, fds = read_request(conn)
        except (OSError, ValueError, ConnectionError) as exc:
            _refuse(conn, f"bad request: {exc}")
            return
        try:
            pid = self._fork(request, fds, conn)
        finally:
            for fd in fds:
                os.close(fd)
        conn.settimeout(None)
        _log(f"flow run {request['env'].get('PREFECT__FLOW_RUN_ID', '?')} started as process {pid}")
        run = _Run(pid, conn)
        self.runs[pid] = run
        try:
            send_line(conn, {"pid": pid})
        except OSError:
            self._client_gone(run)
            return
        self.selector.register(conn, selectors.EVENT_READ, run)

    def _fork(self, request: Message, fds: list[int], conn: socket.socket) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            inherited = [self.listener, self.wake_r, self.wake_w, conn, *(r.conn for r in self.runs.values())]
            become_flow_run(request, fds, inherited)  # never returns
        return pid

    def _from_client(self, run: _Run) -> None:
        try:
            data = run.conn.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._client_gone(run)
            return
        lines, run.pending = whole_lines(run.pending, data)
        for signum in forwarded_signals(lines):
            _signal_child(run.pid, signum)

    def _client_gone(self, run: _Run) -> None:
        """The client died without forwarding a signal (e.g. SIGKILL): stop its child as the worker meant to."""
        import time

        if run.kill_at is None:
            _signal_child(run.pid, signal.SIGTERM)
            run.kill_at = time.monotonic() + KILL_GRACE_S
        self._forget_conn(run)

    def _forget_conn(self, run: _Run) -> None:
        try:
            self.selector.unregister(run.conn)
        except (KeyError, ValueError):
            pass
        run.conn.close()

    def _kill_overdue(self) -> None:
        import time

        now = time.monotonic()
        for run in self.runs.values():
            if run.kill_at is not None and now >= run.kill_at:
                _signal_child(run.pid, signal.SIGKILL)
                run.kill_at = None

    def _reap(self) -> None:
        while self.runs:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            run = self.runs.pop(pid, None)
            code = os.waitstatus_to_exitcode(status)
            _log(f"process {pid} exited with {code} after {usage.ru_utime + usage.ru_stime:.2f} CPU-s")
            if run is None or run.conn.fileno() < 0:
                continue
            try:
                send_line(
                    run.conn,
                    {
                        "exit": code,
                        "cpu_user_s": usage.ru_utime,
                        "cpu_system_s": usage.ru_stime,
                        "max_rss_kb": usage.ru_maxrss,
                    },
                )
            except OSError:
                pass
            self._forget_conn(run)


def _log(message: str) -> None:
    print(f"warm server: {message}", file=sys.stderr, flush=True)


def _listen(path: str) -> socket.socket:
    """A unix socket at ``path`` only this user can connect to; refuses to steal a live server's socket."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        pass
    else:
        probe.close()
        raise SystemExit(f"a warm server is already listening on {path}")
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    listener.listen(64)
    listener.setblocking(False)
    return listener


def _refuse(conn: socket.socket, why: str) -> None:
    try:
        send_line(conn, {"error": why})
    except OSError:
        pass
    conn.close()


def _signal_child(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def serve(path: str) -> None:
    """Import once, check no thread runs, then serve."""
    import gc

    preload()
    gc.freeze()  # the children's collections leave the preloaded objects (and their shared pages) alone
    threads = fork_hazards()
    if threads:
        raise SystemExit(f"refusing to fork: threads running after the imports: {', '.join(threads)}")
    server = WarmServer(path)
    _log(f"ready on {path} (pid {os.getpid()})")
    server.serve()
