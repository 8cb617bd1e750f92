"""`agent-tasks eval`: run a suite of tasks with a model and an agent, and report how each went."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from tasks_lib.cli.common import CliError, err, out, wide
from tasks_lib.evals.run import CHECK_TIMEOUT_S


def eval_command(
    suite: str = typer.Argument("bugfix", help="A shipped suite (bugfix) or a folder of tasks (Exercism layout)."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="litellm model string; default: the agent's, then AGENT_TASKS_MODEL."
    ),
    agent: str = typer.Option("default", "--agent", "-a", help="Built-in agent name or path to an agent file."),
    tasks: str | None = typer.Option(None, "--tasks", help="Only these tasks (comma-separated names)."),
    attempts: int = typer.Option(
        1, "--attempts", min=1, help="Attempts per task; a task counts as solved if any attempt is."
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Tasks run at once."),
    temperature: float | None = typer.Option(None, "--temperature", help="Sampling temperature (0: repeatable)."),
    fix_rounds: int = typer.Option(
        1,
        "--fix-rounds",
        min=0,
        max=20,
        help="Times the withheld tests' failing output goes back to the agent (as Aider's benchmark: 1).",
    ),
    check_timeout: float = typer.Option(
        CHECK_TIMEOUT_S,
        "--check-timeout",
        min=1,
        help="Seconds a task's withheld tests may run before they count as failed (Aider's benchmark: 60).",
    ),
    json_file: str | None = typer.Option(None, "--json", help="Also write the results to this JSON file."),
) -> None:
    """Run every task of a suite through the real flow (no review) and judge it with its withheld tests."""
    import os

    from tasks_lib import progress
    from tasks_lib.evals.suite import SuiteError, load_suite

    try:
        chosen = load_suite(suite, [t.strip() for t in tasks.split(",") if t.strip()] if tasks else None)
    except SuiteError as exc:
        raise CliError(str(exc)) from None
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    from flows.eval import agent_eval

    def show(event: str, data: dict[str, Any]) -> None:
        if event == "eval_task":
            o = data["outcome"]
            verdict = ("solved", "green") if o.solved else ("not solved", "red")
            err.print(
                Text.assemble(
                    f"{o.task} #{o.attempt}: ",
                    verdict,
                    f" in {o.steps} steps, {o.wall_s:.0f} s ({o.end_reason or o.status})",
                )
            )

    err.print(f"eval {suite}: {len(chosen)} tasks × {attempts} with agent {agent}, model {model or '(the agent’s)'}")
    progress.subscribe(show)
    try:
        report = agent_eval(
            suite=suite,
            model=model,
            agent=agent,
            tasks=[t.name for t in chosen],
            attempts=attempts,
            jobs=jobs,
            temperature=temperature,
            fix_rounds=fix_rounds,
            check_timeout_s=check_timeout,
        )
    finally:
        progress.unsubscribe(show)
    print_report(report)
    if json_file:
        with open(json_file, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2, default=str)
        out.print(f"wrote {json_file}")


def print_report(report: dict[str, Any]) -> None:
    """The per-task table and the totals."""
    from tasks_lib.evals.run import TaskOutcome, table_rows

    rows = table_rows([TaskOutcome.model_validate(o) for o in report["outcomes"]])
    table = Table(box=None, pad_edge=False)
    for col in (
        "task",
        "attempt",
        "first",
        "solved",
        "fixes",
        "end",
        "steps",
        "tokens",
        "cost",
        "wall_s",
        "edit_failures",
        "stuck",
        "session",
    ):
        table.add_column(col, justify="left" if col in ("task", "end", "session", "solved", "first") else "right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    wide.print(table)
    s = report["summary"]
    well_formed = "-" if s.get("well_formed_edit_rate") is None else f"{s['well_formed_edit_rate']:.0%}"
    if s.get("escalated"):
        out.print(
            f"escalation: {s['escalated']} attempts went on to the next model; {s['solved_by_first_model']} tasks "
            f"solved by the first model alone, {s['solved']} with the ladder"
        )
    if s.get("pass_at_k") is not None:
        out.print(f"pass@1 {s['pass_at_1']:.0%}, pass@{s['k']} {s['pass_at_k']:.0%} ({s['k']} attempts per task)")
    out.print(
        f"solved {s['solved']} of {s['tasks']} tasks after the fix rounds, {s.get('solved_first_round', 0)} at the "
        f"first round ({s['attempts']} attempts); well-formed edits {well_formed}; median {s['median_steps']} steps, "
        f"{s['median_wall_s']} s; {s['failed_sessions']} failed sessions ({s['crashed']} crashed); "
        f"{s['edit_failures']} edit failures; {s['stuck_events']} stuck events; "
        f"{s['empty_diff_claimed_changes']} summaries claiming changes with an empty diff; first request "
        f"{s['median_first_prompt_tokens']} prompt tokens (median: system prompt, tools and task)"
    )
