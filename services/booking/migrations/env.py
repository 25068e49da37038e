"""Alembic environment of the booking service's database."""

from services.booking.store import Base
from shared.migrations import run_env

run_env(Base.metadata)
