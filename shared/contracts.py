"""Payloads that cross service lines: one definition, read by producer and consumer alike."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta


class ResourceType(StrEnum):
    ROOM = "room"
    EQUIPMENT = "equipment"


class Rules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An owner's booking rules for one resource; the booking service enforces them."""

    min_minutes: Annotated[int, Meta(ge=1, le=7 * 24 * 60)] = 30
    max_minutes: Annotated[int, Meta(ge=1, le=7 * 24 * 60)] = 240
    lead_minutes: Annotated[int, Meta(ge=0, le=365 * 24 * 60)] = 0
    horizon_days: Annotated[int, Meta(ge=1, le=3 * 365)] = 90
    buffer_minutes: Annotated[int, Meta(ge=0, le=24 * 60)] = 0
    slot_minutes: Annotated[int, Meta(ge=1, le=24 * 60)] = 15


class BookingChanged(msgspec.Struct, frozen=True):
    """The data of every `booking.*` event."""

    id: str
    venue_id: str
    resource_ids: list[str]
    start: datetime
    end: datetime
    status: str
    org: str
