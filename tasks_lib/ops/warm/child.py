"""What a child forked by the warm server does to become the client's flow run, and how it leaves.

It drops the server's sockets and signal handlers, takes over the client's stdin/stdout/stderr,
environment and working directory, rebuilds Prefect's settings and logging from that environment, runs
``prefect.engine`` as ``__main__`` and exits as an interpreter would. Known limit: settings other
libraries read once at import (litellm's LITELLM_* import-time flags) come from the server's
environment, not the client's.
"""

from __future__ import annotations

import os
import signal
import sys

from tasks_lib.ops.warm.protocol import STDIO

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (milliseconds the client does not spend)
if TYPE_CHECKING:
    import socket
    from typing import NoReturn

    from tasks_lib.ops.warm.protocol import Message


def become_flow_run(request: Message, fds: list[int], inherited: list[socket.socket]) -> NoReturn:
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
    warnings.filterwarnings(
        "ignore", message=".*found in sys.modules after import of package.*", category=RuntimeWarning
    )
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


def _exit(code: int) -> NoReturn:
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
