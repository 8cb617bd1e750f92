"""The review gate of a session run: the pause with its form, recording decisions, accepting and delivering.

`ReviewGate` is the part of `flows.agent_task.SessionRun` that waits for a reviewer and carries out an
accept; the decision loop itself (`SessionRun.review_cycle`) stays in the flow, where the card reads.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from prefect import pause_flow_run, suspend_flow_run
from prefect.exceptions import FlowPauseTimeout
from prefect.runtime import deployment
from pydantic import ValidationError

from tasks_lib import progress
from tasks_lib.session.attempts import Candidate
from tasks_lib.steps.capture_diff import capture_diff
from tasks_lib.git.delivery import DeliveryError, commit_message
from tasks_lib.domain.session import SessionStatus
from tasks_lib.session.reconcile import delivery_landed
from tasks_lib.domain.records import files_stat
from tasks_lib.domain.request import trigger_line
from tasks_lib.review.form import ReviewInput, emit_awaiting_review, review_description
from tasks_lib.steps.review_actions import commit_changes, deliver_changes
from tasks_lib.agent.budget import budget_used, session_limits
from tasks_lib.session.attempts import move_candidate
from tasks_lib.session.runner import current_runner
from tasks_lib.domain.session import DeliveryTarget
from tasks_lib.session.lifecycle import move
from tasks_lib.store import utcnow

if TYPE_CHECKING:
    from logging import Logger

    from tasks_lib.agent.spec import AgentSpec
    from tasks_lib.domain.session import SessionResult, Workspace
    from tasks_lib.domain.request import TaskRequest
    from tasks_lib.security.secrets import Redactor
    from tasks_lib.config import Settings
    from tasks_lib.store import Store


class ReviewGate:
    """Waiting for a review decision and carrying out an accept, for a session run that has these attributes."""

    store: Store
    session_id: str
    settings: Settings
    logger: Logger
    redact: Redactor
    req: TaskRequest
    agent: AgentSpec
    ws: Workspace
    repository: str
    iteration: int
    instructions: str
    reuse_review_key: bool

    if TYPE_CHECKING:  # the session run's own (flows.agent_task.SessionRun)
        def finish(self, status: SessionStatus, reason: str) -> SessionResult: ...

    def record(self, review: ReviewInput, outcome: str) -> None:
        """Store a review decision of this iteration, its line comments, and what came of it."""
        self.store.add_review(self.session_id, self.iteration, review.decision, review.feedback, review.instructions,
                              outcome=outcome, comments=[c.model_dump() for c in review.comments])

    def budget_line(self, row) -> str | None:
        """How the session's budgets stand when one is used up, else None."""
        used = row.usage()
        if session_limits(self.agent, used, row.agent_seconds or 0.0) is not None:
            return None
        return budget_used(self.agent, used, row.agent_seconds or 0.0)

    def check_line(self) -> str | None:
        """The latest check result of this iteration, for the review form."""
        runs = [c for c in self.store.checks(self.session_id) if c.iteration == self.iteration]
        if not runs:
            return None
        last = runs[-1]
        verdict = "passed" if last.passed else f"failed (exit {last.exit_code})"
        return f"`{last.command}` {verdict} in {last.duration_s:.1f} s" + (f" after {last.fix_round} fix rounds" if last.fix_round else "")

    def accept(self, review: ReviewInput) -> str | None:
        """Commit and deliver the work as the task or agent says; None when delivered, else the notice why not.

        The target is recorded (status delivering) before anything is pushed, so a process that dies
        mid-delivery leaves a session that can be settled by looking for its commit on the target.
        """
        summary = self.store.latest_summary(self.session_id)
        summary_text = summary.markdown if summary else ""
        if review.candidate is not None:
            notice, summary_text = self.take_candidate(review.candidate, summary_text)
            if notice:
                self.record(review, notice)
                return notice
        row = self.store.get_session(self.session_id)
        message = commit_message(self.instructions, summary_text, self.session_id, self.agent.name, row.reviewer)
        on_accept = self.req.on_accept or self.agent.on_accept
        try:
            commit = commit_changes(self.ws.path, self.ws.mirror, message, self.session_id, self.ws.work_branch)
            target = DeliveryTarget(mode=on_accept, repository=self.repository, commit=commit,
                                    branch=self.ws.base_branch if on_accept == "merge" else self.ws.work_branch)
            move(self.store, self.session_id, SessionStatus.delivering, f"delivering {commit[:10]}: {target.describe()}",
                 delivery_target=target.model_dump_json())
            where = deliver_changes(self.ws.mirror, self.repository, on_accept, commit, self.ws.work_branch,
                                    self.ws.base_branch, self.ws.base_commit, message)
        except DeliveryError as exc:
            notice = self.redact(f"accept failed: {exc}")
            self.record(review, notice)
            self.logger.error(notice)
            return notice
        self.store.update_session(self.session_id, delivered_commit=commit, delivered_to=where)
        self.record(review, where)
        self.finish(SessionStatus.accepted, f"accepted: {commit[:10]} → {where}")
        return None

    def candidate_lines(self, row) -> list[str] | None:
        """The best-of-N attempts of this iteration, ranked, one line each (None when it had one attempt)."""
        found = row.candidates or {}
        if found.get("iteration") != self.iteration:
            return None
        return [Candidate.model_validate(c).headline() + (" (in the workspace)" if c["attempt"] == found["chosen"] else "")
                for c in found["ranked"]]

    def take_candidate(self, attempt: int, summary: str) -> tuple[str | None, str]:
        """Put best-of-N attempt ``attempt`` of this iteration in the workspace to be accepted.

        Returns a notice when it cannot be taken (else None), and the summary to commit with.
        """
        found = (self.store.get_session(self.session_id).candidates or {})
        ranked = {c["attempt"]: Candidate.model_validate(c) for c in found.get("ranked", [])}
        if found.get("iteration") != self.iteration or attempt not in ranked:
            have = f"attempts {', '.join(map(str, sorted(ranked)))}" if ranked and found.get("iteration") == self.iteration else "one attempt"
            return f"there is no attempt {attempt} to accept: iteration {self.iteration} has {have}", summary
        if attempt == found["chosen"]:
            return None, summary
        stored = self.store.latest_diff(self.session_id, scope=f"attempt-{attempt}")
        if stored is None or not move_candidate(self.ws.path, self.ws.base_commit, stored.patch):
            return f"attempt {attempt}'s diff is over the limits and cannot be moved into the workspace", summary
        capture_diff(self.store, self.session_id, self.ws.path, self.ws.base_commit, self.iteration)
        self.store.update_session(self.session_id, candidates={**found, "chosen": attempt})
        self.logger.info("accepting attempt %d instead of attempt %d", attempt, found["chosen"])
        chosen = ranked[attempt]
        return None, f"Attempt {attempt} of {len(ranked)} ({chosen.why}).\n\n{chosen.summary}"

    def settle_interrupted_delivery(self) -> str | None:
        """After a restart mid-delivery: accepted if the commit reached its target (None), else the notice to decide again."""
        row = self.store.get_session(self.session_id)
        target = DeliveryTarget.model_validate_json(row.delivery_target) if row.delivery_target else None
        if target is not None and delivery_landed(self.settings.mirrors_dir, target):
            self.store.update_session(self.session_id, delivered_commit=target.commit, delivered_to=target.describe())
            self.finish(SessionStatus.accepted, f"accepted: {target.commit[:10]} → {target.describe()} "
                                                "(found on the target after the run was restarted)")
            return None
        return "the run was restarted while delivering, and the commit is not on its target: decide again"

    def wait_for_review(self, notice: str | None) -> ReviewInput | None:
        """Pause (plain runs) or suspend (deployment runs) until a reviewer decides; None when the time is up."""
        row = self.store.get_session(self.session_id)
        reuse = self.reuse_review_key and row.review_key
        self.reuse_review_key = False
        key = row.review_key if reuse else f"review-{self.iteration}-{uuid.uuid4().hex[:8]}"
        diff = self.store.latest_diff(self.session_id)
        increment = self.store.latest_diff(self.session_id, scope="increment", with_patch=False) if self.iteration > 1 else None
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
            patch=diff.patch.decode("utf-8", errors="replace") if diff else "",
            candidates=self.candidate_lines(row),
            review_page=self.settings.review_page(self.session_id),
        )
        form = ReviewInput.with_initial_data(description=self.redact(description))
        runner = None if deployment.id else current_runner()  # a suspended run has no process waiting
        if reuse:
            self.store.update_session(self.session_id, runner=runner)
        else:
            deadline = utcnow() + timedelta(seconds=self.settings.review_timeout_s)
            move(self.store, self.session_id, SessionStatus.awaiting_review, notice or "waiting for a reviewer",
                 review_key=key, review_deadline=deadline, runner=runner)
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
