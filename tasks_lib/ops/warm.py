"""A warm engine for process workers: flow runs forked from an interpreter that has already imported everything.

A process worker starts every flow run as a fresh ``python -m prefect.engine``, which spends seconds of
CPU importing Prefect, the flow and litellm before the session does anything. Here one long-lived server
imports them once and forks a child per flow run; the worker's per-run command is a tiny client that
hands the server its environment, working directory and stdin/stdout/stderr, and waits.

    python -m tasks_lib.warm serve [--socket PATH]     # next to the worker, same user, same machine
    python -m tasks_lib.warm client [--socket PATH]    # the pool's `command` job variable

The socket defaults to $AGENT_TASKS_WARM_SOCKET, else $AGENT_TASKS_HOME/warm.sock. The child replaces its
environment with the client's and rebuilds Prefect's settings and logging from it, then runs
``prefect.engine`` as ``__main__``. The client forwards SIGTERM/SIGINT to the child and exits with its
exit status; when no server answers it execs ``python -m prefect.engine`` itself. Known limit: settings
other libraries read once at import (litellm's LITELLM_* import-time flags) come from the server's
environment, not the client's.

This module's top level imports only os, sys, socket, json and signal: the client must start fast.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

HEADER_BYTES = 8  # big-endian length of the JSON request that follows the header
STDIO = (0, 1, 2)
KILL_GRACE_S = 30.0  # after a client vanished: SIGTERM to its child, then SIGKILL this much later
FORWARDED = (signal.SIGTERM, signal.SIGINT)
# Modules a flow run imports on its way (deployment pull steps, tasks, the sandboxes, litellm's service logger).
RUN_MODULES = ("prefect.runner", "prefect.deployments.steps", "prefect.task_engine", "prefect.concurrency.sync",
               "prefect.concurrency.services", "prefect.utilities.visualization", "prefect._internal.observers",
               "prefect._internal.installation", "prefect._internal.infrastructure_exit_codes",
               "tasks_lib.environments.bwrap", "tasks_lib.environments.local", "litellm._service_logger",
               "litellm.integrations.prometheus_services")


def default_socket() -> str:
    """Where the server listens and the client connects unless told otherwise."""
    if os.environ.get("AGENT_TASKS_WARM_SOCKET"):
        return os.environ["AGENT_TASKS_WARM_SOCKET"]
    home = os.environ.get("AGENT_TASKS_HOME") or os.path.join(os.path.expanduser("~"), ".agent-tasks")
    return os.path.join(os.path.expanduser(home), "warm.sock")


def _send_line(conn: socket.socket, message: dict) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _recv_exact(conn: socket.socket, size: int, start: bytes = b"") -> bytes:
    data = start
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the peer closed the connection mid-message")
        data += chunk
    return data


# ---------------------------------------------------------------------------------------------- client


class _Lines:
    """Newline-delimited JSON messages read from a socket."""

    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.buffer = b""

    def next(self) -> dict | None:
        """The next message, or None when the peer closed the connection."""
        while b"\n" not in self.buffer:
            chunk = self.conn.recv(65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)


def _engine_argv(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "prefect.engine", *argv]


def _fall_back(argv: list[str], why: str) -> None:
    """Become ``python -m prefect.engine`` in this process: what the worker would have run."""
    if os.environ.get("AGENT_TASKS_WARM_VERBOSE"):
        print(f"warm client: {why}; starting the engine cold", file=sys.stderr, flush=True)
    os.execv(sys.executable, _engine_argv(argv))


def _request(argv: list[str]) -> bytes:
    return json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()


def _exit_like(code: int) -> int:
    """Exit with ``code``; a negative code (killed by a signal) is reproduced by the same signal."""
    if code >= 0:
        return code
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
    return 128 - code


def client(argv: list[str], path: str) -> int:
    """Run one flow run through the warm server; the child's exit code (or exec the cold engine)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError as exc:
        conn.close()
        _fall_back(argv, f"no warm server at {path} ({exc.strerror or exc})")
    pending: list[int] = []
    child: dict = {}

    def forward(signum: int, _frame) -> None:
        pending.append(signum)
        if child:
            _send_line(conn, {"signal": signum})

    for signum in FORWARDED:
        signal.signal(signum, forward)
    request = _request(argv)
    try:
        socket.send_fds(conn, [len(request).to_bytes(HEADER_BYTES, "big")], list(STDIO))
        conn.sendall(request)
        lines = _Lines(conn)
        started = lines.next()
    except OSError as exc:
        started = None
        why = str(exc)
    else:
        why = "the warm server did not start the run"
    if not started or "pid" not in started:
        conn.close()
        if pending:
            return 128 + pending[0]
        _fall_back(argv, (started or {}).get("error") or why)
    child.update(started)
    for signum in pending:
        _send_line(conn, {"signal": signum})
    ended = lines.next()
    if ended is None:
        print(f"warm client: the warm server went away while flow-run process {child['pid']} ran", file=sys.stderr)
        return 1
    return _exit_like(int(ended["exit"]))


