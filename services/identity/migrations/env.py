"""Alembic environment of identity's database."""

from services.identity.store import Base
from shared.migrations import run_env

run_env(Base.metadata)
