"""How booking's replica of the catalogue follows the registry: on every `venue.*`, `resource.*`
and `opening_hours.changed` event the venue's cached answers are dropped and its part of the
reports' projection read again; new opening hours also flag the future bookings they leave
outside.

Each handler asks the registry before its event's transaction (`PreparedHandler`), having read
the venue's generation, and applies what it found only if the generation is still that one: a
write transaction never waits on the registry, and an event handled in between sends the
handler back to read again, never lets it write an older reading over a newer one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking import store
from services.booking.catalogue import store as catalogue_store
from services.booking.clients import fetch_open_intervals
from services.booking.domain.bookings import inside
from services.booking.reports import projection
from services.booking.store import BookingRow
from shared.db import Database
from shared.events import Event
from shared.http import ServiceClient
from shared.outbox import Handler, Moved, PreparedHandler
from shared.time import Interval

VENUE_EVENTS = ("venue.created", "venue.updated", "venue.deleted")
RESOURCE_EVENTS = ("resource.created", "resource.updated", "resource.deleted")


def handlers(registry: ServiceClient) -> dict[str, Handler]:
    """The worker's handler of each registry event booking follows."""
    found: dict[str, Handler] = dict.fromkeys(
        (*VENUE_EVENTS, *RESOURCE_EVENTS), catalogue_changed(registry)
    )
    found["opening_hours.changed"] = hours_changed(registry)
    return found


def _venue_of(event: Event) -> str:
    data: dict[str, Any] = event.data
    return str(data["id"] if event.type.startswith("venue.") else data["venue_id"])


class VenueChange(msgspec.Struct, frozen=True):
    """What the registry says of a venue after an event, read while its generation was
    `generation`."""

    venue_id: str
    generation: int
    reread: projection.Reread | None


async def _read_change(database: Database, registry: ServiceClient, event: Event) -> VenueChange:
    venue_id = _venue_of(event)
    # Read before the registry is asked: an event handled meanwhile raises it, and the change
    # is then read again rather than written over the newer one.
    async with database.read() as session:
        generation = await catalogue_store.generation(session, venue_id)
    reread = await projection.read_again(database, registry, venue_id)
    return VenueChange(venue_id=venue_id, generation=generation, reread=reread)


async def _apply_change(session: AsyncSession, change: VenueChange) -> None:
    """Drop the venue's cached answers and write its new reading, unless its generation moved
    since `change` was read (`Moved`)."""
    if not await catalogue_store.invalidate(session, change.venue_id, read_at=change.generation):
        raise Moved(f"venue {change.venue_id} had another registry event meanwhile")
    await projection.save_again(session, change.reread, change.generation + 1)


def catalogue_changed(registry: ServiceClient) -> PreparedHandler[VenueChange]:
    async def prepare(database: Database, event: Event) -> VenueChange:
        return await _read_change(database, registry, event)

    return PreparedHandler(prepare=prepare, apply=_apply_change)


class HoursChange(msgspec.Struct, frozen=True):
    """A venue's new opening hours: the venue read again, and the open intervals of the
    resources its future bookings hold (`asked`) over `window`, as of `now`."""

    venue: VenueChange
    # The one resource whose hours changed; None: the venue's.
    resource_id: str | None
    now: datetime
    asked: frozenset[str] = frozenset()
    window: Interval | None = None
    hours: dict[str, list[Interval]] = {}


async def _future_bookings(
    session: AsyncSession, venue_id: str, resource_id: str | None, now: datetime
) -> list[BookingRow]:
    """The live bookings new hours of the resource (None: the venue) may leave outside."""
    resource_ids = (
        [resource_id]
        if resource_id
        else await store.resources_with_future_slots(session, venue_id, now)
    )
    return await store.future_bookings_of(session, resource_ids, now)


def hours_changed(registry: ServiceClient) -> PreparedHandler[HoursChange]:
    async def prepare(database: Database, event: Event) -> HoursChange:
        venue = await _read_change(database, registry, event)
        resource_id = event.data.get("resource_id")
        now = datetime.now(UTC)
        async with database.read() as session:
            rows = await _future_bookings(session, venue.venue_id, resource_id, now)
        if not rows:
            return HoursChange(venue=venue, resource_id=resource_id, now=now)
        window = Interval(now, max(row.end_at for row in rows))
        asked = frozenset(rid for row in rows for rid in row.resource_ids)
        # One the registry no longer has is left out: it is never open.
        hours = await fetch_open_intervals(registry, sorted(asked), window)
        return HoursChange(
            venue=venue,
            resource_id=resource_id,
            now=now,
            asked=asked,
            window=window,
            hours=hours,
        )

    async def apply(session: AsyncSession, change: HoursChange) -> None:
        """Apply the venue's change, then flag the future bookings the new hours leave
        outside; `Moved` where one was booked since on a resource or past a time not asked."""
        await _apply_change(session, change.venue)
        rows = await _future_bookings(
            session, change.venue.venue_id, change.resource_id, change.now
        )
        if not rows:
            return
        window = change.window
        if window is None or any(
            row.end_at > window.end or not change.asked.issuperset(row.resource_ids) for row in rows
        ):
            raise Moved(f"bookings at venue {change.venue.venue_id} changed meanwhile")
        flags = {
            row.id: not all(
                inside(Interval(row.start_at, row.end_at), change.hours.get(rid, []))
                for rid in row.resource_ids
            )
            for row in rows
            if not row.override_hours
        }
        await store.flag_outside_hours(session, flags, now=datetime.now(UTC))

    return PreparedHandler(prepare=prepare, apply=apply)