# ---------------------------------------------------------------------------------------------- server


def preload() -> list[str]:
    """Import what every flow run needs, including what litellm loads lazily on its first call; the modules."""
    import tasks_lib  # noqa: F401  (its quiet defaults, before Prefect reads its settings)
    import prefect  # noqa: F401
    import prefect._internal.control_listener  # noqa: F401
    import prefect._internal.metrics  # noqa: F401
    import prefect.flow_engine  # noqa: F401
    import flows.agent_task  # noqa: F401
    import litellm  # noqa: F401
    import tasks_lib.agent.model  # noqa: F401

    _import_lazy_modules([*RUN_MODULES, *_first_call_modules()])
    return sorted(sys.modules)


def _first_call_modules() -> list[str]:
    """Modules a first model call imports, found in a throwaway child (the call starts threads)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        code = 0
        try:
            from tasks_lib.agent.model import litellm

            before = set(sys.modules)
            litellm().completion(model="openai/warm-up", messages=[{"role": "user", "content": "hi"}],
                                 mock_response="hi", api_key="sk-warm-up")
            os.write(write_end, "\n".join(sorted(set(sys.modules) - before)).encode())
        except BaseException:  # the warm-up is an optimisation: a failure leaves the first call cold
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        names = pipe.read().decode().split()
    os.waitpid(pid, 0)
    return names


def _import_lazy_modules(names: list[str]) -> None:
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  (a module that only imports in a call's context stays lazy)
            pass


def fork_hazards() -> list[str]:
    """Threads other than the main one: forking with them running is unsafe."""
    import threading

    return [t.name for t in threading.enumerate() if t is not threading.main_thread()]


class _Run:
    """One flow run in progress: its child process and the client's connection."""

    def __init__(self, pid: int, conn: socket.socket):
        self.pid = pid
        self.conn = conn
        self.kill_at: float | None = None


class WarmServer:
    """Accepts clients on a unix socket and forks a flow-run process for each."""

    def __init__(self, path: str):
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

    def _on_stop(self, signum: int, _frame) -> None:
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

    def _dispatch(self, key) -> None:
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
            request, fds = _read_request(conn)
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
            _send_line(conn, {"pid": pid})
        except OSError:
            self._client_gone(run)
            return
        self.selector.register(conn, selectors.EVENT_READ, run)

    def _fork(self, request: dict, fds: list[int], conn: socket.socket) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            inherited = [self.listener, self.wake_r, self.wake_w, conn, *(r.conn for r in self.runs.values())]
            _become_flow_run(request, fds, inherited)  # never returns
        return pid

    def _from_client(self, run: _Run) -> None:
        try:
            data = run.conn.recv(4096)
        except OSError:
            data = b""
        if not data:
            self._client_gone(run)
            return
        for line in data.splitlines():
            try:
                signum = int(json.loads(line).get("signal", 0))
            except (ValueError, AttributeError):
                continue
            if signum in FORWARDED:
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
                _send_line(run.conn, {"exit": code, "cpu_user_s": usage.ru_utime,
                                      "cpu_system_s": usage.ru_stime, "max_rss_kb": usage.ru_maxrss})
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


