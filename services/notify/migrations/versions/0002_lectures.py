"""lectures: notify's record of the offers it told lecturers about; what a delivery is about

Revision ID: 0002_lectures
Revises: 0001
Create Date: 2026-12-06 19:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db


revision: str = '0002_lectures'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('lectures',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('lecturer_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('start_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('end_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('offered_at', shared.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('venue_name', sa.Text(), nullable=False),
    sa.Column('venue_address', sa.Text(), nullable=False),
    sa.Column('lecturer_name', sa.String(length=200), nullable=False),
    sa.Column('lecturer_email', sa.String(length=320), nullable=True),
    sa.Column('accept_url', sa.Text(), nullable=True),
    sa.Column('decline_url', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lectures'))
    )
    with op.batch_alter_table('lectures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lectures_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_lectures_lecturer_id'), ['lecturer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lectures_start_at'), ['start_at'], unique=False)

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('about', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('while_status', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('while_status')
        batch_op.drop_column('about')

    with op.batch_alter_table('lectures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lectures_start_at'))
        batch_op.drop_index(batch_op.f('ix_lectures_lecturer_id'))
        batch_op.drop_index(batch_op.f('ix_lectures_expires_at'))

    op.drop_table('lectures')
