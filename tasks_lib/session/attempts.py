"""Best-of-N in a session: run the attempts at once, rank them, and leave the best in the session's workspace.

Attempt 1 works in the session's workspace, the others in workspaces of their own beside it (each in
its own sandbox); every attempt's diff is stored (scope ``attempt-N``), so the reviewer can accept any
of them later, on any worker, after the extra workspaces are gone. All attempts draw on one budget
(tasks_lib/agent/budget.py: SharedBudget).

Ranking, best first: the agent's check passed, then fewer failing tests, then the change more attempts
arrived at (identical diffs are one group; a majority counts), then a smaller diff, then fewer steps.
An attempt whose loop failed (model error, crash) ranks after every attempt that finished.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger
from pydantic import BaseModel, Field

from tasks_lib.agent.budget import SharedBudget
from tasks_lib.agent.loop import Limits, LoopResult
from tasks_lib.domain.records import CheckResult, DiffResult, EndReason, Usage
from tasks_lib.git.cli import run_git
from tasks_lib.git.delivery import reset_workspace
from tasks_lib.git.diff import capture_workspace_diff, omitted_files
from tasks_lib.git.repo import create_workspace
from tasks_lib.session.context import Attempt, SessionContext
from tasks_lib.session.fix_rounds import check_and_fix
from tasks_lib.steps.setup import run_setup


@dataclass
class Outcome:
    """What one attempt left: its loop, its check, and its diff."""

    loop: LoopResult
    check: CheckResult | None
    diff: DiffResult


def attempt_path(workspace: str, number: int) -> str:
    """The workspace of attempt ``number`` (attempt 1 works in the session's own)."""
    return workspace if number == 1 else f"{workspace}.attempt-{number}"


def run_attempts(
    ctx: SessionContext, prior: Usage, left: Limits, seconds: float
) -> tuple[LoopResult, CheckResult | None]:
    """Run the request's attempts at once on the current conversation; the best ends up in the session's workspace.

    Returns the chosen attempt's loop (its usage is every attempt's together) and check.
    """
    logger = get_run_logger()
    count = ctx.request.attempts
    shared = SharedBudget(left, ctx.request.stop_at_first_green)
    logger.info(
        "best-of-%d: %d attempts at once, one budget%s",
        count,
        count,
        ", the first to pass its check stops the others" if ctx.request.stop_at_first_green else "",
    )
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="attempt") as pool:
        futures = {
            n: pool.submit(contextvars.copy_context().run, _one, ctx, n, shared, prior, left, seconds)
            for n in range(1, count + 1)
        }
        try:
            outcomes = {n: _settled(future, n, ctx) for n, future in futures.items()}
        except BaseException:  # interrupted (SIGTERM, cancel): the attempts stop at their next step, not at their end
            shared.halt("the run was stopped")
            raise
    candidates = [weigh(n, outcome) for n, outcome in outcomes.items()]
    for n, outcome in outcomes.items():
        ctx.store.save_diff(ctx.session_id, outcome.diff, ctx.iteration, scope=f"attempt-{n}")
    ranked = rank_candidates(candidates)
    chosen = ranked[0].attempt
    for c in ranked:
        logger.info("%s", c.headline())
    if chosen != 1 and not move_candidate(ctx.ws.path, ctx.ws.base_commit, outcomes[chosen].diff.patch):
        logger.warning(
            "attempt %d ranks first but its diff is over the limits and cannot be moved: "
            "attempt 1 stays in the workspace",
            chosen,
        )
        chosen = 1
    ctx.store.update_session(
        ctx.session_id,
        candidates={"iteration": ctx.iteration, "chosen": chosen, "ranked": [c.model_dump() for c in ranked]},
    )
    for n in outcomes:
        if n != 1:
            shutil.rmtree(attempt_path(ctx.ws.path, n), ignore_errors=True)
    best = outcomes[chosen]
    loop = best.loop.model_copy(
        update={"usage": shared.total(), "duration_s": max(o.loop.duration_s for o in outcomes.values())}
    )
    return loop, best.check


