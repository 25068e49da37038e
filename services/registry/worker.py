"""The registry's worker: relays its outbox and follows bookings to know what is still in use."""

from __future__ import annotations

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry import store
from shared.config import Settings
from shared.contracts import BookingChanged
from shared.events import Event
from shared.worker import WorkerSettings, worker_settings

ENDED = frozenset({"booking.cancelled", "booking.rejected"})


async def on_booking(session: AsyncSession, event: Event) -> None:
    booking = msgspec.convert(event.data, BookingChanged, strict=False)
    await store.track_booking(
        session,
        booking_id=booking.id,
        venue_id=booking.venue_id,
        resource_ids=booking.resource_ids,
        ends_at=booking.end,
        live=event.type not in ENDED,
    )


def create_worker_settings(settings: Settings) -> WorkerSettings:
    return worker_settings(
        "registry",
        settings,
        tables=store.tables,
        handlers={
            "booking.created": on_booking,
            "booking.confirmed": on_booking,
            "booking.cancelled": on_booking,
            "booking.rejected": on_booking,
        },
    )
