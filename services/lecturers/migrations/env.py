"""Alembic environment of the lecturer service's database."""

from services.lecturers.store import Base
from shared.migrations import run_env

run_env(Base.metadata)
