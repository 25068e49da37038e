"""The reports' projection of the registry, kept in booking's own database.

A report sums in SQL, so the open hours it divides by must be rows beside the bookings. They are
the registry's own answer (`GET /v1/resources/{id}/open-intervals`), never recomputed here, cut
into pieces (`domain.reports.pieces_of`), with each resource's grouping facts: name, venue, kind,
area path, owner and zone (`catalogue.store.ReportResourceRow`).

It is kept current two ways, both through `read_venue` and `reports_store.save_venue`:
- the worker, on every `venue.*`, `resource.*` and `opening_hours.changed` event, re-reads the
  venue, its resources and their hours over what the projection already covers (`read_again`,
  before the event's transaction), and writes them in that transaction (`save_again`), so
  reports stay fast after a change;
- a report first calls `prepare`, which reads the whole catalogue once (a new database), then,
  for each venue in scope with a resource that does not cover the report's days or was read at an
  older registry generation than the venue's current one (an event not yet handled, or a fill
  that raced one), reads that venue again.
Each write is stamped with the generation read before the registry was asked, so an answer that
an event overtook is found stale by the next report, never trusted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.catalogue import store as catalogue_store
from services.booking.catalogue.reader import day_window
from services.booking.clients import (
    RegistryArea,
    RegistryResource,
    RegistryVenue,
    fetch_open_intervals,
)
from services.booking.domain.reports import (
    area_paths,
    coverage_after,
    ensure_may_report_on,
    pieces_of,
    reporting_org,
)
from services.booking.reports import store as reports_store
from services.booking.reports.store import Scope, VenueReading
from shared.auth import Principal
from shared.db import Database
from shared.errors import NotFound
from shared.http import RemoteError, ServiceClient
from shared.outbox import Moved
from shared.time import LONGEST_RANGE, Interval, zone

T = TypeVar("T")
# The most open hours a resource keeps: two years of reports without reading any twice.
LONGEST_COVERAGE = 2 * LONGEST_RANGE


async def prepare(
    database: Database,
    http: ServiceClient,
    principal: Principal,
    span: Interval,
    *,
    venue_id: str | None,
    area_id: str | None,
) -> Scope:
    """The scope of a report the caller may see, with the projection made good for `span`.

    Office sees every venue, a venue manager its organisation's; naming another organisation's
    venue is 403, an unknown venue or area 404.
    """
    owner_org = reporting_org(principal)
    if not await _synced(database):
        await _read_catalogue(database, http)
    scope = Scope(
        owner_org=owner_org,
        venue_id=venue_id,
        area_path=None if area_id is None else await _area_path(database, http, area_id),
    )
    if venue_id is not None:
        ensure_may_report_on(principal, await _venue_owner(database, http, venue_id))
    days = day_window(span)
    async with database.read() as session:
        venues = await reports_store.venues_needing_work(session, scope, days)
    for venue in venues:
        async with database.read() as session:
            generation = await catalogue_store.generation(session, venue)
            held = await reports_store.coverage(session, venue)
            known = await reports_store.area_paths(session)
        reading = await read_venue(http, venue, held=held, known_areas=known, wanted=days)
        async with database.write() as session:
            await reports_store.save_venue(session, reading, generation)
    return scope


class Reread(msgspec.Struct, frozen=True):
    """A venue read again from the registry, and what the projection held of its hours then."""

    reading: VenueReading
    held: dict[str, Interval | None]


async def read_again(database: Database, http: ServiceClient, venue_id: str) -> Reread | None:
    """After a registry event about the venue, before its transaction: the venue as the registry
    has it now, over what the projection holds of it; None while no report has been asked for."""
    async with database.read() as session:
        if not await reports_store.catalogue_synced(session):
            return None
        held = await reports_store.coverage(session, venue_id)
        known = await reports_store.area_paths(session)
    reading = await read_venue(http, venue_id, held=held, known_areas=known, wanted=None)
    return Reread(reading=reading, held=held)


async def save_again(session: AsyncSession, reread: Reread | None, generation: int) -> None:
    """In the event's transaction, the venue's generation raised to `generation`: write what
    `read_again` found. `Moved` where a report has filled the venue's hours since, which the
    reading would stamp current without having read them."""
    if reread is None:
        return
    venue_id = reread.reading.venue_id
    await reports_store.lock_venue(session, venue_id)
    if await reports_store.coverage(session, venue_id) != reread.held:
        raise Moved(f"the reports' projection of venue {venue_id} was filled meanwhile")
    await reports_store.save_venue(session, reread.reading, generation)


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
    venue = await _fetched_or_none(http.get(f"/v1/venues/{venue_id}", RegistryVenue))
    if venue is None:
        return VenueReading(venue_id=venue_id, venue=None)
    new_areas = await _new_areas(http, venue.area_id, known_areas)
    paths = {**known_areas, **{area_id: path for area_id, _, path in new_areas}}
    resources = await http.every("/v1/resources", RegistryResource, venue_id=venue_id)
    wanted_windows: dict[str, Interval] = {}
    for resource in resources:
        now_held = held.get(resource.id)
        window = now_held if wanted is None else coverage_after(now_held, wanted, LONGEST_COVERAGE)
        if window is not None:
            wanted_windows[resource.id] = window
    # Resources that share a window (most of a venue's) are asked about in one call.
    sharing: dict[Interval, list[str]] = defaultdict(list)
    for resource_id, window in wanted_windows.items():
        sharing[window].append(resource_id)
    found: dict[str, list[Interval]] = {}
    for window, resource_ids in sharing.items():
        found |= await fetch_open_intervals(http, resource_ids, window)
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


async def _fetched_or_none(answer: Awaitable[T]) -> T | None:
    try:
        return await answer
    except RemoteError as exc:
        if exc.remote_status == 404:
            return None
        raise


async def _new_areas(
    http: ServiceClient, area_id: str, known: dict[str, str]
) -> list[tuple[str, str, str]]:
    """The area and those of its ancestors the projection lacks: (id, name, path) each."""
    fetched: dict[str, RegistryArea] = {}
    current: str | None = area_id
    while current is not None and current not in known and current not in fetched:
        area = await http.get(f"/v1/areas/{current}", RegistryArea)
        fetched[area.id] = area
        current = area.parent_id
    paths = area_paths({a.id: a.parent_id for a in fetched.values()}, known)
    return [(a.id, a.name, paths[a.id]) for a in fetched.values()]


async def _synced(database: Database) -> bool:
    async with database.read() as session:
        return await reports_store.catalogue_synced(session)


async def _read_catalogue(database: Database, http: ServiceClient) -> None:
    """Every area, venue and resource the registry has, read once into a new projection; the
    generations are read first, so an event that comes during the reading marks it stale."""
    async with database.read() as session:
        generations = await reports_store.all_generations(session)
    areas = await http.every("/v1/areas", RegistryArea)
    venues = {v.id: v for v in await http.every("/v1/venues", RegistryVenue)}
    resources = await http.every("/v1/resources", RegistryResource)
    paths = area_paths({area.id: area.parent_id for area in areas}, {})
    async with database.write() as session:
        await reports_store.save_catalogue(
            session,
            [(area.id, area.name, paths[area.id]) for area in areas],
            [
                (resource, venues[resource.venue_id], paths[venues[resource.venue_id].area_id])
                for resource in resources
                if resource.venue_id in venues
            ],
            generations,
        )
        await reports_store.mark_catalogue_synced(session, datetime.now(UTC))


async def _area_path(database: Database, http: ServiceClient, area_id: str) -> str:
    async with database.read() as session:
        known = await reports_store.area_paths(session)
    if area_id in known:
        return known[area_id]
    new_areas = await _fetched_or_none(_new_areas(http, area_id, known))
    if new_areas is None:
        raise NotFound("no such area")
    async with database.write() as session:
        await reports_store.save_areas(session, new_areas)
    return {found: path for found, _, path in new_areas}[area_id]


async def _venue_owner(database: Database, http: ServiceClient, venue_id: str) -> str:
    async with database.read() as session:
        owner = await reports_store.venue_owner(session, venue_id)
    if owner is not None:
        return owner
    # A venue without resources has no rows in the projection: the registry knows it.
    venue = await _fetched_or_none(http.get(f"/v1/venues/{venue_id}", RegistryVenue))
    if venue is None:
        raise NotFound("no such venue")
    return venue.owner_org
