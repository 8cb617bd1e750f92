"""The schema as it was when stores began to be versioned: sessions and what hangs off them.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ("sessions", "transitions", "steps", "diffs", "summaries", "reviews", "checks", "deliveries")


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _session_id() -> sa.Column:
    return sa.Column("session_id", sa.String(36), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False)


def define_tables(create_table: Callable[..., Any]) -> None:
    """Call ``create_table(name, *columns_and_indexes)`` for each table of this revision, parents first."""
    create_table(
        "sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        _when("created_at"),
        _when("updated_at"),
        _when("finished_at", nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=False),
        sa.Column("request", sa.JSON, nullable=False),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200)),
        sa.Column("repository", sa.Text, nullable=False),
        sa.Column("branch", sa.String(255)),
        sa.Column("instructions", sa.Text, nullable=False),
        sa.Column("reviewer", sa.String(200)),
        sa.Column("workflow", sa.String(200)),
        sa.Column("base_commit", sa.String(64)),
        sa.Column("work_branch", sa.String(255)),
        sa.Column("workspace", sa.Text),
        sa.Column("flow_run_id", sa.String(36)),
        sa.Column("iteration", sa.Integer, nullable=False),
        sa.Column("end_reason", sa.String(32)),
        sa.Column("steps_used", sa.Integer, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float),
        sa.Column("lines_added", sa.Integer, nullable=False),
        sa.Column("lines_removed", sa.Integer, nullable=False),
        sa.Column("files_changed", sa.Integer, nullable=False),
        sa.Column("agent_spec", sa.JSON),
        sa.Column("conversation", sa.JSON),
        sa.Column("review_key", sa.String(64)),
        _when("review_deadline", nullable=True),
        sa.Column("change_rounds", sa.Integer, nullable=False),
        sa.Column("delivered_commit", sa.String(64)),
        sa.Column("delivered_to", sa.Text),
        sa.Column("runner", sa.String(255)),
        sa.Column("sandbox", sa.JSON),
        sa.Column("iteration_start", sa.Integer),
        sa.Column("agent_seconds", sa.Float),
        sa.Column("retry_rounds", sa.Integer),
        sa.Column("delivery_target", sa.Text),
        sa.Index("ix_sessions_created_at", "created_at"),
        sa.Index("ix_sessions_status", "status"),
        sa.Index("ix_sessions_reviewer", "reviewer"),
        sa.Index("ix_sessions_workflow", "workflow"),
        sa.Index("ix_sessions_flow_run_id", "flow_run_id"),
    )
    create_table(
        "transitions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _session_id(),
        sa.Column("from_status", sa.String(32)),
        sa.Column("to_status", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("by", sa.String(32), nullable=False),
        _when("at"),
        sa.Index("ix_transitions_session_id", "session_id"),
    )
    create_table(
        "steps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _session_id(),
        sa.Column("iteration", sa.Integer, nullable=False),
        sa.Column("index", sa.Integer, nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Index("ix_steps_session_id", "session_id"),
    )
    create_table(
        "diffs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _session_id(),
        sa.Column("iteration", sa.Integer, nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("base_commit", sa.String(64), nullable=False),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("added", sa.Integer, nullable=False),
        sa.Column("removed", sa.Integer, nullable=False),
        sa.Column("patch", sa.LargeBinary, nullable=False),
        _when("created_at"),
        sa.Index("ix_diffs_session_id", "session_id"),
    )
    create_table(
        "summaries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _session_id(),
        sa.Column("iteration", sa.Integer, nullable=False),
        sa.Column("markdown", sa.Text, nullable=False),
        sa.Column("facts", sa.JSON, nullable=False),
        _when("created_at"),
        sa.Index("ix_summaries_session_id", "session_id"),
    )
    create_table(
        "reviews",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _session_id(),
        sa.Column("iteration", sa.Integer, nullable=False),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("feedback", sa.Text, nullable=False),
        sa.Column("instructions", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        _when("decided_at"),
        sa.Index("ix_reviews_session_id", "session_id"),
    )
    create_table(
        "checks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        _session_id(),
        sa.Column("iteration", sa.Integer, nullable=False),
        sa.Column("fix_round", sa.Integer, nullable=False),
        sa.Column("command", sa.Text, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("exit_code", sa.Integer),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("output_tail", sa.Text, nullable=False),
        _when("created_at"),
        sa.Index("ix_checks_session_id", "session_id"),
    )
    create_table(
        "deliveries",
        sa.Column("id", sa.String(300), primary_key=True),
        _when("received_at"),
    )


def upgrade() -> None:
    define_tables(op.create_table)


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