def _read_request(conn: socket.socket) -> tuple[dict, list[int]]:
    """The client's request and its stdin/stdout/stderr."""
    header, fds, _flags, _addr = socket.recv_fds(conn, HEADER_BYTES, len(STDIO))
    if len(fds) != len(STDIO):
        for fd in fds:
            os.close(fd)
        raise ValueError(f"expected {len(STDIO)} file descriptors, got {len(fds)}")
    try:
        header = _recv_exact(conn, HEADER_BYTES, header)
        request = json.loads(_recv_exact(conn, int.from_bytes(header, "big")))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    if not isinstance(request.get("env"), dict) or not isinstance(request.get("argv"), list):
        for fd in fds:
            os.close(fd)
        raise ValueError("the request needs env and argv")
    return request, fds


def _refuse(conn: socket.socket, why: str) -> None:
    try:
        _send_line(conn, {"error": why})
    except OSError:
        pass
    conn.close()


def _signal_child(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _become_flow_run(request: dict, fds: list[int], inherited: list[socket.socket]) -> None:
    """In the forked child: take over the client's stdio, environment and directory, run the engine, exit."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for sock in inherited:
            sock.close()
        _reset_signals()
        os.setsid()  # the server's terminal or process group is not the flow run's
        for target, fd in zip(STDIO, fds):
            os.dup2(fd, target)
            os.close(fd)
        _take_environment(request["env"])
        os.chdir(request.get("cwd") or "/")
        code = _run_engine(request["argv"])
    except BaseException:  # noqa: BLE001  (nothing may unwind into the server's loop)
        import traceback

        traceback.print_exc()
    finally:
        _exit(code)


def _reset_signals() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _take_environment(env: dict[str, str]) -> None:
    """Make ``env`` the process environment and rebuild what Prefect and tasks_lib derived from the old one."""
    import importlib

    os.environ.clear()
    os.environ.update(env)
    import tasks_lib

    importlib.reload(tasks_lib)  # its quiet defaults, as a fresh interpreter sets them
    from prefect.context import refresh_global_settings_context
    from prefect.logging import configuration

    refresh_global_settings_context()
    configuration.PROCESS_LOGGING_CONFIG.clear()
    configuration.setup_logging(incremental=False)


def _run_engine(argv: list[str]) -> int:
    """Run ``python -m prefect.engine ARGV`` in this process; its exit code."""
    import runpy
    import warnings

    sys.argv = ["-m", *argv]
    warnings.filterwarnings("ignore", message=".*found in sys.modules after import of package.*",
                            category=RuntimeWarning)
    try:
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return _exit_code(exc.code)
    return 0


def _exit_code(value: object) -> int:
    """The process exit code ``sys.exit(value)`` would give."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _exit(code: int) -> None:
    """Leave the child as an interpreter would: wait for non-daemon threads, run atexit hooks, flush."""
    import atexit
    import threading

    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


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


def main(argv: list[str] | None = None) -> int:
    """``serve`` or ``client``, with an optional ``--socket PATH``; arguments after them go to the engine."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("serve", "client"):
        print("usage: python -m tasks_lib.warm serve|client [--socket PATH] [ENGINE ARGS...]", file=sys.stderr)
        return 2
    command, rest = args[0], args[1:]
    path = default_socket()
    if rest[:1] == ["--socket"] and len(rest) >= 2:
        path, rest = rest[1], rest[2:]
    if command == "serve":
        serve(path)
        return 0
    return client(rest, path)


if __name__ == "__main__":
    sys.exit(main())
