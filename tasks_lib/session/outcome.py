"""How a session's run ends: its result, the status an agent loop's ending leads to, and a clear end for a run that
fails, is interrupted or crashes (the work done so far is always kept)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.exceptions import ExternalSignal, Pause

from tasks_lib.agent.loop import LoopResult
from tasks_lib.domain.records import EndReason
from tasks_lib.domain.session import SessionResult, SessionStatus
from tasks_lib.domain.words import counted
from tasks_lib.errors import AgentTasksError
from tasks_lib.security.redaction import redact_exception
from tasks_lib.security.secrets import Redactor
from tasks_lib.session.lifecycle import TransitionRefused, settle
from tasks_lib.store import Store

SUCCESSFUL_ENDINGS = {SessionStatus.completed, SessionStatus.stopped, SessionStatus.accepted, SessionStatus.rejected}


class SessionFailed(AgentTasksError, RuntimeError):
    """A session that ended as failed; the message is its reason."""

    def __init__(self, session_id: str, reason: str):
        super().__init__(reason)
        self.session_id = session_id
        self.reason = reason


def final_status(loop: LoopResult) -> SessionStatus:
    """The session status an agent loop's ending leads to when nobody reviews it."""
    if loop.end_reason in (EndReason.finished, EndReason.no_tool_call):
        return SessionStatus.completed
    if loop.end_reason.ended_early:
        return SessionStatus.stopped
    return SessionStatus.failed


def loop_failed(loop: LoopResult) -> bool:
    """True when the loop ended on an error rather than by finishing or a limit."""
    return final_status(loop) is SessionStatus.failed


def session_result(store: Store, session_id: str) -> SessionResult:
    """The result of a session as the store has it."""
    row = store.get_session(session_id)
    diff = store.latest_diff(session_id)
    summary = store.latest_summary(session_id)
    return SessionResult(
        session_id=session_id,
        status=SessionStatus(row.status),
        reason=row.status_reason,
        work_branch=row.work_branch,
        base_commit=row.base_commit,
        workspace=row.workspace,
        diffstat=f"{counted(len(diff.files), 'file')} changed, +{diff.added} -{diff.removed}" if diff else None,
        summary=summary.markdown if summary else None,
    )


def ended_session(store: Store, session_id: str) -> SessionResult:
    """The result of a re-entered run whose session already ended; a failed or cut-off one fails the run loudly."""
    row = store.get_session(session_id)
    if SessionStatus(row.status) in SUCCESSFUL_ENDINGS:
        return session_result(store, session_id)
    raise SessionFailed(
        session_id,
        (
            f"this flow run's session {session_id[:8]} already ended {row.status}: {row.status_reason}. Re-running the "
            "flow run does not start it again: start a new run (its diff and work branch are kept)"
        ),
    )


def interruption(exc: BaseException) -> tuple[SessionStatus, str]:
    """How a session ends when its run stops on ``exc``: a stopped process crashed (or was cancelled), an error failed it."""
    if isinstance(exc, KeyboardInterrupt):
        return SessionStatus.failed, "interrupted"
    if isinstance(exc, (SystemExit, ExternalSignal)):  # the worker stopped or lost the process (SIGTERM, a dead pipe)
        try:
            from prefect._internal.control_listener import get_intent

            if get_intent() == "cancel":
                return SessionStatus.cancelled, "its flow run was cancelled in Prefect; work kept"
        except ImportError:
            pass
        return (
            SessionStatus.crashed,
            f"its process was stopped ({type(exc).__name__}{f' {exc}' if str(exc) else ''}); work kept",
        )
    return SessionStatus.failed, f"crashed: {type(exc).__name__}: {exc}"


@contextmanager
def settled_on_interruption(store: Store, session_id: str) -> Iterator[None]:
    """Whatever stops the run inside this block, the session ends in a clear state: a failure it already recorded and a
    pause for review pass through; a session ended elsewhere fails the run; an interruption or a crash settles it."""
    try:
        yield
    except (SessionFailed, Pause):
        raise
    except TransitionRefused as exc:  # cancelled, expired or settled elsewhere while this run worked on it
        raise SessionFailed(session_id, f"the session ended elsewhere: {exc}") from None
    except BaseException as exc:  # interrupted or crashed: the session must still end in a clear state
        status, reason = interruption(exc)
        settle(store, session_id, status, Redactor.from_env()(reason), by="flow")
        clean = redact_exception(exc)  # Prefect keeps the exception's text as the run's state message
        if clean is exc:
            raise
        raise clean from None
