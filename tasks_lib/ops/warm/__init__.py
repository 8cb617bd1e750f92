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

The modules, one job each: ``client`` (the pool's command), ``server`` (listening, forking, reaping),
``child`` (a forked child becoming the flow run), ``preload`` (what is imported ahead, fork hazards) and
``protocol`` (the socket's address and the messages' framing). This package picks the side to run.

No module's top level imports more than os, sys, socket, json and signal (and its siblings): the client
must start fast.
"""

from __future__ import annotations

import sys

from tasks_lib.ops.warm.client import client
from tasks_lib.ops.warm.preload import fork_hazards, preload
from tasks_lib.ops.warm.protocol import default_socket
from tasks_lib.ops.warm.server import WarmServer, serve

__all__ = ["WarmServer", "client", "default_socket", "fork_hazards", "main", "preload", "serve"]


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
