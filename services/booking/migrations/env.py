"""Alembic environment of the booking service's database."""

from services.booking import store
from shared.migrations import run_env

# The one metadata of every model: `store` holds the bookings' and imports the catalogue's.
run_env(store.BookingRow.metadata)