def move_candidate(workspace: str, base_commit: str, patch: bytes) -> bool:
    """Make the session's workspace hold exactly the change ``patch`` (another attempt's); False if it cannot."""
    if omitted_files(patch):
        return False
    reset_workspace(workspace, base_commit)
    if patch:
        run_git("apply", "--binary", "-", cwd=workspace, input=patch)
    return True


def _one(ctx: SessionContext, number: int, shared: SharedBudget, prior: Usage, left: Limits, seconds: float) -> Outcome:
    """One attempt, start to end: its workspace, its loop, its check (with fix rounds), its diff."""
    path = attempt_path(ctx.ws.path, number)
    environment = ctx.environment
    if number > 1:
        shutil.rmtree(path, ignore_errors=True)  # what a run cut off before left
        create_workspace(
            Path(ctx.ws.mirror),
            Path(path),
            f"{ctx.ws.work_branch}-attempt-{number}",
            ctx.ws.base_commit,
            ctx.repository,
        )
        environment = ctx.make_environment(path, f"attempt-{number}")
        if ctx.sandbox.setup_command:
            setup = run_setup(
                environment, ctx.sandbox.setup_command, ctx.sandbox.setup_timeout_s, ctx.sandbox.setup_network
            )
            if not setup.passed:
                raise RuntimeError(f"the setup command {setup.headline()} in attempt {number}'s workspace")
    attempt = Attempt(number, path, environment, shared)
    try:
        loop = ctx.run_agent(copy.deepcopy(ctx.messages), prior, left, 1, attempt)
        check = None
        if ctx.has_check() and loop.end_reason not in (EndReason.model_error, EndReason.crashed):
            loop, check = check_and_fix(ctx, loop, prior, seconds, attempt)
            if check.passed:
                shared.passed(number)
    finally:
        if environment is not ctx.environment:  # the first attempt's is the session's, closed with the round
            environment.close()
    return Outcome(loop, check, capture_workspace_diff(path, ctx.ws.base_commit))


def _settled(future, number: int, ctx: SessionContext) -> Outcome:
    """An attempt's outcome; an attempt that raised becomes a crashed one (with whatever its workspace holds)."""
    try:
        return future.result()
    except Exception as exc:
        get_run_logger().error("attempt %d crashed: %s: %s", number, type(exc).__name__, exc)
        path = attempt_path(ctx.ws.path, number)
        try:
            diff = capture_workspace_diff(path, ctx.ws.base_commit)
        except Exception:
            diff = DiffResult(base_commit=ctx.ws.base_commit, files=[], added=0, removed=0, patch=b"")
        loop = LoopResult(end_reason=EndReason.crashed, detail=ctx.redact(f"{type(exc).__name__}: {exc}"))
        return Outcome(loop, None, diff)


def weigh(number: int, outcome: Outcome) -> Candidate:
    """How an attempt's outcome is weighed (for rank_candidates)."""
    check = outcome.check
    return Candidate(
        attempt=number,
        end_reason=outcome.loop.end_reason.value,
        detail=outcome.loop.detail,
        summary=(outcome.loop.finish_summary or "")[:2000],
        steps=len(outcome.loop.steps),
        check_passed=check.passed if check else None,
        failing_tests=failing_tests(check.output_tail) if check and not check.passed else None,
        files=len(outcome.diff.files),
        added=outcome.diff.added,
        removed=outcome.diff.removed,
        diff_sha=diff_sha(outcome.diff.patch),
    )


# --- ranking ------------------------------------------------------------------------------------------


_FAILING = [  # how test runners report failures in their closing lines: (pattern, groups that add up)
    re.compile(r"\b(\d+) (?:failed|errors?)\b"),  # pytest: "2 failed, 3 passed", "1 error"
    re.compile(r"FAILED \((?:failures|errors)=(\d+)(?:, (?:failures|errors)=(\d+))?\)"),  # unittest
    re.compile(r"Tests:\s+(\d+) failed"),  # jest
    re.compile(r"(\d+) failing\b"),  # mocha
]


