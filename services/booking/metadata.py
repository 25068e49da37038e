"""The one declarative base of booking's database: its bookings (`store`), its replica of the
registry (`catalogue.store`) and the outbox tables all sit on `Base.metadata`, which the
migrations' autogenerate compares with and the tests wipe."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from shared.db import new_metadata
from shared.outbox import outbox_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


tables = outbox_tables(Base.metadata)
