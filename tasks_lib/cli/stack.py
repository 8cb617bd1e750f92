"""`agent-tasks up|gc`: this machine's side — start the local stack, and tidy what ended sessions leave on disk."""

from __future__ import annotations

import typer

from tasks_lib.agent.local_endpoint import DEFAULT_PORT
from tasks_lib.cli.common import CliError, cli_store, err, out
from tasks_lib.cli.workflows import load_or_fail


def gc(
    older_than: float = typer.Option(
        14, "--older-than", min=0, help="Remove workspaces of sessions that ended more than this many days ago."
    ),
    deliveries: float = typer.Option(
        30, "--deliveries", min=0, help="Forget webhook deliveries older than this many days."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed."),
) -> None:
    """Remove what ended sessions leave on this machine and tidy the repository mirrors (the store keeps the record)."""
    from tasks_lib.config import load_settings
    from tasks_lib.session.gc import collect

    report = collect(cli_store(refresh=True), load_settings(), older_than, deliveries, dry_run)
    if dry_run:
        out.print(f"would remove {len(report.workspaces_removed)} workspaces ({report.bytes_freed / 1e6:.1f} MB)")
        return
    for line in report.lines():
        out.print(line)


def up(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(4200, "--port", help="Prefect server and UI port."),
    relay_port: int = typer.Option(8765, "--relay-port", help="Webhook relay port."),
    review_port: int = typer.Option(8766, "--review-port", help="Review pages port (inbox at /sessions)."),
    local_model: bool = typer.Option(
        False,
        "--local-model",
        help="Serve the embedded local model (Qwen2.5-Coder-1.5B, no API key) and make it the default model of the "
        "runs; prepared on first use (1.1 GB download, about 9 minutes of build on 2 cores, once).",
    ),
    local_model_port: int = typer.Option(
        DEFAULT_PORT, "--local-model-port", help="The local model's port on 127.0.0.1."
    ),
) -> None:
    """Start the local stack: Prefect server with its UI, the workflows served, the webhook relay and the
    review pages.

    While it runs, up.json in the home tells the other commands where its Prefect API and review pages are.
    Ctrl-C stops everything.
    """
    from tasks_lib.config import SettingsError, load_settings
    from tasks_lib.environments import limits_status, sandbox_status
    from tasks_lib.ops.stack import Stack, StackError

    try:
        settings = load_settings()
        sandbox = sandbox_status(settings.sandbox)  # type: ignore[arg-type]
        limits = limits_status(settings.limits)
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    if local_model:
        _prepare_local_model()
    stack = Stack(host, port, relay_port, review_port, local_model_port if local_model else None)
    try:
        stack.start(err)
        out.print(f"Prefect UI     http://{host}:{port}")
        out.print(f"Prefect API    {stack.api_url}")
        out.print(f"Webhook relay  http://{host}:{relay_port}/webhooks/github  (and /webhooks/<name>)")
        out.print(f"Review pages   http://{host}:{review_port}/sessions")
        out.print(f"Workflows      {', '.join(w.name for w in load_or_fail())}")
        out.print(f"Sandbox        {sandbox}")
        out.print(f"Limits         {limits}")
        if stack.local_model:
            from tasks_lib.agent.local_endpoint import LOCAL_MODEL

            out.print(f"Model          {LOCAL_MODEL} at {stack.local_model} (runs with no model configured use it)")
        out.print("Ctrl-C to stop.")
        stack.wait()
    except StackError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        err.print("stopping…")
    finally:
        stack.stop()
    err.print("stopped")


def _prepare_local_model() -> None:
    """Get the local model's weights and server if this machine lacks them, saying what takes time."""
    from tasks_lib.ops.local_model import LocalModelError, prepare_server, prepare_weights, status

    found = status()
    try:
        if not found["weights"]:
            err.print("local model: downloading the pinned weights (1.1 GB, once) …")
            prepare_weights()
        if not found["server"]:
            err.print("local model: building llama-server for this CPU family (about 9 minutes on 2 cores, once) …")
            prepare_server()
    except LocalModelError as exc:
        raise CliError(f"the local model could not be prepared: {exc}") from None