def failing_tests(output: str) -> int | None:
    """How many tests a check's output reports failing, when it says (pytest, unittest, jest, mocha); else None."""
    tail = "\n".join(output.strip().splitlines()[-15:])
    counts = [sum(int(g) for g in match.groups() if g) for pattern in _FAILING for match in pattern.finditer(tail)]
    return max(counts) if counts else None


class Candidate(BaseModel):
    """One attempt's result as the reviewer weighs it."""

    attempt: int
    end_reason: str
    detail: str = ""
    summary: str = ""  # the agent's own finish summary
    steps: int = 0
    check_passed: bool | None = None  # None: the agent has no check
    failing_tests: int | None = None
    files: int = 0
    added: int = 0
    removed: int = 0
    diff_sha: str = ""
    same_as: list[int] = Field(default_factory=list)  # the other attempts that made exactly this change
    rank: int = 0
    why: str = ""

    @property
    def failed(self) -> bool:
        """True when the attempt's loop broke down (a model error or a crash) rather than finishing or hitting a limit."""
        return self.end_reason in (EndReason.model_error.value, EndReason.crashed.value)

    @property
    def lines(self) -> int:
        """Lines added plus removed."""
        return self.added + self.removed

    def headline(self) -> str:
        """One line: rank, attempt and why it ranks there."""
        return f"#{self.rank} attempt {self.attempt}: {self.why}"


def diff_sha(patch: bytes) -> str:
    """A fingerprint of a change: equal for attempts that made exactly the same diff."""
    return hashlib.sha256(patch).hexdigest()[:16] if patch else "empty"


def rank_candidates(candidates: list[Candidate]) -> list[Candidate]:
    """The candidates best first, each with its rank, the attempts it agrees with, and why it ranks there."""
    groups: dict[str, list[int]] = {}
    for c in candidates:
        groups.setdefault(c.diff_sha, []).append(c.attempt)
    for c in candidates:
        c.same_as = [a for a in groups[c.diff_sha] if a != c.attempt]

    def key(c: Candidate) -> tuple:
        check = 0 if c.check_passed else 1 if c.check_passed is None else 2
        failing = c.failing_tests if c.failing_tests is not None else (0 if c.check_passed is not False else 10**6)
        empty = c.diff_sha == "empty"
        return (c.failed, empty, check, failing, -len(groups[c.diff_sha]), c.lines, c.steps, c.attempt)

    ranked = sorted(candidates, key=key)
    for position, c in enumerate(ranked, 1):
        c.rank = position
        c.why = _why(c, len(candidates))
    return ranked


def _why(c: Candidate, total: int) -> str:
    parts = []
    if c.failed:
        parts.append(f"its loop failed ({c.end_reason})")
    elif c.diff_sha == "empty":
        parts.append("changed nothing")
    if c.check_passed is True:
        parts.append("check passed")
    elif c.check_passed is False:
        failing = (
            f", {c.failing_tests} failing test{'s' if c.failing_tests != 1 else ''}"
            if c.failing_tests is not None
            else ""
        )
        parts.append(f"check failed{failing}")
    else:
        parts.append("no check")
    if c.same_as:
        parts.append(f"{len(c.same_as) + 1} of {total} attempts made this same change")
    parts.append(f"{c.files} file{'s' if c.files != 1 else ''} +{c.added} −{c.removed}")
    parts.append(f"{c.steps} step{'s' if c.steps != 1 else ''}")
    if c.end_reason == EndReason.superseded.value:
        parts.append("stopped: another attempt passed its check first")
    elif c.end_reason not in (EndReason.finished.value, EndReason.no_tool_call.value) and not c.failed:
        parts.append(f"ended: {c.end_reason}")
    return " · ".join(parts)
