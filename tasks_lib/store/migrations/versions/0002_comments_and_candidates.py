"""Reviews keep the reviewer's line comments; sessions keep their best-of-N candidates, ranked (both JSON).

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

NEW_COLUMNS = (("reviews", "comments"), ("sessions", "candidates"))


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table, column in NEW_COLUMNS:
        # a store adopted from before versioning may already have it (it is made from the models)
        if column not in {c["name"] for c in inspector.get_columns(table)}:
            op.add_column(table, sa.Column(column, sa.JSON, nullable=True))


def downgrade() -> None:
    for table, column in NEW_COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
