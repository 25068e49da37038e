"""one replica of the registry's catalogue: `catalogue_resources` (every fact the booking rules and
the reports read, and the stretch of open hours held, each with the generation it was read at),
`catalogue_areas`, `catalogue_open_hours` and `catalogue_listed`, in place of the booking path's
`registry_cache` and the reports' `report_*` tables

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table here is a replica of the registry, refilled from it on demand (a booking's miss,
# a report's first listing): each side's tables are dropped and the other's created empty,
# never copied across. `registry_generations` stays, so no reading is ever taken for current.


def _create_areas(name: str) -> None:
    op.create_table(
        name,
        sa.Column("area_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("area_id", name=op.f(f"pk_{name}")),
    )


def _create_open_hours(name: str) -> None:
    op.create_table(
        name,
        sa.Column("resource_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("start_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("end_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("weekday", sa.SmallInteger(), nullable=False),
        sa.Column("wall_second", sa.Integer(), nullable=False),
        sa.CheckConstraint("start_at < end_at", name=op.f(f"ck_{name}_open_piece_not_empty")),
        sa.PrimaryKeyConstraint("resource_id", "day", "start_at", name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    op.drop_table("registry_cache")
    op.drop_table("report_resources")
    op.drop_table("report_open_hours")
    op.drop_table("report_catalogue")
    op.drop_table("report_areas")
    op.create_table(
        "catalogue_resources",
        sa.Column("resource_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("requires_approval", sa.Boolean(), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("parts", sa.Text(), nullable=False),
        sa.Column("part_of", sa.String(length=36), nullable=True),
        sa.Column("smallest", sa.Boolean(), nullable=False),
        sa.Column("venue_id", sa.String(length=36), nullable=False),
        sa.Column("venue_name", sa.Text(), nullable=False),
        sa.Column("venue_kind", sa.String(length=40), nullable=False),
        sa.Column("owner_org", sa.String(length=100), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("area_id", sa.String(length=36), nullable=False),
        sa.Column("area_path", sa.Text(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("covered_from", UTCDateTime(timezone=True), nullable=True),
        sa.Column("covered_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("hours_generation", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("resource_id", name=op.f("pk_catalogue_resources")),
    )
    op.create_index(op.f("ix_catalogue_resources_owner_org"), "catalogue_resources", ["owner_org"])
    op.create_index(op.f("ix_catalogue_resources_venue_id"), "catalogue_resources", ["venue_id"])
    _create_areas("catalogue_areas")
    _create_open_hours("catalogue_open_hours")
    op.create_table(
        "catalogue_listed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("listed_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_listed")),
    )


def downgrade() -> None:
    op.drop_table("catalogue_listed")
    op.drop_table("catalogue_open_hours")
    op.drop_table("catalogue_areas")
    op.drop_index(op.f("ix_catalogue_resources_venue_id"), table_name="catalogue_resources")
    op.drop_index(op.f("ix_catalogue_resources_owner_org"), table_name="catalogue_resources")
    op.drop_table("catalogue_resources")
    _create_areas("report_areas")
    op.create_table(
        "report_catalogue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("synced_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_catalogue")),
    )
    _create_open_hours("report_open_hours")
    op.create_table(
        "report_resources",
        sa.Column("resource_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("venue_id", sa.String(length=36), nullable=False),
        sa.Column("venue_name", sa.Text(), nullable=False),
        sa.Column("venue_kind", sa.String(length=40), nullable=False),
        sa.Column("area_path", sa.Text(), nullable=False),
        sa.Column("owner_org", sa.String(length=100), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("covered_from", UTCDateTime(timezone=True), nullable=True),
        sa.Column("covered_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("smallest", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.PrimaryKeyConstraint("resource_id", name=op.f("pk_report_resources")),
    )
    op.create_index(op.f("ix_report_resources_owner_org"), "report_resources", ["owner_org"])
    op.create_index(op.f("ix_report_resources_venue_id"), "report_resources", ["venue_id"])
    op.create_table(
        "registry_cache",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("venue_id", sa.String(length=36), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_registry_cache")),
    )
    op.create_index(op.f("ix_registry_cache_venue_id"), "registry_cache", ["venue_id"])
