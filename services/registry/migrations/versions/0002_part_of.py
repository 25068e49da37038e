"""resources: part_of, the room of the same venue a room is a part of (divisible halls)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# `recreate="never"`: adding a nullable column and an index is plain ALTER TABLE on SQLite, and a
# batch copy of `resources` would cascade-delete its features under foreign_keys=ON.


def upgrade() -> None:
    with op.batch_alter_table("resources", schema=None, recreate="never") as batch_op:
        batch_op.add_column(sa.Column("part_of", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_resources_part_of"), ["part_of"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("resources", schema=None, recreate="never") as batch_op:
        batch_op.drop_index(batch_op.f("ix_resources_part_of"))
        batch_op.drop_column("part_of")
