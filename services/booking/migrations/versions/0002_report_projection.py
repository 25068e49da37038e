"""report projection: the registry's catalogue and resolved open hours, for utilisation reports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('report_areas',
    sa.Column('area_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('area_id', name=op.f('pk_report_areas'))
    )
    op.create_table('report_catalogue',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('synced_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_catalogue'))
    )
    op.create_table('report_open_hours',
    sa.Column('resource_id', sa.String(length=36), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('start_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('end_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('weekday', sa.SmallInteger(), nullable=False),
    sa.Column('wall_second', sa.Integer(), nullable=False),
    sa.CheckConstraint('start_at < end_at', name=op.f('ck_report_open_hours_open_piece_not_empty')),
    sa.PrimaryKeyConstraint('resource_id', 'day', 'start_at', name=op.f('pk_report_open_hours'))
    )
    op.create_table('report_resources',
    sa.Column('resource_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('venue_id', sa.String(length=36), nullable=False),
    sa.Column('venue_name', sa.Text(), nullable=False),
    sa.Column('venue_kind', sa.String(length=40), nullable=False),
    sa.Column('area_path', sa.Text(), nullable=False),
    sa.Column('owner_org', sa.String(length=100), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('covered_from', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('covered_until', shared.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('resource_id', name=op.f('pk_report_resources'))
    )
    with op.batch_alter_table('report_resources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_resources_owner_org'), ['owner_org'], unique=False)
        batch_op.create_index(batch_op.f('ix_report_resources_venue_id'), ['venue_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('report_resources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_resources_venue_id'))
        batch_op.drop_index(batch_op.f('ix_report_resources_owner_org'))

    op.drop_table('report_resources')
    op.drop_table('report_open_hours')
    op.drop_table('report_catalogue')
    op.drop_table('report_areas')
