"""The registry, as the booking service asks it: resources with their venue's facts, and open
intervals, each cached in booking's own database until a registry event about the venue drops it.

The cache is read and filled in short transactions of its own, before the request's transaction
begins, so a cache fill never waits on the request's own write lock (SQLite) and every replica and
the worker share one cache. When the registry cannot be reached, what is cached still serves and
anything else is 503 `registry_unavailable`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

import msgspec

from services.booking import store
from services.booking.domain.bookings import Bookable
from shared.config import Settings
from shared.contracts import ResourceType, Rules
from shared.db import Database
from shared.errors import FieldError, InvalidRequest
from shared.http import RemoteError, ServiceClient
from shared.time import Interval, merge

MAX_PIECE = timedelta(days=365)


class RegistryResource(msgspec.Struct, frozen=True):
    """The fields of the registry's resource that booking reads."""

    id: str
    venue_id: str
    name: str
    type: ResourceType
    capacity: int | None
    requires_approval: bool
    rules: Rules


class RegistryVenue(msgspec.Struct, frozen=True):
    id: str
    owner_org: str
    timezone: str
    area_id: str
    kind: str


class Intervals(msgspec.Struct, frozen=True):
    items: list[Interval]


class ResourcePage(msgspec.Struct, frozen=True):
    items: list[RegistryResource]


def _bookable(resource: RegistryResource, venue: RegistryVenue) -> Bookable:
    return Bookable(
        id=resource.id,
        venue_id=resource.venue_id,
        name=resource.name,
        type=resource.type,
        capacity=resource.capacity,
        requires_approval=resource.requires_approval,
        rules=resource.rules,
        owner_org=venue.owner_org,
        timezone=venue.timezone,
        area_id=venue.area_id,
        venue_kind=venue.kind,
    )


def _day_window(window: Interval) -> Interval:
    """Whole UTC days around `window`: neighbouring requests share one cache entry."""
    start = datetime.combine(window.start.astimezone(UTC).date(), time(), tzinfo=UTC)
    end = datetime.combine(window.end.astimezone(UTC).date(), time(), tzinfo=UTC)
    return Interval(start, end if end == window.end else end + timedelta(days=1))


def registry_http(settings: Settings) -> ServiceClient:
    return ServiceClient(caller="booking", target="registry", settings=settings)


async def fetch_open_intervals(
    http: ServiceClient, resource_id: str, window: Interval
) -> list[Interval]:
    """Straight from the registry, uncached: at most a year, which is what it resolves at once."""
    answer = await http.get(
        f"/v1/resources/{resource_id}/open-intervals",
        Intervals,
        **{"from": window.start.isoformat(), "to": window.end.isoformat()},
    )
    return answer.items


