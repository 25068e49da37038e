"""one exclusion constraint over live slots instead of two: a slot's `claim` is its booking for an
`own` slot and its reach for a hall's `whole` or `part`, and two overlapping live slots of a
resource may stand only with the same claim (two halves under one hall, or a hall over two
halves); every own slot is its own claim, so it stands beside no other

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 22:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DURING = "tstzrange(blocked_from, blocked_until, '[)')"
_CLAIM = "(CASE WHEN reach = 'own' THEN booking_id ELSE reach END)"

# The same rule as migration 0004's two constraints (`domain.halls.excludes`), with one GiST index
# to keep and search on every booking instead of two.


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE booking_slots DROP CONSTRAINT ex_booking_slots_hall_and_parts")
        op.execute("ALTER TABLE booking_slots DROP CONSTRAINT ex_booking_slots_no_overlap")
        op.execute(
            "ALTER TABLE booking_slots ADD CONSTRAINT ex_booking_slots_no_overlap "
            f"EXCLUDE USING gist (resource_id WITH =, {_DURING} WITH &&, {_CLAIM} WITH <>) "
            "WHERE (live)"
        )


def downgrade() -> None:
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
