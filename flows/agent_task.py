"""The agent task flow: checkout → agent loop → check → diff → summary → review, recorded as a Session.

A session can go round several iterations: after each summary a reviewer accepts, requests changes (the agent
continues its conversation with the feedback), retries with new instructions (a fresh start from the base) or
rejects. Plain runs wait for the decision with a blocking pause; deployment runs suspend and, when resumed,
re-enter here and carry on from where the store says the session stood (tasks_lib/session/reentry.py).

Every rule the flow relies on lives in a module named for it: the session's context (session/context.py), its
statuses (session/lifecycle.py), preflight, the iteration's work and budget (session/work.py), best-of-N
(session/attempts.py), the review gate and decisions (review/), and the Prefect tasks of the card (steps/).
"""

from __future__ import annotations

import tasks_lib  # noqa: F401  (sets quiet defaults before Prefect and litellm read their settings)

# isort: split
from prefect import flow, get_run_logger
from prefect.runtime import deployment, flow_run

from tasks_lib import progress
from tasks_lib.agent.loop import LoopResult
from tasks_lib.config import load_settings
from tasks_lib.domain.request import TaskRequest
from tasks_lib.domain.session import SessionResult, SessionStatus
from tasks_lib.git.repo import RepositoryError
from tasks_lib.review.decisions import accept, another_iteration, early_end_notice, reject, settle_interrupted_delivery
from tasks_lib.review.gate import wait_for_review
from tasks_lib.security.redaction import install_log_redaction
from tasks_lib.session.concurrency import session_slot
from tasks_lib.session.context import SessionContext
from tasks_lib.session.lifecycle import StoreRefused, claim_session, open_run_store
from tasks_lib.session.outcome import (
    SessionFailed,
    ended_session,
    final_status,
    loop_failed,
    session_result,
    settled_on_interruption,
)
from tasks_lib.session.reconcile import settle_flow_run
from tasks_lib.session.reentry import continue_iteration, restore
from tasks_lib.session.start import begin_session
from tasks_lib.session.work import agent_work, begin_iteration, end_iteration, setup
from tasks_lib.steps.capture_diff import capture_diff
from tasks_lib.steps.checkout import checkout
from tasks_lib.steps.summarize import summarize
from tasks_lib.store import open_store

__all__ = ["SessionFailed", "StoreRefused", "agent_task"]


def run_name() -> str:
    """The flow run's name: the agent and the start of the instructions."""
    raw = flow_run.parameters.get("request") or {}
    data = raw.model_dump() if isinstance(raw, TaskRequest) else dict(raw)
    task_text = " ".join(str(data.get("instructions") or "").split())
    agent = str(data.get("agent") or "default").rsplit("/", 1)[-1].removesuffix(".md")
    return f"{agent}: {task_text[:60] or '(no instructions)'}"


def settle_from_state(flow, flow_run, state) -> None:
    """Prefect state hook: a cancelled or crashed flow run ends its session (diff kept)."""
    store = open_store(load_settings().db_url)
    sid = settle_flow_run(store, str(flow_run.id), state.type.value, state.message or "", by="prefect-hook")
    if sid:  # hooks may run outside the run's context (the runner runs on_cancellation hooks itself)
        from prefect.logging.loggers import flow_run_logger

        flow_run_logger(flow_run).warning("session %s ended: %s", sid, store.get_session(sid).status_reason)


@flow(
    name="agent-task",
    flow_run_name=run_name,
    validate_parameters=False,
    on_cancellation=[settle_from_state],
    on_crashed=[settle_from_state],
)
def agent_task(request: TaskRequest) -> SessionResult:
    """Run a coding agent on a repository, record the session (summary, diff, log) and let a reviewer decide.

    The source repository is never modified before an explicit accept: the agent works in its own workspace on a
    new `agent/...` branch, its commands confined by the session's sandbox. Failed sessions raise SessionFailed
    after everything is recorded.
    """
    install_log_redaction()
    settings = load_settings()
    store = open_run_store(settings, deployment_run=bool(deployment.id))
    claim = claim_session(store, str(flow_run.id) if flow_run.id else None, request, deployment.name or None)
    if claim.mode == "ended":
        return ended_session(store, claim.session_id)
    logger = get_run_logger()
    logger.info("session %s%s", claim.session_id, claim.note)
    progress.publish("session", session_id=claim.session_id)
    with settled_on_interruption(store, claim.session_id):
        ctx = SessionContext.open(store, claim.session_id, settings, request, logger)
        return run(ctx, claim.mode)


