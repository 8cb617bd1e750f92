"""`agent-tasks doctor`: what a run needs on this machine, checked in a few seconds, with what to do for each gap."""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Literal, NamedTuple

import typer
from rich.table import Table
from rich.text import Text

from tasks_lib.cli.common import out, wide

State = Literal["ok", "warn", "fail"]
STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}
DISK_FAIL_GIB, DISK_WARN_GIB = 1.0, 5.0


class Check(NamedTuple):
    """One line of the report: what was checked, how it stands, what was found, and what to do when it is not ok."""

    name: str
    state: State
    found: str
    fix: str = ""


def model_checks() -> list[Check]:
    """The default model: which it is, its provider key, and (self-hosted) whether its server answers."""
    from tasks_lib.agent.local_endpoint import LOCAL_MODEL, local_api_base, served_base
    from tasks_lib.agent.model import check_model_name, missing_key
    from tasks_lib.agent.profile import base_url, endpoint_problem
    from tasks_lib.config import load_settings

    configured = load_settings().default_model
    model = configured or (LOCAL_MODEL if served_base() else None)
    if model is None:
        return [
            Check(
                "model",
                "warn",
                "none by default: each run needs --model or an agent file's model:",
                "set AGENT_TASKS_MODEL (e.g. openai/gpt-4o) with its key, or serve the local model: "
                "agent-tasks up --local-model",
            )
        ]
    source = "AGENT_TASKS_MODEL" if configured else "the local model this machine serves"
    try:
        check_model_name(model)
    except ValueError as exc:
        return [Check("model", "fail", str(exc), "set AGENT_TASKS_MODEL to provider/model")]
    checks = [Check("model", "ok", f"{model} ({source})")]
    lacking = missing_key(model)
    checks.append(
        Check("provider key", "fail", lacking.split(":", 1)[0], "export the key in the shell that runs agent-tasks")
        if lacking
        else Check("provider key", "ok", "set, or none needed")
    )
    api_base = local_api_base(model)
    if base_url(model, api_base) is None:
        return [*checks, Check("model server", "ok", "hosted by the provider (not called from here)")]
    down = endpoint_problem(model, api_base)
    checks.append(
        Check("model server", "fail", down.split(": start it", 1)[0], "start it" + down.split(": start it", 1)[1])
        if down
        else Check("model server", "ok", f"answers at {base_url(model, api_base)}")
    )
    return checks


def sandbox_check() -> Check:
    """Whether bubblewrap confines agent commands here."""
    from tasks_lib.environments.bwrap import SandboxUnavailable, sandbox_version
    from tasks_lib.environments.spec import INSTALL_HINT

    try:
        return Check("sandbox", "ok", f"{sandbox_version()}: agent commands are confined")
    except SandboxUnavailable as exc:
        return Check("sandbox", "warn", f"{exc}: commands would run unconfined", INSTALL_HINT)


def git_check() -> Check:
    """git present, and the identity accepted commits carry."""
    from tasks_lib.config import load_settings

    binary = shutil.which("git")
    if binary is None:
        return Check("git", "fail", "git is not installed", "apt install git (or your system's package)")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    settings = load_settings()
    return Check("git", "ok", f"{version}; commits by {settings.git_name} <{settings.git_email}>")


def disk_check() -> Check:
    """Free space where workspaces and mirrors live."""
    from tasks_lib.config import load_settings

    home = load_settings().home
    where = next((p for p in (home, *home.parents) if p.exists()), home.anchor or "/")
    free = shutil.disk_usage(where).free / 2**30
    found = f"{free:.1f} GiB free at {where}"
    if free < DISK_FAIL_GIB:
        return Check("disk", "fail", found, "free space, or set AGENT_TASKS_HOME to a larger disk")
    if free < DISK_WARN_GIB:
        return Check(
            "disk", "warn", found, "workspaces of large repositories may not fit; agent-tasks gc frees old ones"
        )
    return Check("disk", "ok", found)


def prefect_check() -> Check:
    """Which Prefect server runs would report to."""
    from tasks_lib.ops.prefect_api import find_local_api

    api = find_local_api()
    if api:
        return Check("prefect", "ok", f"server at {api}: runs show in its UI and wait there for review")
    return Check(
        "prefect",
        "warn",
        "no server running: each run starts a temporary one (about 10 s) and its record goes with it",
        "agent-tasks up (in another terminal) keeps runs, the UI and the review pages",
    )


def store_check() -> Check:
    """Where sessions are kept, and whether the store is there yet."""
    from tasks_lib.cli.common import missing_store
    from tasks_lib.config import load_settings

    url = load_settings().db_url
    if missing_store():
        return Check("store", "ok", f"{url.removeprefix('sqlite:///')} (created by the first run)")
    shown = url.split("@", 1)[-1] if "@" in url else url.removeprefix("sqlite:///")
    return Check("store", "ok", shown)


def run_checks() -> list[Check]:
    """Every check, cheapest first."""
    return [git_check(), disk_check(), store_check(), sandbox_check(), prefect_check(), *model_checks()]


def doctor(as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON.")) -> None:
    """Check what a run needs here (model, key, model server, sandbox, git, disk, Prefect, store) and say what to do."""
    started = time.monotonic()
    checks = run_checks()
    if as_json:
        out.print_json(data=[c._asdict() for c in checks])
    else:
        table = Table(box=None, pad_edge=False)
        for column in ("check", "", "found", "what to do"):
            table.add_column(column, overflow="fold")
        for c in checks:
            table.add_row(c.name, Text(c.state, style=STYLE[c.state]), c.found, c.fix)
        wide.print(table)
        failed, warned = (sum(c.state == state for c in checks) for state in ("fail", "warn"))
        verdict = f"{failed} to fix before a run" if failed else "ready to run"
        verdict += f", {warned} to look at" if warned else ""
        out.print(Text(f"{verdict} (checked in {time.monotonic() - started:.1f} s)", style="dim"))
    if any(c.state == "fail" for c in checks):
        raise typer.Exit(1)
