"""Alembic environment of the registry's database."""

from services.registry.store import Base
from shared.migrations import run_env

run_env(Base.metadata)
