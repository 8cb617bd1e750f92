"""People (names, roles, groups, token hashes), decision grants, and who made each decision (and its commit).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NEW_COLUMNS = (
    ("reviews", sa.Column("decided_by", sa.String(64), nullable=True)),
    ("reviews", sa.Column("auth", sa.String(32), nullable=True)),
    ("reviews", sa.Column("commit", sa.String(64), nullable=True)),
    ("sessions", sa.Column("started_by", sa.String(64), nullable=True)),
)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # a store adopted from before versioning may already have them (it is made from the models)
    for table, column in NEW_COLUMNS:
        if column.name not in {c["name"] for c in inspector.get_columns(table)}:
            op.add_column(table, column)
    tables = set(inspector.get_table_names())
    if "people" not in tables:
        _people()
    if "decision_grants" not in tables:
        _grants()


def _people() -> None:
    op.create_table(
        "people",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("groups", sa.JSON),
        sa.Column("token_id", sa.String(32), unique=True),
        sa.Column("token_hash", sa.String(255)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def _grants() -> None:
    op.create_table(
        "decision_grants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(36), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("review_key", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("person", sa.String(64)),
        sa.Column("auth", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.Index("ix_decision_grants_session_id", "session_id"),
    )


def downgrade() -> None:
    op.drop_table("decision_grants")
    op.drop_table("people")
    for table, column in NEW_COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column.name)
