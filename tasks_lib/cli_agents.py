"""`agent-tasks agents list|show|check`: the agents that can be named, as they will be used."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from tasks_lib.cli_common import CliError, out, wide

agents_app = typer.Typer(help="List, show and check agent files.", no_args_is_help=True)


def _repo_agents(repo: str | None):
    """(reader, agent files) of a local repository's agent folders, or (None, [])."""
    if not repo:
        return None, []
    from tasks_lib.agent.files import REPO_AGENT_DIRS
    from tasks_lib.gitcli import run_git
    from tasks_lib.gitrepo import RepositoryError, normalize_repository
    from tasks_lib.preflight import repository_reader
    from tasks_lib.settings import load_settings

    try:
        path = normalize_repository(repo)
    except RepositoryError as exc:
        raise CliError(str(exc)) from None
    listing = run_git("ls-tree", "-r", "--name-only", "HEAD", "--", *REPO_AGENT_DIRS, cwd=path, check=False).text.split()
    return repository_reader(path, None, load_settings()), [f for f in listing if f.endswith(".md") and f.count("/") == 2]


@agents_app.command("list")
def agents_list(repo: Optional[str] = typer.Option(None, "--repo", help="Also list this repository's agents.")) -> None:
    """Agents that can be named with --agent, where each comes from, and what it is for."""
    from tasks_lib.agent.files import available_agents

    reader, files = _repo_agents(repo)
    table = Table(box=None, pad_edge=False)
    for col in ("name", "source", "description"):
        table.add_column(col)
    for name, source, description in available_agents(reader, files):
        table.add_row(name, source, description)
    wide.print(table)


@agents_app.command("show")
def agents_show(
    name: str = typer.Argument(..., help="Agent name or path."),
    repo: Optional[str] = typer.Option(None, "--repo", help="Look in this repository first."),
) -> None:
    """Show an agent as it will be used: model, tools, budgets, check, rules and prompt."""
    from tasks_lib.agent.files import AgentFileError, find_agent

    reader, _ = _repo_agents(repo)
    try:
        agent = find_agent(name, reader)
    except AgentFileError as exc:
        raise CliError(str(exc)) from None
    policy = agent.policy
    tools = ", ".join(t if policy.allowed[t] is None else f"{t}({', '.join(policy.allowed[t])})" for t in policy.tools)
    out.print(Text.assemble((agent.name, "bold"), f" — {agent.description}"))
    for label, value in (
        ("source", agent.source), ("model", agent.model or "(from --model or AGENT_TASKS_MODEL)"), ("tools", tools),
        ("budgets", f"{agent.max_steps} steps, {agent.timeout_minutes:g} min, "
                    f"{'$' + format(agent.max_cost_usd, 'g') if agent.max_cost_usd else 'no cost cap'}, "
                    f"{agent.max_tokens or 'no'} token cap"),
        ("check", f"{agent.check_command} (fix_until_green: {agent.fix_until_green})" if agent.check_command else "none"),
        ("on accept", agent.on_accept), ("branch prefix", agent.branch_prefix),
    ):
        out.print(f"{label:<14}{value}")
    for rule in agent.rule_list:
        out.print(f"rule          {rule}")
    out.print("")
    out.print(agent.prompt)


@agents_app.command("check")
def agents_check(file: str = typer.Argument(..., help="Agent file to validate.")) -> None:
    """Validate an agent file: prints 'ok' or the file, the field and what is wrong."""
    from pathlib import Path

    from tasks_lib.agent.files import AgentFileError, read_agent_file

    try:
        agent = read_agent_file(Path(file))
    except AgentFileError as exc:
        raise CliError(str(exc)) from None
    out.print(f"{file}: ok — agent {agent.name!r}, tools: {', '.join(agent.tool_names)}")
