"""The agent task flow: checkout → agent loop → diff → summary → review, recorded as a Session.

A session can go round several iterations: after each summary a reviewer accepts, requests
changes (the agent continues its conversation with the feedback), retries with new instructions
(fresh start from the base) or rejects. Plain runs wait for the decision with a blocking pause;
deployment runs suspend and, when resumed, re-enter here and continue from the store.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import tasks_lib  # noqa: F401  (sets quiet defaults before Prefect reads its settings)
from prefect import flow, get_run_logger, pause_flow_run, suspend_flow_run
from prefect.exceptions import FlowPauseTimeout, Pause
from prefect.runtime import deployment, flow_run
from pydantic import ValidationError

from tasks_lib import progress
from tasks_lib.agent.loop import LoopResult
from tasks_lib.agent.files import AgentSpec
from tasks_lib.capture_diff import capture_diff
from tasks_lib.checkout import checkout
from tasks_lib.delivery import DeliveryError, commit_message
from tasks_lib.environments import Environment, SandboxRefused, make_environment, resumed_sandbox
from tasks_lib.gitrepo import RepositoryError, mirror_dir, normalize_repository
from tasks_lib.models import EndReason, SessionResult, SessionStatus, TaskRequest, Usage, Workspace
from tasks_lib.preflight import BadRequest, parse_request, prepare
from tasks_lib.agent.prompt import build_system_prompt, initial_messages, named_files
from tasks_lib.redaction import install_log_redaction, redact_exception
from tasks_lib.render import files_stat, trigger_line
from tasks_lib.review import ReviewInput, emit_awaiting_review, review_description
from tasks_lib.review_actions import accept_changes, discard_changes, reset_workspace, restore_workspace
from tasks_lib.check import CheckResult, fix_request
from tasks_lib.run_agent import model_for, remaining_limits, run_agent
from tasks_lib.run_check import run_check
from tasks_lib.run_setup import run_setup
from tasks_lib.runner import current_runner
from tasks_lib.secrets import Redactor, mask_variables
from tasks_lib.settings import Settings, load_settings
from tasks_lib.store import Store, open_store, utcnow
from tasks_lib.summarize import summarize


class SessionFailed(RuntimeError):
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


@flow(name="agent-task", flow_run_name=_run_name, validate_parameters=False)
def agent_task(request: TaskRequest) -> SessionResult:
    """Run a coding agent on a repository, record the session (summary, diff, log) and let a reviewer decide.

    The source repository is never modified before an explicit accept: the agent works in its own
    workspace on a new `agent/...` branch, its commands confined by the session's sandbox. Failed sessions raise SessionFailed after everything is recorded.
    """
    install_log_redaction()
    settings = load_settings()
    store = open_store(settings.db_url)
    raw = request.model_dump() if isinstance(request, TaskRequest) else dict(request or {})
    run_id = str(flow_run.id) if flow_run.id else None
    existing = store.session_for_flow_run(run_id) if run_id else None
    if existing is not None and SessionStatus(existing.status).terminal:
        return session_result(store, existing.id)  # this run already ended its session
    resuming = existing is not None and existing.status == SessionStatus.awaiting_review.value
    if existing is not None and not resuming:
        store.finish_session(existing.id, SessionStatus.failed, "interrupted; the flow run was restarted")
    session_id = existing.id if resuming else store.create_session(
        Redactor.from_env().deep(raw), flow_run_id=run_id, workflow=deployment.name or None
    )
    get_run_logger().info("session %s%s", session_id, " (resumed)" if resuming else "")
    try:
        return SessionRun(store, session_id, settings).run(raw, resuming)
    except (SessionFailed, Pause):
        raise
    except BaseException as exc:  # interrupted or crashed: the session must still end in a clear state
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"crashed: {type(exc).__name__}: {exc}"
        if not SessionStatus(store.get_session(session_id).status).terminal:
            store.finish_session(session_id, SessionStatus.failed, Redactor.from_env()(reason))
        clean = redact_exception(exc)  # Prefect keeps the exception's text as the run's state message
        if clean is exc:
            raise
        raise clean from None


class SessionRun:
    """One session's way through the flow: start, work, and the review cycle."""

    def __init__(self, store: Store, session_id: str, settings: Settings):
        self.store, self.session_id, self.settings = store, session_id, settings
        self.logger = get_run_logger()
        self.redact = Redactor.from_env()
        self.reuse_review_key = False
        self.check: CheckResult | None = None

    # --- outcomes --------------------------------------------------------------------------------

    def fail(self, reason: str) -> SessionFailed:
        """End the session as failed; returns the exception to raise."""
        reason = self.redact(reason)
        self.store.finish_session(self.session_id, SessionStatus.failed, reason)
        self.logger.error("session %s failed: %s", self.session_id, reason)
        return SessionFailed(self.session_id, reason)

    def finish(self, status: SessionStatus, reason: str) -> SessionResult:
        """End the session in a terminal status and return its result."""
        self.store.finish_session(self.session_id, status, self.redact(reason))
        self.logger.info("session %s %s: %s", self.session_id, status.value, reason)
        return session_result(self.store, self.session_id)

    # --- the whole run ---------------------------------------------------------------------------

    def run(self, raw: dict[str, Any], resuming: bool) -> SessionResult:
        """Start (or resume) the session and see it to a terminal status."""
        if resuming:
            self.restore(raw)
        else:
            self.start(raw)
            loop = self.work()
            if loop_failed(loop):
                raise self.fail(f"{loop.end_reason.value}: {loop.detail}")
            if not self.req.review:
                return self.finish(final_status(loop), loop.detail)
        return self.review_cycle()

    def start(self, raw: dict[str, Any]) -> None:
        """Validate the request, check out the workspace and prepare the sandbox."""
        try:
            self.req = parse_request(raw)
            self.agent, self.model_name, self.repository, self.sandbox = prepare(self.req, self.settings)
        except BadRequest as exc:
            raise self.fail(str(exc)) from None
        self.announce_sandbox()
        self.store.update_session(
            self.session_id, status=SessionStatus.running, model=self.model_name, agent=self.agent.name,
            agent_spec=self.redact.deep(self.agent.model_dump(mode="json")), runner=current_runner(),
            sandbox=self.sandbox.model_dump(),
        )
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
        self.setup()

    def announce_sandbox(self) -> None:
        """Say which sandbox is in force (a warning when commands run unconfined), and mask the agent's `env:` values."""
        mask_variables(self.sandbox.env)
        self.redact = Redactor.from_env()
        log = self.logger.warning if self.sandbox.kind == "none" else self.logger.info
        log("sandbox: %s", self.sandbox.describe())

    def make_environment(self) -> Environment:
        """Where this session's commands run: its sandbox around the workspace."""
        return make_environment(
            self.sandbox, self.ws.path, self.settings.sandboxes_dir / self.session_id / "tmp",
            read_only_paths=[f"{self.ws.mirror}/objects", *self.settings.sandbox_expose],
            hidden_paths=[str(self.settings.home)],
        )

    def setup(self) -> None:
        """Run the setup command, if any; the session fails when it does."""
        if not self.sandbox.setup_command:
            return
        result = run_setup(self.environment, self.sandbox.setup_command, self.sandbox.setup_timeout_s)
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
        self.ws = Workspace(
            path=row.workspace, work_branch=row.work_branch, base_branch=row.branch, base_commit=row.base_commit,
            mirror=str(mirror), mirror_action="fetched",
        )
        self.iteration, self.instructions = row.iteration, row.instructions
        self.messages = list(row.conversation or [])
        self.store.update_session(self.session_id, runner=current_runner())
        latest = self.store.latest_diff(self.session_id)
        how = restore_workspace(
            self.repository, self.settings.mirrors_dir, self.ws.path, self.ws.work_branch, self.ws.base_commit,
            latest.patch if latest else b"",
        )
        self.environment = self.make_environment()
        if how == "rebuilt":  # what the setup installed outside the patch is gone with the old workspace
            self.setup()
        self.reuse_review_key = True

    def work(self) -> LoopResult:
        """One iteration: the agent loop, the diff (and the increment since the last review), the summary."""
        row = self.store.get_session(self.session_id)
        prior = Usage(steps=row.steps_used, prompt_tokens=row.prompt_tokens, completion_tokens=row.completion_tokens,
                      cached_tokens=row.cached_tokens, cost_usd=row.cost_usd)
        previous = self.store.latest_diff(self.session_id) if self.iteration > 1 else None
        self.store.update_session(self.session_id, status=SessionStatus.running, iteration=self.iteration)
        crash: str | None = None
        loop: LoopResult | None = None
        check: CheckResult | None = None
        try:
            loop = run_agent(self.store, self.session_id, self.ws.path, self.environment, self.agent, self.model_name,
                             self.messages, self.settings, self.iteration, prior)
            if self.agent.check_command and not loop_failed(loop):
                loop, check = self.check_and_fix(loop, prior)
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
        self.store.update_session(self.session_id, end_reason=loop.end_reason.value,
                                  conversation=self.redact.deep(self.messages))
        summarize(self.store, self.session_id, model_for(self.agent, self.model_name, self.settings),
                  self.instructions, loop, diff, self.agent.max_steps, self.iteration, check, self.sandbox)
        return loop

    def check_and_fix(self, loop: LoopResult, prior: Usage) -> tuple[LoopResult, CheckResult]:
        """Run the agent's check; while it fails and fix_until_green allows, hand it back to the agent."""
        timeout = self.agent.check_timeout_minutes * 60
        check = run_check(self.store, self.session_id, self.environment, self.agent.check_command, timeout, self.iteration)
        for fix_round in range(1, self.agent.fix_until_green + 1):
            if check.passed:
                break
            left = remaining_limits(self.agent, loop)
            if left is None or loop.end_reason.ended_early:
                self.logger.warning("check failed, but the budget is used up: no fix round")
                break
            self.logger.info("check failed: fix round %d of %d", fix_round, self.agent.fix_until_green)
            loop.messages.append({"role": "user", "content": fix_request(check)})
            more = run_agent(self.store, self.session_id, self.ws.path, self.environment, self.agent, self.model_name,
                             loop.messages, self.settings, self.iteration, prior.plus(loop.usage), left, loop.usage.steps + 1)
            loop = LoopResult(
                end_reason=more.end_reason, detail=more.detail, finish_summary=more.finish_summary or loop.finish_summary,
                steps=loop.steps + more.steps, usage=loop.usage.plus(more.usage), messages=more.messages,
                duration_s=loop.duration_s + more.duration_s,
            )
            if loop_failed(more):
                break
            check = run_check(self.store, self.session_id, self.environment, self.agent.check_command, timeout,
                              self.iteration, fix_round)
        return loop, check

    # --- review ----------------------------------------------------------------------------------

    def review_cycle(self) -> SessionResult:
        """Wait for decisions and carry them out until the session ends."""
        notice: str | None = None
        while True:
            review = self.wait_for_review(notice)
            notice = None
            if review is None:
                return self.finish(SessionStatus.expired, "no review decision before the deadline; diff and work branch kept")
            decision = review.decision
            self.logger.info("review decision for iteration %d: %s", self.iteration, decision)
            if decision == "accept":
                try:
                    commit, where = self.accept()
                except DeliveryError as exc:
                    notice = self.redact(f"accept failed: {exc}")
                    self.store.add_review(self.session_id, self.iteration, decision, review.feedback, outcome=notice)
                    self.logger.error(notice)
                    continue
                self.store.update_session(self.session_id, delivered_commit=commit, delivered_to=where)
                self.store.add_review(self.session_id, self.iteration, decision, review.feedback, outcome=where)
                return self.finish(SessionStatus.accepted, f"accepted: {commit[:10]} → {where}")
            if decision == "reject":
                discard_changes(self.ws.mirror, self.ws.path, self.ws.work_branch)
                self.store.add_review(self.session_id, self.iteration, decision, review.feedback, outcome="discarded")
                reason = "rejected by the reviewer" + (f": {review.feedback}" if review.feedback else "")
                return self.finish(SessionStatus.rejected, reason)
            rounds = self.store.get_session(self.session_id).change_rounds
            if decision == "request_changes" and rounds >= self.settings.max_change_rounds:
                notice = f"no change rounds left ({rounds} of {self.settings.max_change_rounds} used): accept, reject or retry"
                self.store.add_review(self.session_id, self.iteration, decision, review.feedback, outcome=notice)
                continue
            self.store.add_review(self.session_id, self.iteration, decision, review.feedback, review.instructions,
                                  outcome=f"iteration {self.iteration + 1}")
            if decision == "request_changes":
                self.store.update_session(self.session_id, change_rounds=rounds + 1)
                self.messages.append({"role": "user", "content": (
                    "The reviewer asked for changes:\n\n" + (review.feedback.strip() or "(no details given)")
                    + "\n\nAddress this feedback in the same workspace, then call finish with a summary."
                )})
            else:  # retry: a fresh start from the base with the updated instructions
                reset_workspace(self.ws.path, self.ws.base_commit)
                self.instructions = review.instructions.strip()
                if review.feedback.strip():
                    self.instructions += f"\n\nReviewer's notes on the previous attempt:\n{review.feedback.strip()}"
                self.store.update_session(self.session_id, instructions=self.instructions)
                self.messages = self.fresh_conversation()
            self.iteration += 1
            loop = self.work()
            if loop_failed(loop):
                notice = self.redact(f"iteration {self.iteration} ended early: {loop.end_reason.value}: {loop.detail}")

    def check_line(self) -> str | None:
        """The latest check result of this iteration, for the review form."""
        runs = [c for c in self.store.checks(self.session_id) if c.iteration == self.iteration]
        if not runs:
            return None
        last = runs[-1]
        verdict = "passed" if last.passed else f"failed (exit {last.exit_code})"
        return f"`{last.command}` {verdict} in {last.duration_s:.1f} s" + (f" after {last.fix_round} fix rounds" if last.fix_round else "")

    def accept(self) -> tuple[str, str]:
        """Commit and deliver the work as the task or agent says."""
        row = self.store.get_session(self.session_id)
        summary = self.store.latest_summary(self.session_id)
        message = commit_message(self.instructions, summary.markdown if summary else "", self.session_id,
                                 self.agent.name, row.reviewer)
        on_accept = self.req.on_accept or self.agent.on_accept
        return accept_changes(self.ws.path, self.ws.mirror, self.repository, on_accept, self.ws.work_branch,
                              self.ws.base_branch, self.ws.base_commit, message, self.session_id)

    def wait_for_review(self, notice: str | None) -> ReviewInput | None:
        """Pause (plain runs) or suspend (deployment runs) until a reviewer decides; None when the time is up."""
        row = self.store.get_session(self.session_id)
        reuse = self.reuse_review_key and row.review_key
        self.reuse_review_key = False
        key = row.review_key if reuse else f"review-{self.iteration}-{uuid.uuid4().hex[:8]}"
        diff = self.store.latest_diff(self.session_id)
        increment = self.store.latest_diff(self.session_id, scope="increment") if self.iteration > 1 else None
        summary = self.store.latest_summary(self.session_id)
        description = review_description(
            self.session_id, self.iteration, summary.markdown if summary else "",
            files_stat(len(diff.files), diff.added, diff.removed) if diff else "no diff",
            diff.files if diff else [], row.reviewer, self.ws.work_branch,
            increment=files_stat(len(increment.files), increment.added, increment.removed) if increment else None,
            notice=notice,
            check=self.check_line(),
            started_by=trigger_line(self.req.trigger) if self.req.trigger else None,
            rounds_left=self.settings.max_change_rounds - row.change_rounds,
        )
        form = ReviewInput.with_initial_data(description=self.redact(description))
        runner = None if deployment.id else current_runner()  # a suspended run has no process waiting
        if reuse:
            self.store.update_session(self.session_id, runner=runner)
        else:
            deadline = utcnow() + timedelta(seconds=self.settings.review_timeout_s)
            self.store.update_session(self.session_id, status=SessionStatus.awaiting_review, review_key=key,
                                      review_deadline=deadline, status_reason=notice or "waiting for a reviewer",
                                      runner=runner)
            emit_awaiting_review(self.session_id, self.repository, row.reviewer, self.iteration,
                                 f"+{diff.added} -{diff.removed}" if diff else "no diff")
            self.logger.info("waiting for review (key %s, reviewer %s)", key, row.reviewer or "anyone")
            progress.publish("awaiting_review", session_id=self.session_id, iteration=self.iteration, notice=notice)
        try:
            if deployment.id:
                return suspend_flow_run(wait_for_input=form, timeout=self.settings.review_timeout_s, key=key)
            return pause_flow_run(wait_for_input=form, timeout=self.settings.review_timeout_s,
                                  poll_interval=self.settings.review_poll_s, key=key)
        except FlowPauseTimeout:
            return None
        except ValidationError as exc:  # passed the server's schema but not our own checks
            problem = "; ".join(e["msg"] for e in exc.errors())
            self.logger.warning("invalid review input: %s", problem)
            return self.wait_for_review(f"invalid review input: {problem}")
