"""divisible halls: booking_slots.reach (`own`, `whole`, `part`) and the exclusion between a hall
and its parts; report_resources.smallest (a resource without parts)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 19:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DURING = "tstzrange(blocked_from, blocked_until, '[)')"

# `recreate="never"`: adding a column is plain ALTER TABLE on SQLite. Every slot stored so far
# is a booked resource's own, and every resource projected so far has no parts.
#
# PostgreSQL (`services.booking.domain.halls`): two `own` slots of a resource never overlap, as
# before; two slots of a resource with different reaches never overlap either. Two `whole` slots
# (two halves of a hall) or two `part` slots may.


def upgrade() -> None:
    with op.batch_alter_table("booking_slots", schema=None, recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("reach", sa.String(length=5), server_default="own", nullable=False)
        )
    with op.batch_alter_table("report_resources", schema=None, recreate="never") as batch_op:
        batch_op.add_column(
            sa.Column("smallest", sa.Boolean(), server_default=sa.text("true"), nullable=False)
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE booking_slots DROP CONSTRAINT ex_booking_slots_no_overlap")
        op.execute(
            "ALTER TABLE booking_slots ADD CONSTRAINT ex_booking_slots_no_overlap "
            f"EXCLUDE USING gist (resource_id WITH =, {_DURING} WITH &&) "
            "WHERE (live AND reach = 'own')"
        )
        op.execute(
            "ALTER TABLE booking_slots ADD CONSTRAINT ex_booking_slots_hall_and_parts "
            f"EXCLUDE USING gist (resource_id WITH =, {_DURING} WITH &&, reach WITH <>) "
            "WHERE (live)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE booking_slots DROP CONSTRAINT ex_booking_slots_hall_and_parts")
        op.execute("DELETE FROM booking_slots WHERE reach <> 'own'")
        op.execute("ALTER TABLE booking_slots DROP CONSTRAINT ex_booking_slots_no_overlap")
        op.execute(
            "ALTER TABLE booking_slots ADD CONSTRAINT ex_booking_slots_no_overlap "
            f"EXCLUDE USING gist (resource_id WITH =, {_DURING} WITH &&) WHERE (live)"
        )
    else:
        op.execute("DELETE FROM booking_slots WHERE reach <> 'own'")
    with op.batch_alter_table("report_resources", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("smallest")
    with op.batch_alter_table("booking_slots", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("reach")
