"""`agent-tasks agents list|show|check`: the agents that can be named, as they will be used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from tasks_lib.cli.common import CliError, err, out, wide

if TYPE_CHECKING:
    from tasks_lib.agent.catalog import RepoReader
    from tasks_lib.agent.spec import AgentSpec

agents_app = typer.Typer(help="List, show and check agent files.", no_args_is_help=True)
FORMAT_CHOICES = ("agent-tasks", "continue", "claude-code", "copilot")


def _repo_reader(repo: str | None) -> RepoReader | None:
    """A reader of a repository's files as committed at HEAD (local) or on the default branch (remote), or None."""
    if not repo:
        return None
    from tasks_lib.config import load_settings
    from tasks_lib.git.repo import RepositoryError, normalize_repository
    from tasks_lib.session.preflight import repository_reader

    try:
        path = normalize_repository(repo)
    except RepositoryError as exc:
        raise CliError(str(exc)) from None
    return repository_reader(path, None, load_settings())


@agents_app.command("list")
def agents_list(repo: str | None = typer.Option(None, "--repo", help="Also list this repository's agents.")) -> None:
    """Agents that can be named with --agent: where each comes from, its format, what it is for, how it was read."""
    from tasks_lib.agent.catalog import agent_catalog

    table = Table(box=None, pad_edge=False)
    for col in ("name", "source", "format", "description", "notes"):
        table.add_column(col)
    for row in agent_catalog(_repo_reader(repo)):
        notes = [f"also --agent {row.agent_name!r}"] if row.agent_name else []
        notes += [f"ignored: {', '.join(row.ignored)}"] if row.ignored else []
        notes += [f"CONFLICT: {c}" for c in row.conflicts]
        description = f"INVALID: {row.error}" if row.error else row.description
        table.add_row(row.name, row.source, row.format, description, "; ".join(notes + row.notes))
    wide.print(table)


@agents_app.command("show")
def agents_show(
    name: str = typer.Argument(..., help="Agent name or path."),
    repo: str | None = typer.Option(None, "--repo", help="Look in this repository first."),
) -> None:
    """Show an agent as it will be used: model, tools, budgets, check, rules and prompt."""
    from tasks_lib.agent.catalog import find_agent
    from tasks_lib.agent.formats import FORMAT_LABELS
    from tasks_lib.agent.spec import AgentFileError

    try:
        agent = find_agent(name, _repo_reader(repo))
    except AgentFileError as exc:
        raise CliError(str(exc)) from None
    out.print(Text.assemble((agent.name, "bold"), f" — {agent.description}"))
    for label, value in (
        ("source", agent.source),
        ("format", FORMAT_LABELS[agent.file_format]),
        ("model", agent.model or "(from --model or AGENT_TASKS_MODEL)"),
        ("tools", "none: loop edit, whole files in the reply" if agent.loop == "edit" else _tools_text(agent)),
        (
            "budgets",
            f"{agent.max_steps} steps, {agent.timeout_minutes:g} min, "
            f"{'$' + format(agent.max_cost_usd, 'g') if agent.max_cost_usd else 'no cost cap'}, "
            f"{agent.max_tokens or 'no'} token cap",
        ),
        (
            "check",
            f"{agent.check_command} (fix_until_green: {agent.fix_until_green})" if agent.check_command else "none",
        ),
        ("on accept", agent.on_accept),
        ("branch prefix", agent.branch_prefix),
    ):
        out.print(f"{label:<14}{value}")
    _print_how_read(agent)
    for rule in agent.rule_list:
        out.print(f"rule          {rule}")
    out.print("")
    out.print(agent.prompt)


def _tools_text(agent: AgentSpec) -> str:
    """The agent's tools with their argument patterns: `read_file, run_command(pytest *)`."""
    policy = agent.policy
    return ", ".join(t if policy.allowed[t] is None else f"{t}({', '.join(policy.allowed[t])})" for t in policy.tools)


def _print_how_read(agent: AgentSpec) -> None:
    """The fields of the file that were ignored, and the notes on how it was read."""
    if agent.ignored_fields:
        out.print(f"{'ignored':<14}{', '.join(agent.ignored_fields)} (no meaning here)")
    for note in agent.file_notes:
        out.print(f"{'note':<14}{note}")


def _check_one(label: str, load: Callable[[], AgentSpec]) -> bool:
    """Load one agent file and print what was found; False (and the error on stderr) when it is wrong."""
    from tasks_lib.agent.formats import FORMAT_LABELS
    from tasks_lib.agent.spec import AgentFileError

    try:
        agent = load()
    except AgentFileError as exc:
        err.print(f"error: {exc}")
        return False
    out.print(f"{label}: ok — agent {agent.name!r}, tools: {', '.join(agent.tool_names)}")
    out.print(f"  {'format':<12}{FORMAT_LABELS[agent.file_format]}")
    if agent.ignored_fields:
        out.print(f"  {'ignored':<12}{', '.join(agent.ignored_fields)} (no meaning here)")
    for note in agent.file_notes:
        out.print(f"  {'note':<12}{note}")
    return True


def _check_repository(reader: RepoReader) -> bool:
    """Check every agent file of a repository, and that each can be named; False when any is wrong."""
    from tasks_lib.agent.catalog import candidate_groups, name_conflicts

    ok, groups = True, candidate_groups(reader)
    files = [c for group in groups for c in group if c.in_repository]
    if not files:
        out.print(f"no agent files in the repository's {', '.join(_repo_dirs())}")
    for candidate in files:
        ok = _check_one(candidate.source, candidate.parse) and ok
    conflicts = name_conflicts(groups, repository_only=True)
    for conflict in conflicts:
        err.print(f"error: {conflict}")
    return ok and not conflicts


def _repo_dirs() -> list[str]:
    """The repository's agent folders, in lookup order."""
    from tasks_lib.agent.catalog import REPO_AGENT_DIRS

    return [f"{d}/" for d in REPO_AGENT_DIRS]


@agents_app.command("check")
def agents_check(
    files: list[str] | None = typer.Argument(None, help="Agent files to validate."),
    repo: str | None = typer.Option(None, "--repo", help="Validate every agent file of this repository."),
    file_format: str | None = typer.Option(
        None, "--format", help=f"Read the files as this format ({', '.join(FORMAT_CHOICES)}); default: from the folder."
    ),
) -> None:
    """Validate agent files: the format, the fields ignored, notes, or the file, the field and what is wrong."""
    from tasks_lib.agent.files import read_agent_file

    if not files and not repo:
        raise CliError("name an agent file, or pass --repo PATH to check a repository's agent files")
    if file_format is not None and file_format not in FORMAT_CHOICES:
        raise CliError(f"--format {file_format}: use one of {', '.join(FORMAT_CHOICES)}")
    ok = True
    for file in files or []:
        ok = _check_one(file, lambda f=file: read_agent_file(Path(f), fmt=file_format)) and ok  # type: ignore[arg-type]
    if repo:
        ok = _check_repository(_repo_reader(repo)) and ok  # type: ignore[arg-type]
    if not ok:
        raise typer.Exit(1)
