"""bookings: booked_by (the booker's token `sub`, formerly created_by) and version

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# `recreate="never"`: both changes are plain ALTER TABLE on SQLite (3.25+ renames columns), and a
# batch copy of `bookings` would drop the table under foreign_keys=ON, and so cascade-delete every
# row of booking_slots.


def upgrade() -> None:
    with op.batch_alter_table("bookings", schema=None, recreate="never") as batch_op:
        # `created_by` always held the token's `sub`: renamed, each row keeps its booker.
        batch_op.alter_column(
            "created_by",
            new_column_name="booked_by",
            existing_type=sa.String(length=200),
            existing_nullable=False,
        )
        # Every existing booking starts at version 1, as a new one does.
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("bookings", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("version")
        batch_op.alter_column(
            "booked_by",
            new_column_name="created_by",
            existing_type=sa.String(length=200),
            existing_nullable=False,
        )
