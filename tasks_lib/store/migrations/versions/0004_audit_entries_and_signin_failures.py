"""The audit's other entries (decisions refused, changes to the people) and the review pages' failed sign-ins.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = set(sa.inspect(op.get_bind()).get_table_names())
    if "audit_entries" not in tables:
        op.create_table(
            "audit_entries",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("session_id", sa.String(36), sa.ForeignKey("sessions.id", ondelete="CASCADE")),
            sa.Column("person", sa.String(64)),
            sa.Column("auth", sa.String(32)),
            sa.Column("via", sa.String(16)),
            sa.Column("action", sa.String(32), nullable=False),
            sa.Column("subject", sa.String(64)),
            sa.Column("detail", sa.Text, nullable=False),
            sa.Index("ix_audit_entries_at", "at"),
            sa.Index("ix_audit_entries_session_id", "session_id"),
        )
    if "signin_failures" not in tables:
        op.create_table(
            "signin_failures",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("key", sa.String(200), nullable=False),
            sa.Column("at", sa.DateTime(timezone=True), nullable=False),
            sa.Index("ix_signin_failures_key", "key"),
            sa.Index("ix_signin_failures_at", "at"),
        )


def downgrade() -> None:
    op.drop_table("signin_failures")
    op.drop_table("audit_entries")