def run(ctx: SessionContext, mode: str) -> SessionResult:
    """Start the session, or pick it up where the store says it stopped, and see it to a terminal status."""
    if mode in ("review", "deliver"):  # resumed for its review, or restarted while delivering an accepted change
        restore(ctx)
        notice = settle_interrupted_delivery(ctx) if mode == "deliver" else None
        if mode == "deliver" and notice is None:
            return session_result(ctx.store, ctx.session_id)
        return review(ctx, notice)
    with session_slot(ctx, supersede=mode == "new"):
        if mode == "continue":  # restarted while the agent worked
            restore(ctx)
            loop = iteration(ctx, continued=continue_iteration(ctx))
        else:
            start(ctx)
            loop = iteration(ctx)
    if loop_failed(loop):
        raise ctx.fail(f"{loop.end_reason.value}: {loop.detail}")
    if not ctx.request.review:
        return ctx.finish(final_status(loop), loop.detail)
    return review(ctx)


def start(ctx: SessionContext) -> None:
    """Checkout: resolve the request (agent, model, sandbox), check out a workspace on a new branch, run the setup."""
    begin_session(ctx)
    try:
        ctx.ws = checkout(
            ctx.repository,
            ctx.request.branch,
            ctx.request.instructions,
            ctx.session_id,
            ctx.settings.mirrors_dir,
            ctx.settings.workspaces_dir,
            ctx.agent.branch_prefix,
        )
    except RepositoryError as exc:
        raise ctx.fail(str(exc)) from None
    ctx.store.update_session(
        ctx.session_id,
        base_commit=ctx.ws.base_commit,
        work_branch=ctx.ws.work_branch,
        workspace=ctx.ws.path,
        branch=ctx.ws.base_branch,
    )
    ctx.environment = ctx.make_environment()
    ctx.iteration, ctx.instructions = 1, ctx.request.instructions
    ctx.settle_modes()
    ctx.messages = ctx.fresh_conversation()
    ctx.fresh_start = True
    setup(ctx)


def iteration(ctx: SessionContext, continued: bool = False) -> LoopResult:
    """One round of work: agent loop → check (with fix rounds) → diff → summary. The diff is kept whatever the loop did.

    ``continued``: a restarted run going on with an iteration its conversation already holds part of.
    """
    start = begin_iteration(ctx, continued)
    crash = None
    try:
        loop, check = agent_work(ctx, start, continued)
    except Exception as exc:  # the loop handles model and tool errors itself; this is a crash
        crash = f"the agent loop crashed: {type(exc).__name__}: {exc}"
    except BaseException:  # interrupted: keep the work, then let it propagate
        capture_diff(ctx.store, ctx.session_id, ctx.ws.path, ctx.ws.base_commit, ctx.iteration)
        raise
    finally:  # nothing of the sandbox (a container, a proxy) stays up while the session waits
        ctx.environment.close()
    try:  # whatever happened in the loop, the work done so far is kept
        diff, _ = capture_diff(
            ctx.store, ctx.session_id, ctx.ws.path, ctx.ws.base_commit, ctx.iteration, start.previous_patch
        )
    except Exception as exc:
        raise ctx.fail(crash or f"could not capture the diff: {exc}") from None
    if crash:
        raise ctx.fail(crash)
    end_iteration(ctx, start, loop, check)
    summarize(
        ctx.store,
        ctx.session_id,
        ctx.model(),
        ctx.instructions,
        loop,
        diff,
        ctx.agent.max_steps,
        ctx.iteration,
        check,
        ctx.sandbox,
    )
    return loop


def review(ctx: SessionContext, notice: str | None = None) -> SessionResult:
    """The review gate: wait for a reviewer's decision and carry it out, until the session ends."""
    while True:
        decision = wait_for_review(ctx, notice)
        if decision is None:
            return ctx.finish(
                SessionStatus.expired, "no review decision before the deadline; diff and work branch kept"
            )
        ctx.logger.info("review decision for iteration %d: %s", ctx.iteration, decision.decision)
        if decision.decision == "accept":
            notice = accept(ctx, decision)  # None once the change is delivered
            if notice is None:
                return session_result(ctx.store, ctx.session_id)
        elif decision.decision == "reject":
            return reject(ctx, decision)
        else:  # request changes (the agent continues) or retry (a fresh start): another round, if one is left
            notice = another_iteration(ctx, decision)
            if notice is None:
                with session_slot(ctx):
                    loop = iteration(ctx)
                notice = early_end_notice(ctx, loop)
