"""How booking's replica of the catalogue follows the registry: on every `venue.*`, `resource.*`
and `opening_hours.changed` event the venue's generation is raised (what was read of it before
is stale) and what the replica holds of it read again; new opening hours also flag the future
bookings they leave outside.

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
from services.booking.catalogue.reader import LONGEST_COVERAGE, read_new_areas
from services.booking.catalogue.store import VenueReading
from services.booking.clients import (
    RegistryResource,
    RegistryVenue,
    fetch_open_intervals,
    fetch_open_intervals_over,
    fetched_or_none,
)
from services.booking.domain.bookings import inside
from services.booking.domain.reports import coverage_after, pieces_of
from services.booking.store import BookingRow
from shared.db import Database
from shared.events import Event
from shared.http import ServiceClient
from shared.outbox import Handler, Moved, PreparedHandler
from shared.time import Interval, zone

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


class Reread(msgspec.Struct, frozen=True):
    """A venue read again from the registry, and what the replica held of its hours then."""

    reading: VenueReading
    held: dict[str, Interval | None]


async def read_again(database: Database, http: ServiceClient, venue_id: str) -> Reread | None:
    """After a registry event about the venue, before its transaction: the venue as the registry
    has it now, over what the replica holds of it; None where the replica holds nothing of it
    and no report has listed the catalogue (the booking path reads what it needs on a miss)."""
    async with database.read() as session:
        held = await catalogue_store.coverage(session, venue_id)
        if not held and not await catalogue_store.catalogue_listed(session):
            return None
        known = await catalogue_store.area_paths(session)
    reading = await read_venue(http, venue_id, held=held, known_areas=known, wanted=None)
    return Reread(reading=reading, held=held)


async def save_again(session: AsyncSession, reread: Reread | None, generation: int) -> None:
    """In the event's transaction, the venue's generation raised to `generation`: write what
    `read_again` found. `Moved` where a report or a booking has filled the venue's hours since,
    which the reading would stamp current without having read them."""
    if reread is None:
        return
    venue_id = reread.reading.venue_id
    await catalogue_store.lock_venue(session, venue_id)
    if await catalogue_store.coverage(session, venue_id) != reread.held:
        raise Moved(f"the replica's hours of venue {venue_id} were filled meanwhile")
    await catalogue_store.save_venue(session, reread.reading, generation)


async def read_venue(
    http: ServiceClient,
    venue_id: str,
    *,
    held: dict[str, Interval | None],
    known_areas: dict[str, str],
    wanted: Interval | None,
) -> VenueReading:
    """The venue, its resources and their open pieces over what each holds (grown to take in
    `wanted`), as the registry says now; a venue or resource it no longer has is left out."""
    venue = await fetched_or_none(http.get(f"/v1/venues/{venue_id}", RegistryVenue))
    if venue is None:
        return VenueReading(venue_id=venue_id, venue=None)
    new_areas = await read_new_areas(http, venue.area_id, known_areas)
    paths = {**known_areas, **{area_id: path for area_id, _, path in new_areas}}
    resources = await http.every("/v1/resources", RegistryResource, venue_id=venue_id)
    wanted_windows: dict[str, Interval] = {}
    for resource in resources:
        now_held = held.get(resource.id)
        window = now_held if wanted is None else coverage_after(now_held, wanted, LONGEST_COVERAGE)
        if window is not None:
            wanted_windows[resource.id] = window
    found = await fetch_open_intervals_over(
        http, {resource_id: [window] for resource_id, window in wanted_windows.items()}
    )
    tz = zone(venue.timezone)
    # A resource the registry no longer has is left out.
    kept = [r for r in resources if r.id not in wanted_windows or r.id in found]
    windows = {resource_id: wanted_windows[resource_id] for resource_id in found}
    pieces = {resource_id: pieces_of(intervals, tz) for resource_id, intervals in found.items()}
    return VenueReading(
        venue_id=venue_id,
        venue=venue,
        area_path=paths[venue.area_id],
        resources=kept,
        new_areas=new_areas,
        windows=windows,
        pieces=pieces,
    )


class VenueChange(msgspec.Struct, frozen=True):
    """What the registry says of a venue after an event, read while its generation was
    `generation`."""

    venue_id: str
    generation: int
    reread: Reread | None


async def _read_change(database: Database, registry: ServiceClient, event: Event) -> VenueChange:
    venue_id = _venue_of(event)
    # Read before the registry is asked: an event handled meanwhile raises it, and the change
    # is then read again rather than written over the newer one.
    async with database.read() as session:
        generation = await catalogue_store.generation(session, venue_id)
    reread = await read_again(database, registry, venue_id)
    return VenueChange(venue_id=venue_id, generation=generation, reread=reread)


async def _apply_change(session: AsyncSession, change: VenueChange) -> None:
    """Raise the venue's generation and write its new reading, unless its generation moved
    since `change` was read (`Moved`)."""
    if not await catalogue_store.raise_generation(
        session, change.venue_id, read_at=change.generation
    ):
        raise Moved(f"venue {change.venue_id} had another registry event meanwhile")
    await save_again(session, change.reread, change.generation + 1)


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
