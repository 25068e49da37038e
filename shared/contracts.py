"""Payloads that cross service lines: one definition, read by producer and consumer alike."""

from __future__ import annotations

from datetime import datetime

import msgspec


class BookingChanged(msgspec.Struct, frozen=True):
    """The data of every `booking.*` event."""

    id: str
    venue_id: str
    resource_ids: list[str]
    start: datetime
    end: datetime
    status: str
    org: str
