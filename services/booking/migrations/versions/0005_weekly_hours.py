"""the weekly share kept per organisation, venue and week (`weekly_hours`), and what each live
booking charged it (`booking_charges`), so a booking's own statement checks the share

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 22:00:00.000000
"""

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from services.booking.domain.fair_use import charges
from shared.db import UTCDateTime
from shared.time import Interval

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    weekly_hours = op.create_table(
        "weekly_hours",
        sa.Column("org", sa.String(length=100), nullable=False),
        sa.Column("venue_id", sa.String(length=36), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("org", "venue_id", "week", name=op.f("pk_weekly_hours")),
    )
    booking_charges = op.create_table(
        "booking_charges",
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_booking_charges_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("booking_id", "week", name=op.f("pk_booking_charges")),
    )
    # The live bookings stored so far charge their weeks as a new one would.
    bookings = sa.table(
        "bookings",
        sa.column("id", sa.String),
        sa.column("org", sa.String),
        sa.column("venue_id", sa.String),
        sa.column("timezone", sa.String),
        sa.column("start_at", UTCDateTime),
        sa.column("end_at", UTCDateTime),
        sa.column("status", sa.String),
    )
    live = op.get_bind().execute(
        sa.select(bookings).where(bookings.c.status.in_(["pending", "confirmed"]))
    )
    charged: list[dict[str, object]] = []
    held: dict[tuple[str, str, date], int] = defaultdict(int)
    for row in live:
        for charge in charges(Interval(row.start_at, row.end_at), ZoneInfo(row.timezone)):
            charged.append({"booking_id": row.id, "week": charge.week, "seconds": charge.seconds})
            held[(row.org, row.venue_id, charge.week)] += charge.seconds
    if charged:
        op.bulk_insert(booking_charges, charged)
        op.bulk_insert(
            weekly_hours,
            [
                {"org": org, "venue_id": venue_id, "week": week, "seconds": seconds}
                for (org, venue_id, week), seconds in held.items()
            ],
        )


def downgrade() -> None:
    op.drop_table("booking_charges")
    op.drop_table("weekly_hours")
