"""The store's tables: the SQLAlchemy declarative ``Base`` and one ``*Row`` class per table, as this version writes them.

Their shape is what the newest migration in ``migrations/`` brings a store to; changing a column here needs a
revision there.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tasks_lib.domain.records import Usage


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """The declarative base every table of the store is declared on (its ``metadata`` holds them all)."""


class SessionRow(Base):
    """One run of a task: its request, where it works, how it ended and what it used."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(32), index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    agent: Mapped[str] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    repository: Mapped[str] = mapped_column(Text)
    branch: Mapped[str | None] = mapped_column(String(255))
    instructions: Mapped[str] = mapped_column(Text)
    reviewer: Mapped[str | None] = mapped_column(String(200), index=True)
    workflow: Mapped[str | None] = mapped_column(String(200), index=True)
    base_commit: Mapped[str | None] = mapped_column(String(64))
    work_branch: Mapped[str | None] = mapped_column(String(255))
    workspace: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    iteration: Mapped[int] = mapped_column(Integer, default=1)
    end_reason: Mapped[str | None] = mapped_column(String(32))
    steps_used: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    lines_added: Mapped[int] = mapped_column(Integer, default=0)
    lines_removed: Mapped[int] = mapped_column(Integer, default=0)
    files_changed: Mapped[int] = mapped_column(Integer, default=0)
    agent_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    conversation: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    review_key: Mapped[str | None] = mapped_column(String(64))
    review_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    change_rounds: Mapped[int] = mapped_column(Integer, default=0)
    delivered_commit: Mapped[str | None] = mapped_column(String(64))
    delivered_to: Mapped[str | None] = mapped_column(Text)
    runner: Mapped[str | None] = mapped_column(String(255))  # host:pid of the process working on it
    sandbox: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the SandboxSpec its commands run under
    iteration_start: Mapped[int | None] = mapped_column(Integer)  # messages of the conversation before this iteration
    agent_seconds: Mapped[float | None] = mapped_column(Float)  # wall time the agent loop used, all iterations
    retry_rounds: Mapped[int | None] = mapped_column(Integer)  # retries a reviewer asked for
    delivery_target: Mapped[str | None] = mapped_column(Text)  # where an accept is delivering (set before pushing)
    candidates: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # best-of-N: {iteration, chosen, ranked: [...]}
    started_by: Mapped[str | None] = mapped_column(String(64))  # the person who started it from the CLI (team mode)

    def usage(self) -> Usage:
        """What the session has used so far, all iterations."""
        return Usage(
            steps=self.steps_used,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cached_tokens=self.cached_tokens,
            cost_usd=self.cost_usd,
        )


class TransitionRow(Base):
    """One change of a session's status: from what, to what, why, and who made it."""

    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str] = mapped_column(String(32), default="")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StepRow(Base):
    """One model turn of a session, with the tool calls it made."""

    __tablename__ = "steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    iteration: Mapped[int] = mapped_column(Integer, default=1)
    index: Mapped[int] = mapped_column(Integer)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)


class DiffRow(Base):
    """The diff of one iteration: the re-appliable patch and its per-file stats."""

    __tablename__ = "diffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    iteration: Mapped[int] = mapped_column(Integer, default=1)
    scope: Mapped[str] = mapped_column(String(16), default="cumulative")  # cumulative | increment
    base_commit: Mapped[str] = mapped_column(String(64))
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    added: Mapped[int] = mapped_column(Integer)
    removed: Mapped[int] = mapped_column(Integer)
    patch: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SummaryRow(Base):
    """The summary of one iteration: the model's prose plus the facts code computed."""

    __tablename__ = "summaries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    iteration: Mapped[int] = mapped_column(Integer, default=1)
    markdown: Mapped[str] = mapped_column(Text)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewRow(Base):
    """One review decision on a session."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    iteration: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(32))
    feedback: Mapped[str] = mapped_column(Text, default="")
    instructions: Mapped[str] = mapped_column(Text, default="")
    outcome: Mapped[str] = mapped_column(Text, default="")
    comments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)  # line comments
    decided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(64))  # the person, when one was known
    auth: Mapped[str | None] = mapped_column(String(32))  # token | local | prefect-form (None: before 0003)
    commit: Mapped[str | None] = mapped_column(String(64))  # the commit an accept produced


class CheckRow(Base):
    """One run of the agent's check command."""

    __tablename__ = "checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    iteration: Mapped[int] = mapped_column(Integer)
    fix_round: Mapped[int] = mapped_column(Integer, default=0)
    command: Mapped[str] = mapped_column(Text)
    passed: Mapped[bool] = mapped_column(Boolean)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    output_tail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DeliveryRow(Base):
    """A webhook delivery the relay has already turned into an event."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PersonRow(Base):
    """A person of a team: name, role, groups, and the hash of their token (the token itself is never kept)."""

    __tablename__ = "people"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(320))
    groups: Mapped[list[str] | None] = mapped_column(JSON)
    token_id: Mapped[str | None] = mapped_column(String(32), unique=True)  # the public part of their token
    token_hash: Mapped[str | None] = mapped_column(String(255))  # scrypt$N$r$p$salt$hash of its secret
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GrantRow(Base):
    """A decision a checked person sent to one review pause: the flow honours its decision as theirs.

    Only the grant's id travels in the run input; who and how stay here.
    """

    __tablename__ = "decision_grants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    review_key: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(32))
    person: Mapped[str | None] = mapped_column(String(64))
    auth: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditRow(Base):
    """An audit entry that is not a session's start or decision (those are their own rows): a decision refused
    (``kind`` refused: who tried, how they were known, through what, the decision, why) or a change to the people
    (``kind`` people: who changed whose record, and what)."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # refused | people
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    person: Mapped[str | None] = mapped_column(String(64))  # who tried or changed (None: unknown, or the local user)
    auth: Mapped[str | None] = mapped_column(String(32))  # how they were known (None: they were not)
    via: Mapped[str | None] = mapped_column(String(16))  # refused: cli | page | prefect-form
    action: Mapped[str] = mapped_column(
        String(32)
    )  # refused: the decision; people: add | remove | token | role | groups
    subject: Mapped[str | None] = mapped_column(String(64))  # people: whose record
    detail: Mapped[str] = mapped_column(Text, default="")  # refused: the reason; people: the change


class SigninFailureRow(Base):
    """A sign-in on the review pages that failed, under the key it counts against (``address:…``, ``person:…``);
    kept for the rate-limit window only."""

    __tablename__ = "signin_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
