"""`agent-tasks up|gc`: this machine's side — start the local stack, and tidy what ended sessions leave on disk."""

from __future__ import annotations

import typer

from tasks_lib.cli.common import CliError, cli_store, err, out
from tasks_lib.cli.workflows import load_or_fail


def gc(
    older_than: float = typer.Option(
        14, "--older-than", help="Remove workspaces of sessions that ended more than this many days ago."
    ),
    deliveries: float = typer.Option(30, "--deliveries", help="Forget webhook deliveries older than this many days."),
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
) -> None:
    """Start the local stack: Prefect server with its UI, the workflows served, the webhook relay and the
    review pages.

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
    stack = Stack(host, port, relay_port, review_port)
    try:
        stack.start(err)
        out.print(f"Prefect UI     http://{host}:{port}")
        out.print(f"Prefect API    {stack.api_url}")
        out.print(f"Webhook relay  http://{host}:{relay_port}/webhooks/github  (and /webhooks/<name>)")
        out.print(f"Review pages   http://{host}:{review_port}/sessions")
        out.print(f"Workflows      {', '.join(w.name for w in load_or_fail())}")
        out.print(f"Sandbox        {sandbox}")
        out.print(f"Limits         {limits}")
        out.print("Ctrl-C to stop.")
        stack.wait()
    except StackError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        err.print("stopping…")
    finally:
        stack.stop()
    err.print("stopped")