class RegistryClient:
    def __init__(self, settings: Settings, database: Database) -> None:
        self._http = registry_http(settings)
        self._database = database

    async def aclose(self) -> None:
        await self._http.aclose()

    async def bookables(self, resource_ids: Sequence[str]) -> list[Bookable]:
        """The resources, in the order asked; 422 `unknown_resource` names any that do not exist."""
        keys = {resource_id: f"resource:{resource_id}" for resource_id in resource_ids}
        async with self._database.read() as session:
            hits = await store.cached(session, list(keys.values()))
        found = {
            resource_id: msgspec.msgpack.decode(hits[key], type=Bookable)
            for resource_id, key in keys.items()
            if key in hits
        }
        missing = [
            resource_id for resource_id in dict.fromkeys(resource_ids) if resource_id not in found
        ]
        unknown = []
        for resource_id in missing:
            bookable = await self._fetch_bookable(resource_id)
            if bookable is None:
                unknown.append(resource_id)
            else:
                found[resource_id] = bookable
        if unknown:
            raise InvalidRequest(
                "no such resource",
                code="unknown_resource",
                errors=[FieldError("resource_ids", f"unknown resource {rid}") for rid in unknown],
            )
        return [found[resource_id] for resource_id in resource_ids]

    async def _fetch_bookable(self, resource_id: str) -> Bookable | None:
        try:
            resource = await self._http.get(f"/v1/resources/{resource_id}", RegistryResource)
        except RemoteError as exc:
            if exc.remote_status == 404:
                return None
            raise
        async with self._database.read() as session:
            current = await store.generation(session, resource.venue_id)
        bookable = _bookable(resource, await self._venue(resource.venue_id))
        await self._remember(
            f"resource:{resource_id}", bookable.venue_id, msgspec.msgpack.encode(bookable), current
        )
        return bookable

    async def search(
        self,
        *,
        area_id: str | None,
        type: ResourceType | None,  # noqa: A002 - the API's parameter name
        min_capacity: int | None,
        features: Sequence[str],
        limit: int = 500,
    ) -> list[Bookable]:
        """Resources matching the filters (one registry page), each with its venue's facts."""
        filters = {"area_id": area_id, "type": type, "min_capacity": min_capacity}
        params = {name: value for name, value in filters.items() if value is not None}
        page = await self._http.get(
            "/v1/resources", ResourcePage, limit=limit, feature=list(features), **params
        )
        venue_ids = list(dict.fromkeys(resource.venue_id for resource in page.items))
        async with self._database.read() as session:
            generations = {
                venue_id: await store.generation(session, venue_id) for venue_id in venue_ids
            }
        venues = {venue_id: await self._venue(venue_id) for venue_id in venue_ids}
        found = [_bookable(resource, venues[resource.venue_id]) for resource in page.items]
        async with self._database.write() as session:
            await store.remember(
                session,
                [
                    (
                        f"resource:{b.id}",
                        b.venue_id,
                        msgspec.msgpack.encode(b),
                        generations[b.venue_id],
                    )
                    for b in found
                ],
            )
        return found

    async def _venue(self, venue_id: str) -> RegistryVenue:
        return await self._http.get(f"/v1/venues/{venue_id}", RegistryVenue)

    async def open_intervals(
        self, resources: Sequence[Bookable], window: Interval
    ) -> dict[str, list[Interval]]:
        """Each resource's open intervals over whole UTC days covering `window`.

        The registry resolves at most a year per call, so a longer window goes in pieces.
        """
        days = _day_window(window)
        found: dict[str, list[Interval]] = {resource.id: [] for resource in resources}
        start = days.start
        while start < days.end:
            piece = Interval(start, min(start + MAX_PIECE, days.end))
            for resource_id, intervals in (await self._open_piece(resources, piece)).items():
                found[resource_id] = merge([*found[resource_id], *intervals])
            start = piece.end
        return found

    async def _open_piece(
        self, resources: Sequence[Bookable], days: Interval
    ) -> dict[str, list[Interval]]:
        stamp = f"{days.start.date().isoformat()}:{(days.end - days.start).days}"
        keys = {resource.id: f"open:{resource.id}:{stamp}" for resource in resources}
        async with self._database.read() as session:
            hits = await store.cached(session, list(keys.values()))
            generations = {
                resource.venue_id: await store.generation(session, resource.venue_id)
                for resource in resources
                if keys[resource.id] not in hits
            }
        found: dict[str, list[Interval]] = {}
        for resource in resources:
            key = keys[resource.id]
            if key in hits:
                found[resource.id] = msgspec.msgpack.decode(hits[key], type=list[Interval])
                continue
            found[resource.id] = await fetch_open_intervals(self._http, resource.id, days)
            await self._remember(
                key,
                resource.venue_id,
                msgspec.msgpack.encode(found[resource.id]),
                generations[resource.venue_id],
            )
        return found

    async def _remember(self, key: str, venue_id: str, value: bytes, generation: int) -> None:
        async with self._database.write() as session:
            await store.remember(session, [(key, venue_id, value, generation)])
