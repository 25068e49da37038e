"""Alembic environment of notify's database."""

from services.notify.store import Base
from shared.migrations import run_env

run_env(Base.metadata)
