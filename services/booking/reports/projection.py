"""How the reports keep booking's replica of the catalogue (`catalogue.store`) whole for what
they sum.

A report sums in SQL, so the open hours it divides by must be rows beside the bookings. They are
the registry's own answer (`GET /v1/resources/{id}/open-intervals`), never recomputed here, cut
into pieces (`domain.reports.pieces_of`), with each resource's facts: the rules the booking path
reads and the grouping the reports do (name, venue, kind, area path, owner and zone). The booking
path fills the same rows a month at a time (`catalogue.reader`); the reports need every resource
in scope, over one unbroken stretch of up to two years.

It is kept current two ways, both through `catalogue.sync.read_venue` and
`catalogue_store.save_venue`:
- the worker, on every `venue.*`, `resource.*` and `opening_hours.changed` event, re-reads the
  venue, its resources and their hours over what the replica already covers (`catalogue.sync`),
  so reports and bookings stay fast after a change;
- a report first calls `prepare`, which lists the whole catalogue once (a new database), then,
  for each venue in scope with a resource that does not cover the report's days or was read at an
  older registry generation than the venue's current one (an event not yet handled, or a fill
  that raced one), reads that venue again.
Each write is stamped with the generation read before the registry was asked, so an answer that
an event overtook is found stale by the next reader, never trusted.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.booking.catalogue import store as catalogue_store
from services.booking.catalogue.reader import day_window, read_new_areas
from services.booking.catalogue.sync import read_venue
from services.booking.clients import (
    RegistryArea,
    RegistryResource,
    RegistryVenue,
    fetched_or_none,
)
from services.booking.domain.reports import area_paths, ensure_may_report_on, reporting_org
from services.booking.reports import store as reports_store
from services.booking.reports.store import Scope
from shared.auth import Principal
from shared.db import Database
from shared.errors import NotFound
from shared.http import ServiceClient
from shared.time import Interval


async def prepare(
    database: Database,
    http: ServiceClient,
    principal: Principal,
    span: Interval,
    *,
    venue_id: str | None,
    area_id: str | None,
) -> Scope:
    """The scope of a report the caller may see, with the replica made good for `span`.

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
            held = await catalogue_store.coverage(session, venue)
            known = await catalogue_store.area_paths(session)
        reading = await read_venue(http, venue, held=held, known_areas=known, wanted=days)
        async with database.write() as session:
            await catalogue_store.save_venue(session, reading, generation)
    return scope


async def _synced(database: Database) -> bool:
    async with database.read() as session:
        return await catalogue_store.catalogue_listed(session)


async def _read_catalogue(database: Database, http: ServiceClient) -> None:
    """Every area, venue and resource the registry has, read once into a new replica; the
    generations are read first, so an event that comes during the reading marks it stale."""
    async with database.read() as session:
        generations = await catalogue_store.all_generations(session)
    areas = await http.every("/v1/areas", RegistryArea)
    venues = {v.id: v for v in await http.every("/v1/venues", RegistryVenue)}
    resources = await http.every("/v1/resources", RegistryResource)
    paths = area_paths({area.id: area.parent_id for area in areas}, {})
    async with database.write() as session:
        await catalogue_store.save_catalogue(
            session,
            [(area.id, area.name, paths[area.id]) for area in areas],
            [
                (resource, venues[resource.venue_id], paths[venues[resource.venue_id].area_id])
                for resource in resources
                if resource.venue_id in venues
            ],
            generations,
        )
        await catalogue_store.mark_catalogue_listed(session, datetime.now(UTC))


async def _area_path(database: Database, http: ServiceClient, area_id: str) -> str:
    async with database.read() as session:
        known = await catalogue_store.area_paths(session)
    if area_id in known:
        return known[area_id]
    new_areas = await fetched_or_none(read_new_areas(http, area_id, known))
    if new_areas is None:
        raise NotFound("no such area")
    async with database.write() as session:
        await catalogue_store.save_areas(session, new_areas)
    return {found: path for found, _, path in new_areas}[area_id]


async def _venue_owner(database: Database, http: ServiceClient, venue_id: str) -> str:
    async with database.read() as session:
        owner = await catalogue_store.venue_owner(session, venue_id)
    if owner is not None:
        return owner
    # A venue without resources has no rows in the replica: the registry knows it.
    venue = await fetched_or_none(http.get(f"/v1/venues/{venue_id}", RegistryVenue))
    if venue is None:
        raise NotFound("no such venue")
    return venue.owner_org
