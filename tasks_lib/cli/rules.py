"""`agent-tasks rules list|propose`: what reviewers teach stays.

`rules list` shows the feedback kept on review decisions (change requests, rejections and retries with words or line
comments), per repository and agent, newest first. `rules propose` starts a session on the repository, through
`agent-tasks run` itself, asking the agent to put the points that recur (or that a reviewer stated as a rule) into
its conventions file: it ends at the review gate like any other session, so nothing is written without an accept.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from tasks_lib.cli.common import CliError, NoStore, age, cli_store, err, out

if TYPE_CHECKING:
    from tasks_lib.review.teachings import Proposal
    from tasks_lib.store import Store
    from tasks_lib.store.teachings import KeptFeedback

rules_app = typer.Typer(
    help="Feedback reviewers gave, and rules from it.\n\nWhat reviewers teach: the feedback kept per repository and "
    "agent, and sessions that propose it as the repository's conventions (AGENTS.md), reviewed like any other.",
    no_args_is_help=True,
)
REPO_HELP = "Repository: local path or git URL, as sessions ran on it."
SHOWN_LINES = 6  # lines of one item's feedback `rules list` shows


def kept_store() -> Store | None:
    """The configured store, or None when there is none yet (no session, so no feedback either)."""
    try:
        return cli_store()
    except NoStore:
        return None


def feedback_of(repo: str | None, agent: str | None, limit: int | None = None) -> list[KeptFeedback]:
    """The feedback kept for ``repo`` and ``agent`` (each: any when None), newest first."""
    from tasks_lib.store.teachings import kept_feedback

    store = kept_store()
    return kept_feedback(store, repository=repo, agent=agent, limit=limit) if store else []


def item_lines(item: KeptFeedback) -> list[str]:
    """One item for `rules list`: when, what, which session, who; then its feedback and line comments, indented."""
    head = f"  {age(item.decided_at):>4} ago  {item.decision_words():<15} {item.session_id[:8]}  by {item.who()}"
    lines = [head]
    text = item.feedback.splitlines()
    lines += [f"      {line}".rstrip() for line in text[:SHOWN_LINES]]
    if len(text) > SHOWN_LINES:
        lines.append(f"      … {len(text) - SHOWN_LINES} more lines (--json has them all)")
    lines += [f"      {c.get('path')}:{c.get('line')}: {str(c.get('body') or '').strip()}" for c in item.comments]
    return lines


@rules_app.command("list")
def rules_list(
    repo: str | None = typer.Option(None, "--repo", metavar="REPO", help=REPO_HELP + " Default: every repository."),
    agent: str | None = typer.Option(
        None, "--agent", "-a", metavar="NAME", help="Only feedback on this agent's sessions."
    ),
    limit: int = typer.Option(200, "--limit", "-n", min=1, metavar="N", help="How many items to show, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: one object per decision with feedback."),
) -> None:
    """Show the reviewer feedback kept, newest first.

    Per repository and agent: the feedback and line comments of every change request, rejection and retry.
    """
    items = feedback_of(repo, agent, limit)
    if as_json:
        print(json.dumps([item.model_dump(mode="json") for item in items], indent=2))
        return
    if not items:
        from tasks_lib.review.teachings import no_feedback_line

        out.print(no_feedback_line(repo or "any repository", agent, hint=False))
        return
    groups: dict[tuple[str, str], list[KeptFeedback]] = {}
    for item in items:
        groups.setdefault((item.repository_key, item.agent), []).append(item)
    for (repository, agent_name), kept in groups.items():
        sessions = len({i.session_id for i in kept})
        out.print(
            Text.assemble(
                (repository, "bold"),
                f"  agent {agent_name}: {len(kept)} item{'s' * (len(kept) != 1)} from {sessions} "
                f"session{'s' * (sessions != 1)}",
            )
        )
        for item in kept:
            out.print("\n".join(item_lines(item)))
    if len({key for key, _ in groups}) == 1:
        from tasks_lib.review.teachings import run_address

        only = run_address(items[0].repository)
        out.print(Text(f"propose them as conventions: agent-tasks rules propose --repo {only}", style="dim"))
    else:
        out.print(Text("propose them as conventions: agent-tasks rules propose --repo REPO", style="dim"))


def choose_repository(repo: str | None, agent: str | None) -> str:
    """The repository to propose for: ``repo``; else the current directory's when it has feedback kept; else the only
    repository with feedback. A CliError names them when there are several."""
    from tasks_lib.review.teachings import NoFeedback, no_feedback_line
    from tasks_lib.store.teachings import repository_key

    if repo:
        return repo
    known: dict[str, str] = {}  # key → the address its newest feedback's session ran on
    for item in feedback_of(None, agent):
        known.setdefault(item.repository_key, item.repository)
    here = repository_key(os.getcwd())
    if here in known:
        return here
    if len(known) == 1:
        return next(iter(known.values()))
    if not known:
        raise NoFeedback(no_feedback_line("any repository", agent))
    listed = ", ".join(list(known)[:5]) + (f" (and {len(known) - 5} more)" if len(known) > 5 else "")
    raise CliError(f"reviewer feedback is kept for several repositories: {listed}; say which with --repo")


def run_command_line(proposal: Proposal, branch: str | None, reviewer: str | None, model: str | None) -> list[str]:
    """The `agent-tasks run` arguments that start ``proposal`` (without the command name)."""
    from tasks_lib.review.teachings import PROPOSAL_AGENT

    args = [proposal.repository, "--task", proposal.instructions, "--agent", PROPOSAL_AGENT]
    for option, value in (("--branch", branch), ("--reviewer", reviewer), ("--model", model)):
        if value:
            args += [option, value]
    return args


def start_with_run(args: list[str]) -> None:
    """Run `agent-tasks run ARGS` in this process, parsed as that command parses them: its checks, its progress and
    review prompt, its --no-wait (which starts `agent-tasks run ARGS` again in the background: the arguments go to
    the command as its context's ``obj``, see `given_arguments`)."""
    from typer.main import get_command

    from tasks_lib.cli.run import run

    command = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    command.command("run")(run)
    get_command(command).main(args=args, prog_name="agent-tasks run", standalone_mode=False, obj=list(args))


@rules_app.command("propose")
def rules_propose(
    repo: str | None = typer.Option(
        None,
        "--repo",
        metavar="REPO",
        help=REPO_HELP + " Default: the current directory's, else the only repository with feedback kept.",
    ),
    agent: str | None = typer.Option(
        None, "--agent", "-a", metavar="NAME", help="Only the feedback on this agent's sessions."
    ),
    branch: str | None = typer.Option(
        None, "--branch", "-b", metavar="BRANCH", help="Branch to start from (default: the repository's default)."
    ),
    reviewer: str | None = typer.Option(None, "--reviewer", "-r", metavar="PERSON", help="Who reviews the proposal."),
    model: str | None = typer.Option(
        None, "--model", "-m", metavar="MODEL", help="litellm model string for the proposal session."
    ),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="With --no-wait: start it in the background and print its session id."
    ),
) -> None:
    """Propose AGENTS.md rules from the feedback kept.

    Starts a session on the repository that asks the agent to put the reviewer feedback that recurs, or that a
    reviewer stated as a rule, into the repository's conventions file, quoting each item with its session. It runs
    as `agent-tasks run` runs and waits for review like any other session: nothing is written to the repository
    until a person accepts it.
    """
    from tasks_lib.review.teachings import NoFeedback, draft_proposal, no_feedback_line

    address = choose_repository(repo, agent)
    store = kept_store()
    if store is None:
        raise NoFeedback(no_feedback_line(address, agent))
    proposal = draft_proposal(store, address, agent, branch)
    sessions = proposal.sessions()
    err.print(
        Text.assemble(
            ("proposing conventions", "bold"),
            f" for {proposal.repository} from {len(proposal.items)} feedback item"
            f"{'s' * (len(proposal.items) != 1)} of {len(sessions)} session{'s' * (len(sessions) != 1)} "
            f"({', '.join(s[:8] for s in sessions[:5])}{', …' if len(sessions) > 5 else ''}): "
            "a session of its own, reviewed like any other",
        )
    )
    args = run_command_line(proposal, branch, reviewer, model)
    start_with_run(args if wait else [*args, "--no-wait"])
