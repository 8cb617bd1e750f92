"""The agent task flow: checkout → agent loop → diff capture → summary, recorded as a Session."""

from __future__ import annotations

from typing import Any

import tasks_lib  # noqa: F401  (sets quiet defaults before Prefect reads its settings)
from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from tasks_lib.agent_loop import LoopResult
from tasks_lib.capture_diff import capture_diff
from tasks_lib.checkout import checkout
from tasks_lib.gitrepo import RepositoryError
from tasks_lib.models import DiffResult, EndReason, SessionResult, SessionStatus, TaskRequest
from tasks_lib.preflight import BadRequest, parse_request, prepare
from tasks_lib.run_agent import model_for, run_agent
from tasks_lib.secrets import Redactor
from tasks_lib.settings import Settings, load_settings
from tasks_lib.store import Store, open_store
from tasks_lib.summarize import summarize


class SessionFailed(RuntimeError):
    """A session that ended as failed; the message is its reason."""

    def __init__(self, session_id: str, reason: str):
        super().__init__(reason)
        self.session_id = session_id
        self.reason = reason


def final_status(loop: LoopResult) -> SessionStatus:
    """The session status an agent loop's ending leads to."""
    if loop.end_reason in (EndReason.finished, EndReason.no_tool_call):
        return SessionStatus.completed
    if loop.end_reason.is_limit:
        return SessionStatus.stopped
    return SessionStatus.failed


def _run_name() -> str:
    raw = flow_run.parameters.get("request") or {}
    data = raw.model_dump() if isinstance(raw, TaskRequest) else dict(raw)
    task_text = " ".join(str(data.get("instructions") or "").split())
    agent = str(data.get("agent") or "default").rsplit("/", 1)[-1].removesuffix(".md")
    return f"{agent}: {task_text[:60] or '(no instructions)'}"


@flow(name="agent-task", flow_run_name=_run_name, validate_parameters=False)
def agent_task(request: TaskRequest) -> SessionResult:
    """Run a coding agent on a repository and record the session (summary, diff, log).

    The source repository is never modified: the agent works in its own worktree on a new
    `agent/...` branch. Failed sessions raise SessionFailed after everything is recorded.
    """
    settings = load_settings()
    store = open_store(settings.db_url)
    raw = request.model_dump() if isinstance(request, TaskRequest) else dict(request or {})
    session_id = store.create_session(Redactor.from_env().deep(raw), flow_run_id=str(flow_run.id) if flow_run.id else None)
    get_run_logger().info("session %s", session_id)
    try:
        return run_session(store, session_id, raw, settings)
    except SessionFailed:
        raise
    except BaseException as exc:  # interrupted or crashed: the session must still end in a clear state
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"crashed: {type(exc).__name__}: {exc}"
        if not SessionStatus(store.get_session(session_id).status).terminal:
            store.finish_session(session_id, SessionStatus.failed, Redactor.from_env()(reason))
        raise


def run_session(store: Store, session_id: str, raw: dict[str, Any], settings: Settings) -> SessionResult:
    """The steps of one session, from request validation to the final status."""
    logger = get_run_logger()
    redact = Redactor.from_env()

    def fail(reason: str) -> SessionFailed:
        reason = redact(reason)
        store.finish_session(session_id, SessionStatus.failed, reason)
        logger.error("session %s failed: %s", session_id, reason)
        return SessionFailed(session_id, reason)

    try:
        req = parse_request(raw)
        agent, model_name, repository = prepare(req, settings)
    except BadRequest as exc:
        raise fail(str(exc)) from None
    store.update_session(session_id, status=SessionStatus.running, model=model_name, agent=agent.name)

    try:
        ws = checkout(
            repository, req.branch, req.instructions, session_id, settings.mirrors_dir, settings.workspaces_dir, agent.branch_prefix
        )
    except RepositoryError as exc:
        raise fail(str(exc)) from None
    store.update_session(
        session_id, base_commit=ws.base_commit, work_branch=ws.work_branch, workspace=ws.path, branch=ws.base_branch
    )

    crash: str | None = None
    try:
        loop = run_agent(store, session_id, ws.path, agent, model_name, req.instructions, settings)
    except BaseException as exc:  # the loop handles model and tool errors itself; this is a crash
        if not isinstance(exc, Exception):  # interrupted: keep the work, then let it propagate
            capture_diff(store, session_id, ws.path, ws.base_commit)
            raise
        crash = f"the agent loop crashed: {type(exc).__name__}: {exc}"
    # Whatever happened in the loop, the work done so far is kept.
    try:
        diff: DiffResult | None = capture_diff(store, session_id, ws.path, ws.base_commit)
    except Exception as exc:
        diff = None
        crash = crash or f"could not capture the diff: {exc}"
    if crash:
        raise fail(crash)
    store.update_session(session_id, end_reason=loop.end_reason.value)
    summary = summarize(
        store, session_id, model_for(agent, model_name, settings), req.instructions, loop, diff, agent.max_steps
    )
    status = final_status(loop)
    if status is SessionStatus.failed:
        raise fail(f"{loop.end_reason.value}: {loop.detail}")
    store.finish_session(session_id, status, loop.detail)
    logger.info("session %s %s: %s", session_id, status.value, loop.detail)
    return SessionResult(
        session_id=session_id,
        status=status,
        reason=loop.detail,
        work_branch=ws.work_branch,
        base_commit=ws.base_commit,
        workspace=ws.path,
        diffstat=diff.diffstat() if diff else None,
        summary=summary,
    )
