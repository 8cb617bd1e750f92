"""Reviews keep the reviewer's line comments (file, line, text) as JSON.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a store adopted from before versioning may already have it (it is made from the models)
    if "comments" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("reviews")}:
        op.add_column("reviews", sa.Column("comments", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("comments")
