"""The `agent-tasks` command line: the typer app, which command lives where, and `main`, its entry point.

The commands live in their own modules: run (run), sessions (inbox, show, usage), review (review),
getting_out (apply, export), stack (gc, up), config (config), doctor (doctor), eval (eval), users (login, logout),
audit (audit), and the command groups in agents, workflows, models, users and rules. Heavy imports (Prefect, litellm,
the store) happen inside the commands, so `agent-tasks --help` stays quick.
"""

from __future__ import annotations

import tasks_lib  # noqa: F401  (sets quiet defaults before Prefect and litellm read their settings)

# isort: split
import os
import re
import sys
from pathlib import Path

import typer

from tasks_lib.cli import getting_out, review, run, sessions, stack
from tasks_lib.cli.agents import agents_app
from tasks_lib.cli.audit import audit
from tasks_lib.cli.common import CliError, err
from tasks_lib.cli.config import config
from tasks_lib.cli.doctor import doctor
from tasks_lib.cli.eval import eval_command
from tasks_lib.cli.image import image_app
from tasks_lib.cli.models import models_app
from tasks_lib.cli.pool import pool_app
from tasks_lib.cli.rules import rules_app
from tasks_lib.cli.users import login, logout, users_app
from tasks_lib.cli.workflows import workflows_app


def _whole_words_in_help() -> None:
    """Help text wraps at spaces only: click's wrapper would cut `--no-network` after its hyphen."""
    try:
        import typer._click._textwrap as wrapping  # typer carries its own copy of click
    except ImportError:  # another typer: its help wraps as it does
        return

    class Wrapper(wrapping.TextWrapper):
        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("break_on_hyphens", False)
            super().__init__(*args, **kwargs)

    wrapping.TextWrapper = Wrapper  # type: ignore[misc]


def _usage_errors_in_one_line() -> None:
    """A mistyped command line is one `error:` line naming where help is, not click's three-line usage block."""
    try:
        from typer._click.exceptions import NoArgsIsHelpError, UsageError
    except ImportError:  # another typer: its usage errors read as it writes them
        return

    def show(self: UsageError, file: object = None) -> None:
        if isinstance(self, NoArgsIsHelpError):  # a bare command group: its help is the answer
            err.print(self.format_message())
            return
        where = self.ctx.command_path if self.ctx else "agent-tasks"
        err.print(f"error: {self.format_message()} ({where} -h for help)")

    UsageError.show = show  # type: ignore[method-assign]


_whole_words_in_help()
_usage_errors_in_one_line()

app = typer.Typer(
    help="Hand coding tasks to an LLM agent and review what it did (built on Prefect).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: two columns that wrap cleanly at any width
    context_settings={"max_content_width": 120, "help_option_names": ["-h", "--help"]},
)
app.add_typer(agents_app, name="agents")
app.add_typer(workflows_app, name="workflows")
app.add_typer(models_app, name="models")
app.add_typer(users_app, name="users")
app.add_typer(image_app, name="image")
app.add_typer(pool_app, name="pool")
app.add_typer(rules_app, name="rules")
app.add_typer(models_app, name="model", hidden=True)  # `agent-tasks model local …` reads naturally too
# Commands are listed in `agent-tasks --help` in the order they are registered here.
app.command("eval")(eval_command)
app.command("run")(run.run)
app.command("inbox")(sessions.inbox)
app.command("review")(review.review)
app.command("show")(sessions.show)
app.command("apply")(getting_out.apply)
app.command("export")(getting_out.export)
app.command("usage")(sessions.usage)
app.command("gc")(stack.gc)
app.command("up")(stack.up)
app.command("config")(config)
app.command("doctor")(doctor)
app.command("login")(login)
app.command("logout")(logout)
app.command("audit")(audit)


NETWORK_MODES = ("off", "allow", "on")


def network_words(args: list[str]) -> list[str]:
    """`--network` alone as `--network on` and `--no-network` as `--network off` (the flags of old), so
    `--network off|allow|on` can take a value."""
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--no-network":
            out += ["--network", "off"]
        elif arg == "--network" and (i + 1 == len(args) or args[i + 1] not in NETWORK_MODES):
            following = args[i + 1] if i + 1 < len(args) else ""
            if re.fullmatch(r"[a-z]+", following) and not os.path.exists(following):
                raise CliError(f"--network takes {', '.join(NETWORK_MODES)} (or nothing, for on), not {following!r}")
            out += ["--network", "on"]
        else:
            out.append(arg)
    return out


def kept_traceback() -> str:
    """Write the traceback being handled to a file (the home's logs/, else the temp folder); says where, for a
    report."""
    import tempfile
    import traceback

    text = traceback.format_exc()
    try:
        from tasks_lib.config import load_settings

        folder = load_settings().home / "logs"
        folder.mkdir(parents=True, exist_ok=True)
    except Exception:  # settings or home unusable: the temp folder still takes it
        folder = Path(tempfile.gettempdir())
    path = folder / f"crash-{os.getpid()}.txt"
    try:
        path.write_text(text)
    except OSError:
        return "(this is a bug; the traceback could not be kept)"
    return f"(this is a bug; its traceback is in {path})"


def main() -> None:
    """Entry point: run the app; known errors become one line on stderr and exit code 1."""
    try:
        sys.argv[1:] = network_words(sys.argv[1:])
        app(prog_name="agent-tasks")
    except CliError as exc:
        err.print(f"error: {exc}")
        sys.exit(1)
    except Exception as exc:  # our errors, store and server failures: one readable line instead of a traceback
        from tasks_lib.errors import AgentTasksError
        from tasks_lib.ops.prefect_api import ephemeral_failure

        if ephemeral_failure(exc):
            err.print(f"error: {ephemeral_failure(exc)}")
            sys.exit(1)
        if isinstance(exc, AgentTasksError):
            err.print(f"error: {exc}")
            sys.exit(1)
        if type(exc).__module__.startswith(("sqlalchemy", "httpx", "prefect")):
            first = str(exc).splitlines()[0] if str(exc) else ""
            err.print(f"error: {type(exc).__name__}: {first}")
            sys.exit(1)
        if isinstance(exc, OSError) and exc.strerror:
            err.print(f"error: {exc.strerror.lower()}: {exc.filename}" if exc.filename else f"error: {exc.strerror}")
            sys.exit(1)
        err.print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} {kept_traceback()}")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
