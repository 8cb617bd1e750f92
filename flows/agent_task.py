"""The agent task flow: checkout → agent loop → diff → summary → review, recorded as a Session.

A session can go round several iterations: after each summary a reviewer accepts, requests
changes (the agent continues its conversation with the feedback), retries with new instructions
(fresh start from the base) or rejects. Plain runs wait for the decision with a blocking pause;
deployment runs suspend and, when resumed, re-enter here and continue from the store.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tasks_lib  # noqa: F401  (sets quiet defaults before Prefect reads its settings)
from prefect import flow, get_run_logger
from prefect.exceptions import ExternalSignal, Pause
from prefect.runtime import deployment, flow_run

from tasks_lib.agent.loop import LoopResult
from tasks_lib.agent.spec import AgentSpec
from tasks_lib.steps.capture_diff import capture_diff
from tasks_lib.steps.checkout import checkout
from tasks_lib.git.delivery import DeliveryError
from tasks_lib.environments import Environment, SandboxRefused, make_environment
from tasks_lib.session.sandbox import resumed_sandbox
from tasks_lib.git.repo import RepositoryError, mirror_dir, normalize_repository
from tasks_lib.domain.records import EndReason, Usage
from tasks_lib.domain.session import SessionResult, SessionStatus, Workspace
from tasks_lib.domain.request import TaskRequest
from tasks_lib.session.preflight import BadRequest, parse_request, prepare
from tasks_lib.agent.prompt import build_system_prompt, initial_messages, named_files
from tasks_lib.security.redaction import install_log_redaction, redact_exception
from tasks_lib.review.comments import change_request
from tasks_lib.review.gate import ReviewGate
from tasks_lib.steps.review_actions import discard_changes, reset_workspace, restore_workspace
from tasks_lib.domain.records import CheckResult
from tasks_lib.steps.check import fix_request
from tasks_lib.session.concurrency import default_key, key_slot
from tasks_lib.agent.budget import budget_used, session_limits
from tasks_lib.steps.agent_loop import model_for, run_agent
from tasks_lib.session.attempts import Attempt, run_attempts
from tasks_lib.steps.check import run_check
from tasks_lib.steps.setup import run_setup
from tasks_lib.session.runner import current_runner
from tasks_lib.security.secrets import Redactor, mask_variables
from tasks_lib.session.reconcile import settle_flow_run
from tasks_lib.session.lifecycle import TransitionRefused, claim_session, move, refusal, settle
from tasks_lib.config import Settings, deployment_store_problem, load_settings
from tasks_lib.store import Store, open_store
from tasks_lib.steps.summarize import summarize


class SessionFailed(RuntimeError):
    """A session that ended as failed; the message is its reason."""

    def __init__(self, session_id: str, reason: str):
        super().__init__(reason)
        self.session_id = session_id
        self.reason = reason


class StoreRefused(RuntimeError):
    """The configured store cannot serve this run (a deployment run on a machine-local SQLite file)."""


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


def _run_name() -> str:
    raw = flow_run.parameters.get("request") or {}
    data = raw.model_dump() if isinstance(raw, TaskRequest) else dict(raw)
    task_text = " ".join(str(data.get("instructions") or "").split())
    agent = str(data.get("agent") or "default").rsplit("/", 1)[-1].removesuffix(".md")
    return f"{agent}: {task_text[:60] or '(no instructions)'}"


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
        diffstat=f"{len(diff.files)} files changed, +{diff.added} -{diff.removed}" if diff else None,
        summary=summary.markdown if summary else None,
    )


def settle_from_state(flow, flow_run, state) -> None:
    """Prefect state hook: a cancelled or crashed flow run ends its session (diff kept)."""
    store = open_store(load_settings().db_url)
    sid = settle_flow_run(store, str(flow_run.id), state.type.value, state.message or "", by="prefect-hook")
    if sid:  # hooks may run outside the run's context (the runner runs on_cancellation hooks itself)
        from prefect.logging.loggers import flow_run_logger

        flow_run_logger(flow_run).warning("session %s ended: %s", sid, store.get_session(sid).status_reason)


@flow(name="agent-task", flow_run_name=_run_name, validate_parameters=False,
      on_cancellation=[settle_from_state], on_crashed=[settle_from_state])
def agent_task(request: TaskRequest) -> SessionResult:
    """Run a coding agent on a repository, record the session (summary, diff, log) and let a reviewer decide.

    The source repository is never modified before an explicit accept: the agent works in its own
    workspace on a new `agent/...` branch, its commands confined by the session's sandbox. Failed sessions raise SessionFailed after everything is recorded.
    """
    install_log_redaction()
    settings = load_settings()
    if deployment.id and (problem := deployment_store_problem(settings)):
        raise StoreRefused(problem)
    store = open_store(settings.db_url)
    raw = request.model_dump() if isinstance(request, TaskRequest) else dict(request or {})
    claim = claim_session(store, str(flow_run.id) if flow_run.id else None, Redactor.from_env().deep(raw),
                          deployment.name or None)
    session_id = claim.session_id
    if claim.mode == "ended":
        return ended_session(store, session_id)
    get_run_logger().info("session %s%s", session_id, CLAIM_NOTES[claim.mode])
    try:
        return SessionRun(store, session_id, settings).run(raw, claim.mode)
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
        return SessionStatus.crashed, f"its process was stopped ({type(exc).__name__}{f' {exc}' if str(exc) else ''}); work kept"
    return SessionStatus.failed, f"crashed: {type(exc).__name__}: {exc}"


CLAIM_NOTES = {
    "new": "",
    "review": " (resumed for its review)",
    "continue": " (continued: this flow run was restarted while the agent worked)",
    "deliver": " (continued: this flow run was restarted while delivering an accepted change)",
}
SUCCESSFUL_ENDINGS = {SessionStatus.completed, SessionStatus.stopped, SessionStatus.accepted, SessionStatus.rejected}


def ended_session(store: Store, session_id: str) -> SessionResult:
    """The result of a re-entered run whose session already ended; a failed or cut-off one fails the run loudly."""
    row = store.get_session(session_id)
    if SessionStatus(row.status) in SUCCESSFUL_ENDINGS:
        return session_result(store, session_id)
    raise SessionFailed(session_id, (
        f"this flow run's session {session_id[:8]} already ended {row.status}: {row.status_reason}. Re-running the "
        "flow run does not start it again: start a new run (its diff and work branch are kept)"
    ))


class SessionRun(ReviewGate):
    """One session's way through the flow: start, work, and the review cycle (waiting and accepting: ReviewGate)."""

    def __init__(self, store: Store, session_id: str, settings: Settings):
        self.store, self.session_id, self.settings = store, session_id, settings
        self.logger = get_run_logger()
        self.redact = Redactor.from_env()
        self.reuse_review_key = False
        self.check: CheckResult | None = None
        self.fresh_start = False

    # --- outcomes --------------------------------------------------------------------------------

    def fail(self, reason: str) -> SessionFailed:
        """End the session as failed; returns the exception to raise."""
        reason = self.redact(reason)
        move(self.store, self.session_id, SessionStatus.failed, reason)
        self.logger.error("session %s failed: %s", self.session_id, reason)
        return SessionFailed(self.session_id, reason)

    def finish(self, status: SessionStatus, reason: str) -> SessionResult:
        """End the session in a terminal status and return its result."""
        move(self.store, self.session_id, status, self.redact(reason))
        self.logger.info("session %s %s: %s", self.session_id, status.value, reason)
        return session_result(self.store, self.session_id)

    # --- the whole run ---------------------------------------------------------------------------

    def run(self, raw: dict[str, Any], mode: str) -> SessionResult:
        """Start the session (or pick it up where the store says it stopped) and see it to a terminal status."""
        if mode == "review":
            self.restore(raw)
            return self.review_cycle()
        if mode == "deliver":
            self.restore(raw)
            notice = self.settle_interrupted_delivery()
            return self.review_cycle(notice) if notice else session_result(self.store, self.session_id)
        with self.turn(raw, supersede=mode == "new"):
            if mode == "continue":
                self.restore(raw)
                loop = self.work(continued=self.continue_iteration())
            else:
                self.start(raw)
                loop = self.work()
        if loop_failed(loop):
            raise self.fail(f"{loop.end_reason.value}: {loop.detail}")
        if not self.req.review:
            return self.finish(final_status(loop), loop.detail)
        return self.review_cycle()

    @contextmanager
    def turn(self, raw: dict[str, Any] | None, supersede: bool = False) -> Iterator[None]:
        """Hold a slot of the run's concurrency key (if it has one) while the agent works; not while it waits.

        ``supersede``: first cancel the key's older unfinished runs, when the request asks for it.
        """
        try:
            req = self.req if raw is None else parse_request(raw)
        except BadRequest:  # start() reports it
            yield
            return
        key = req.concurrency_key or default_key(req.repository, req.trigger)
        if key:
            self.logger.info("concurrency key %s: waiting for one of its %d slots", key, req.concurrency_limit)
        with key_slot(key, req.concurrency_limit, supersede and req.cancel_superseded):
            yield

    def start(self, raw: dict[str, Any]) -> None:
        """Validate the request, check out the workspace and prepare the sandbox."""
        try:
            self.req = parse_request(raw)
            self.agent, self.model_name, self.repository, self.sandbox = prepare(self.req, self.settings)
        except BadRequest as exc:
            raise self.fail(str(exc)) from None
        for note in self.agent.file_notes:  # how another tool's agent file was read (a model alias, tools left out)
            self.logger.info("agent file: %s", note)
        if self.agent.ignored_fields:
            self.logger.info("agent file (%s format): ignored fields with no meaning here: %s", self.agent.file_format,
                             ", ".join(self.agent.ignored_fields))
        self.announce_sandbox()
        move(self.store, self.session_id, SessionStatus.running, "checking out the repository",
             model=self.model_name, agent=self.agent.name, agent_spec=self.redact.deep(self.agent.model_dump(mode="json")),
             runner=current_runner(), sandbox=self.sandbox.model_dump())
        try:
            self.ws = checkout(
                self.repository, self.req.branch, self.req.instructions, self.session_id,
                self.settings.mirrors_dir, self.settings.workspaces_dir, self.agent.branch_prefix,
            )
        except RepositoryError as exc:
            raise self.fail(str(exc)) from None
        self.store.update_session(
            self.session_id, base_commit=self.ws.base_commit, work_branch=self.ws.work_branch,
            workspace=self.ws.path, branch=self.ws.base_branch,
        )
        self.environment = self.make_environment()
        self.iteration = 1
        self.instructions = self.req.instructions
        self.messages = self.fresh_conversation()
        self.fresh_start = True  # best-of-N attempts run on fresh starts: the first iteration and retries
        self.setup()

    def announce_sandbox(self) -> None:
        """Say which sandbox is in force (a warning when commands run unconfined), and mask the agent's `env:` values."""
        mask_variables(self.sandbox.env)
        self.redact = Redactor.from_env()
        log = self.logger.warning if self.sandbox.kind == "none" else self.logger.info
        log("sandbox: %s", self.sandbox.describe())

    def make_environment(self, path: str | None = None, tmp: str = "tmp") -> Environment:
        """Where this session's commands run: its sandbox around the workspace (or another attempt's, at ``path``)."""
        return make_environment(
            self.sandbox, path or self.ws.path, self.settings.sandboxes_dir / self.session_id / tmp,
            read_only_paths=[f"{self.ws.mirror}/objects", *self.settings.sandbox_expose],
            hidden_paths=[str(self.settings.home)],
        )

    def setup(self, environment: Environment | None = None) -> None:
        """Run the setup command, if any (in ``environment``, default the session's); the session fails when it does."""
        if not self.sandbox.setup_command:
            return
        result = run_setup(environment or self.environment, self.sandbox.setup_command, self.sandbox.setup_timeout_s)
        if not result.passed:
            tail = "\n".join(result.output_tail.strip().splitlines()[-15:])
            raise self.fail(f"the setup command {result.headline()}; the agent did not start. Its output ended:\n{tail}")

    def fresh_conversation(self) -> list[dict[str, Any]]:
        """The opening messages for the current instructions; reports what the conventions cap cut."""
        prompt, notes = build_system_prompt(self.agent, self.ws.path)
        for note in notes:
            self.logger.warning("system prompt: %s", note)
        return initial_messages(prompt, self.instructions, named_files(self.ws.path, self.instructions))

    def restore(self, raw: dict[str, Any]) -> None:
        """Pick a suspended session up from the store, rebuilding its workspace if it is gone."""
        row = self.store.get_session(self.session_id)
        self.req = parse_request(raw)
        self.agent = AgentSpec.model_validate(row.agent_spec)
        try:
            self.sandbox = resumed_sandbox(row.sandbox, self.req, self.agent, self.settings.sandbox)  # type: ignore[arg-type]
        except SandboxRefused as exc:
            raise self.fail(f"cannot continue on this worker: {exc}") from None
        self.announce_sandbox()
        self.model_name = row.model
        self.repository = normalize_repository(self.req.repository)
        mirror = mirror_dir(self.settings.mirrors_dir, self.repository)
        # in this worker's own home: the path recorded may be another machine's
        self.ws = Workspace(
            path=str(self.settings.workspaces_dir / self.session_id), work_branch=row.work_branch, base_branch=row.branch, base_commit=row.base_commit,
            mirror=str(mirror), mirror_action="fetched",
        )
        self.iteration, self.instructions = row.iteration, row.instructions
        self.messages = list(row.conversation or [])
        self.iteration_start = row.iteration_start
        self.store.update_session(self.session_id, runner=current_runner(), workspace=self.ws.path)
        latest = self.store.latest_diff(self.session_id)
        try:
            self.workspace_was = how = restore_workspace(
                self.repository, self.settings.mirrors_dir, self.ws.path, self.ws.work_branch, self.ws.base_commit,
                latest.patch if latest else b"",
            )
        except (DeliveryError, RepositoryError) as exc:  # e.g. the stored patch was trimmed: no honest rebuild
            raise self.fail(f"cannot rebuild the workspace on this worker: {exc}") from None
        self.environment = self.make_environment()
        if how == "rebuilt":  # what the setup installed outside the patch is gone with the old workspace
            self.setup()
        self.reuse_review_key = row.status == SessionStatus.awaiting_review.value

    def continue_iteration(self) -> bool:
        """Ready a restarted run to go on with its iteration; True when it continues mid-conversation.

        With its workspace still here the agent continues from its last saved step; a workspace rebuilt
        elsewhere holds only what the last review saw, so the iteration starts over from there.
        """
        move(self.store, self.session_id, SessionStatus.running, f"iteration {self.iteration} continued after a restart")
        if self.workspace_was == "existing" and self.messages:
            self.messages.append({"role": "user", "content": (
                "(Your run was interrupted and has been restarted. The workspace is as you left it; "
                "check the state of your last step, then continue the task.)")})
            self.logger.warning("continuing iteration %d from its last saved step", self.iteration)
            return True
        start = self.iteration_start
        self.messages = self.messages[:start] if start and self.messages else self.fresh_conversation()
        self.logger.warning("the workspace was rebuilt on this worker: iteration %d starts over from its beginning",
                            self.iteration)
        return False

    def work(self, continued: bool = False) -> LoopResult:
        """One iteration: the agent loop, the diff (and the increment since the last review), the summary.

        ``continued``: the conversation already holds part of this iteration (a restarted run).
        """
        row = self.store.get_session(self.session_id)
        prior = row.usage()
        previous = self.store.latest_diff(self.session_id) if self.iteration > 1 else None
        if continued:
            self.store.update_session(self.session_id, iteration=self.iteration)
        else:
            self.store.update_session(self.session_id, iteration=self.iteration, iteration_start=len(self.messages))
        seconds = row.agent_seconds or 0.0
        left = session_limits(self.agent, prior, seconds)
        if left is None:
            raise self.fail(f"the session's budget is used up ({budget_used(self.agent, prior, seconds)})")
        first = len([s for s in self.store.steps(self.session_id) if s.iteration == self.iteration]) + 1 if continued else 1
        crash: str | None = None
        loop: LoopResult | None = None
        check: CheckResult | None = None
        try:
            if self.req.attempts > 1 and self.fresh_start and not continued:  # best-of-N
                loop, check = run_attempts(self, prior, left, seconds)
            else:
                loop = run_agent(self.store, self.session_id, self.ws.path, self.environment, self.agent, self.model_name,
                                 self.messages, self.settings, self.iteration, prior, left, first)
                if self.agent.check_command and not loop_failed(loop):
                    loop, check = self.check_and_fix(loop, prior, seconds)
        except BaseException as exc:  # the loop handles model and tool errors itself; this is a crash
            if not isinstance(exc, Exception):  # interrupted: keep the work, then let it propagate
                capture_diff(self.store, self.session_id, self.ws.path, self.ws.base_commit, self.iteration)
                raise
            crash = f"the agent loop crashed: {type(exc).__name__}: {exc}"
        try:  # whatever happened in the loop, the work done so far is kept
            diff, _ = capture_diff(self.store, self.session_id, self.ws.path, self.ws.base_commit, self.iteration,
                                   previous.patch if previous else None)
        except Exception as exc:
            diff = None
            crash = crash or f"could not capture the diff: {exc}"
        if crash or loop is None:
            raise self.fail(crash or "the agent loop returned nothing")
        self.messages = loop.messages
        self.check = check
        self.fresh_start = False
        self.store.update_session(self.session_id, end_reason=loop.end_reason.value, agent_seconds=seconds + loop.duration_s,
                                  conversation=self.redact.deep(self.messages))
        summarize(self.store, self.session_id, model_for(self.agent, self.model_name, self.settings),
                  self.instructions, loop, diff, self.agent.max_steps, self.iteration, check, self.sandbox)
        return loop

    def check_and_fix(self, loop: LoopResult, prior: Usage, seconds: float, attempt: Attempt | None = None,
                      ) -> tuple[LoopResult, CheckResult]:
        """Run the agent's check; while it fails and fix_until_green allows, hand it back to the agent.

        Fix rounds draw on the session's budgets (``prior`` usage and ``seconds`` of agent time before this loop).
        ``attempt``: best-of-N, the attempt's own workspace and the budget shared by all attempts.
        """
        path, environment = (attempt.path, attempt.environment) if attempt else (self.ws.path, self.environment)
        shared, number = (attempt.shared, attempt.number) if attempt else (None, None)
        timeout = self.agent.check_timeout_minutes * 60
        check = run_check(self.store, self.session_id, environment, self.agent.check_command, timeout, self.iteration)
        for fix_round in range(1, self.agent.fix_until_green + 1):
            if check.passed:
                break
            used = shared.total() if shared else loop.usage
            left = session_limits(self.agent, prior.plus(used), seconds + loop.duration_s)
            if left is None or loop.end_reason.ended_early:
                self.logger.warning("check failed, but the budget is used up: no fix round")
                break
            self.logger.info("check failed: fix round %d of %d", fix_round, self.agent.fix_until_green)
            loop.messages.append({"role": "user", "content": fix_request(check)})
            more = run_agent(self.store, self.session_id, path, environment, self.agent, self.model_name, loop.messages,
                             self.settings, self.iteration, prior if shared else prior.plus(loop.usage), left,
                             loop.usage.steps + 1, shared, number)
            loop = LoopResult(
                end_reason=more.end_reason, detail=more.detail, finish_summary=more.finish_summary or loop.finish_summary,
                steps=loop.steps + more.steps, usage=loop.usage.plus(more.usage), messages=more.messages,
                duration_s=loop.duration_s + more.duration_s,
            )
            if loop_failed(more):
                break
            check = run_check(self.store, self.session_id, environment, self.agent.check_command, timeout,
                              self.iteration, fix_round)
        return loop, check

    # --- review ----------------------------------------------------------------------------------

    def review_cycle(self, notice: str | None = None) -> SessionResult:
        """Wait for decisions and carry them out until the session ends."""
        while True:
            review = self.wait_for_review(notice)
            notice = None
            if review is None:
                return self.finish(SessionStatus.expired, "no review decision before the deadline; diff and work branch kept")
            decision = review.decision
            self.logger.info("review decision for iteration %d: %s", self.iteration, decision)
            if decision == "accept":
                notice = self.accept(review)
                if notice is None:
                    return session_result(self.store, self.session_id)
                continue
            if decision == "reject":
                discard_changes(self.ws.mirror, self.ws.path, self.ws.work_branch)
                self.record(review, "discarded")
                reason = "rejected by the reviewer" + (f": {review.feedback}" if review.feedback else "")
                return self.finish(SessionStatus.rejected, reason)
            row = self.store.get_session(self.session_id)
            notice = refusal(decision, row, self.settings, self.budget_line(row))
            if notice:
                self.record(review, notice)
                continue
            self.record(review, f"iteration {self.iteration + 1}")
            if decision == "request_changes":
                self.store.update_session(self.session_id, change_rounds=row.change_rounds + 1)
                request = change_request(review.feedback, review.comments, Path(self.ws.path))
                self.messages.append({"role": "user", "content": request})
            else:  # retry: a fresh start from the base with the updated instructions
                reset_workspace(self.ws.path, self.ws.base_commit)
                self.instructions = review.instructions.strip()
                if review.feedback.strip():
                    self.instructions += f"\n\nReviewer's notes on the previous attempt:\n{review.feedback.strip()}"
                self.store.update_session(self.session_id, instructions=self.instructions,
                                          retry_rounds=(row.retry_rounds or 0) + 1)
                self.messages = self.fresh_conversation()
                self.fresh_start = True
            self.iteration += 1
            move(self.store, self.session_id, SessionStatus.running, f"iteration {self.iteration}: {decision.replace('_', ' ')}")
            with self.turn(raw=None):
                loop = self.work()
            if loop_failed(loop):
                notice = self.redact(f"iteration {self.iteration} ended early: {loop.end_reason.value}: {loop.detail}")
