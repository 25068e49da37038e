"""How booking's replica of the catalogue follows the registry: on every `venue.*`, `resource.*`
and `opening_hours.changed` event the venue's cached answers are dropped and its part of the
reports' projection read again; new opening hours also flag the future bookings they leave
outside."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.booking import store
from services.booking.catalogue import store as catalogue_store
from services.booking.clients import fetch_open_intervals
from services.booking.domain.bookings import inside
from services.booking.reports import projection
from shared.events import Event
from shared.http import ServiceClient
from shared.outbox import EventHandler
from shared.time import Interval

VENUE_EVENTS = ("venue.created", "venue.updated", "venue.deleted")
RESOURCE_EVENTS = ("resource.created", "resource.updated", "resource.deleted")


def _venue_of(event: Event) -> str:
    data: dict[str, Any] = event.data
    return str(data["id"] if event.type.startswith("venue.") else data["venue_id"])


async def drop_cached(session: AsyncSession, event: Event) -> None:
    await catalogue_store.invalidate(session, _venue_of(event))


def catalogue_changed(registry: ServiceClient) -> EventHandler:
    async def handle(session: AsyncSession, event: Event) -> None:
        """Drop the cache, then read the venue again into the reports' projection."""
        await drop_cached(session, event)
        await projection.refresh_venue(session, registry, _venue_of(event))

    return handle


def hours_changed(registry: ServiceClient) -> EventHandler:
    async def handle(session: AsyncSession, event: Event) -> None:
        """Drop the cache, read the new hours into the reports' projection, then flag the future
        bookings the new hours leave outside."""
        venue_id = _venue_of(event)
        await catalogue_store.invalidate(session, venue_id)
        await projection.refresh_venue(session, registry, venue_id)
        now = datetime.now(UTC)
        changed = event.data.get("resource_id")
        resource_ids = (
            [changed]
            if changed
            else await store.resources_with_future_slots(session, venue_id, now)
        )
        rows = await store.future_bookings_of(session, resource_ids, now)
        if not rows:
            return
        window = Interval(now, max(row.end_at for row in rows))
        booked = sorted({rid for row in rows for rid in row.resource_ids})
        # One the registry no longer has is never open: its bookings are outside.
        hours = await fetch_open_intervals(registry, booked, window)
        flags = {
            row.id: not all(
                inside(Interval(row.start_at, row.end_at), hours.get(rid, []))
                for rid in row.resource_ids
            )
            for row in rows
            if not row.override_hours
        }
        await store.flag_outside_hours(session, flags, now=now)

    return handle
