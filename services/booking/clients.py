"""The registry, as the booking service asks it: resources with their venue's facts, and open
intervals, each cached in booking's own database until a registry event about the venue drops it.

The cache is read and filled in short transactions of its own, before the request's transaction
begins, so a cache fill never waits on the request's own write lock (SQLite) and every replica and
the worker share one cache. When the registry cannot be reached, what is cached still serves and
anything else is 503 `registry_unavailable`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import msgspec
from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking import store
from services.booking.domain.bookings import Bookable
from shared.config import Settings
from shared.contracts import ResourceType, Rules
from shared.db import Database
from shared.errors import FieldError, InvalidRequest
from shared.http import RemoteError, ServiceClient
from shared.ids import is_uuid
from shared.time import Interval, merge
from shared.web import Page, service_state

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
    name: str
    owner_org: str
    timezone: str
    area_id: str
    kind: str


class RegistryArea(msgspec.Struct, frozen=True):
    id: str
    name: str
    parent_id: str | None


class Intervals(msgspec.Struct, frozen=True):
    items: list[Interval]


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


def day_window(window: Interval) -> Interval:
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


async def fetch_open_intervals_over(
    http: ServiceClient, resource_id: str, window: Interval
) -> list[Interval]:
    """Straight from the registry, uncached, over any window: asked a year at a time."""
    found: list[Interval] = []
    start = window.start
    while start < window.end:
        piece = Interval(start, min(start + MAX_PIECE, window.end))
        found += await fetch_open_intervals(http, resource_id, piece)
        start = piece.end
    return found


class _Memo:
    """This process's copy of registry answers, good while its venue's generation is current.

    Checking one generation inside the request's own transaction is far cheaper than reading the
    shared cache each time; a venue whose generation moved is forgotten whole.
    """

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self._generations: dict[str, int] = {}

    def get(self, key: str) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def generation(self, venue_id: str) -> int | None:
        return self._generations.get(venue_id)

    def put(self, key: str, venue_id: str, generation: int, value: Any) -> None:
        known = self._generations.get(venue_id)
        if known is not None and generation < known:
            return
        if known is not None and generation > known:
            self.forget(venue_id)
        self._generations[venue_id] = generation
        self._entries[key] = (venue_id, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def forget(self, venue_id: str, *, now_at: int | None = None) -> None:
        """Drop what is held of the venue; `now_at` records the generation found current."""
        self._generations.pop(venue_id, None)
        if now_at is not None:
            self._generations[venue_id] = now_at
        for key in [key for key, (venue, _) in self._entries.items() if venue == venue_id]:
            del self._entries[key]


class RegistryClient:
    """Registry answers from this process's memo, the shared cache table, or the registry itself.

    `refresh=True` goes straight to the registry and writes no cache row: the caller may hold
    the database's write lock (SQLite), which a cache fill would wait on.
    """

    def __init__(self, settings: Settings, database: Database) -> None:
        self._http = registry_http(settings)
        self._database = database
        self._memo = _Memo()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def http(self) -> ServiceClient:
        """The registry itself, uncached: for what keeps its own copy (the reports' projection)."""
        return self._http

    async def still_current(self, session: AsyncSession, venue_ids: Iterable[str]) -> bool:
        """Whether what this process holds of these venues is still current (else forget it)."""
        wanted = set(venue_ids)
        generations = await store.generations(session, wanted)
        stale = [v for v in wanted if self._memo.generation(v) != generations.get(v, 0)]
        for venue_id in stale:
            self._memo.forget(venue_id, now_at=generations.get(venue_id, 0))
        return not stale

    def generation_held(self, venue_id: str) -> int:
        """The venue's registry generation what this process holds was read at (-1: nothing)."""
        known = self._memo.generation(venue_id)
        return -1 if known is None else known

    async def bookables(
        self, resource_ids: Sequence[str], *, refresh: bool = False
    ) -> list[Bookable]:
        """The resources, in the order asked; 422 `unknown_resource` names any that do not exist."""
        # Not a UUID: not a resource, and not to be put into a URL to the registry (a path's id
        # may hold anything, even a control character).
        _refuse_unknown([rid for rid in dict.fromkeys(resource_ids) if not is_uuid(rid)])
        keys = {resource_id: f"resource:{resource_id}" for resource_id in resource_ids}
        found: dict[str, Bookable] = {}
        for resource_id, key in keys.items():
            if not refresh and (memo := self._memo.get(key)) is not None:
                found[resource_id] = memo
        missing = [key for resource_id, key in keys.items() if resource_id not in found]
        for key, (venue_id, generation, value) in (await self._shared(missing, refresh)).items():
            bookable = msgspec.msgpack.decode(value, type=Bookable)
            self._memo.put(key, venue_id, generation, bookable)
            found[bookable.id] = bookable
        unknown = []
        for resource_id in dict.fromkeys(resource_ids):
            if resource_id in found:
                continue
            fetched = await self._fetch_bookable(resource_id, refresh=refresh)
            if fetched is None:
                unknown.append(resource_id)
            else:
                found[resource_id] = fetched
        _refuse_unknown(unknown)
        return [found[resource_id] for resource_id in resource_ids]

    async def _shared(
        self, keys: Sequence[str], refresh: bool
    ) -> dict[str, tuple[str, int, bytes]]:
        if refresh or not keys:
            return {}
        async with self._database.read() as session:
            return await store.cached(session, keys)

    async def _generation(self, venue_id: str, refresh: bool) -> int:
        # Refreshing follows `still_current`, which left the current generation in the memo; the
        # caller holds a connection, and asking the pool for another could starve it.
        known = self._memo.generation(venue_id)
        if refresh and known is not None:
            return known
        async with self._database.read() as session:
            return await store.generation(session, venue_id)

    async def _fetch_bookable(self, resource_id: str, *, refresh: bool) -> Bookable | None:
        resource = await self._resource(resource_id)
        if resource is None:
            return None
        # The generation must be read before the answer that is kept: an event between the two
        # then marks the kept answer stale. The venue is known only from a first answer, so the
        # resource is asked for again (on a cold cache only).
        current = await self._generation(resource.venue_id, refresh)
        resource = await self._resource(resource_id)
        if resource is None:
            return None
        bookable = _bookable(resource, await self._venue(resource.venue_id))
        await self._keep(f"resource:{resource_id}", bookable.venue_id, bookable, current, refresh)
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
            "/v1/resources", Page[RegistryResource], limit=limit, feature=list(features), **params
        )
        venue_ids = list(dict.fromkeys(resource.venue_id for resource in page.items))
        async with self._database.read() as session:
            generations = await store.generations(session, venue_ids)
        venues = {venue_id: await self._venue(venue_id) for venue_id in venue_ids}
        found = [_bookable(resource, venues[resource.venue_id]) for resource in page.items]
        entries = [
            (
                f"resource:{b.id}",
                b.venue_id,
                msgspec.msgpack.encode(b),
                generations.get(b.venue_id, 0),
            )
            for b in found
        ]
        async with self._database.write() as session:
            await store.remember(session, entries)
        for bookable, (key, venue_id, _, generation) in zip(found, entries, strict=True):
            self._memo.put(key, venue_id, generation, bookable)
        return found

    async def _resource(self, resource_id: str) -> RegistryResource | None:
        try:
            return await self._http.get(f"/v1/resources/{resource_id}", RegistryResource)
        except RemoteError as exc:
            if exc.remote_status == 404:
                return None
            raise

    async def _venue(self, venue_id: str) -> RegistryVenue:
        return await self._http.get(f"/v1/venues/{venue_id}", RegistryVenue)

    async def open_intervals(
        self, resources: Sequence[Bookable], window: Interval, *, refresh: bool = False
    ) -> dict[str, list[Interval]]:
        """Each resource's open intervals over whole UTC days covering `window`.

        The registry resolves at most a year per call, so a longer window goes in pieces.
        """
        days = day_window(window)
        found: dict[str, list[Interval]] = {resource.id: [] for resource in resources}
        start = days.start
        while start < days.end:
            piece = Interval(start, min(start + MAX_PIECE, days.end))
            pieces = await self._open_piece(resources, piece, refresh)
            for resource_id, intervals in pieces.items():
                found[resource_id] = (
                    intervals
                    if not found[resource_id]
                    else merge([*found[resource_id], *intervals])
                )
            start = piece.end
        return found

    async def _open_piece(
        self, resources: Sequence[Bookable], days: Interval, refresh: bool
    ) -> dict[str, list[Interval]]:
        stamp = f"{days.start.date().isoformat()}:{(days.end - days.start).days}"
        keys = {resource.id: f"open:{resource.id}:{stamp}" for resource in resources}
        found: dict[str, list[Interval]] = {}
        for resource in resources:
            if not refresh and (memo := self._memo.get(keys[resource.id])) is not None:
                found[resource.id] = memo
        missing = [key for resource_id, key in keys.items() if resource_id not in found]
        shared = await self._shared(missing, refresh)
        for resource in resources:
            key = keys[resource.id]
            if resource.id in found:
                continue
            if key in shared:
                venue_id, generation, value = shared[key]
                found[resource.id] = msgspec.msgpack.decode(value, type=list[Interval])
                self._memo.put(key, venue_id, generation, found[resource.id])
                continue
            current = await self._generation(resource.venue_id, refresh)
            found[resource.id] = await fetch_open_intervals(self._http, resource.id, days)
            await self._keep(key, resource.venue_id, found[resource.id], current, refresh)
        return found

    async def _keep(
        self, key: str, venue_id: str, value: Any, generation: int, refresh: bool
    ) -> None:
        """Remember an answer fetched while `generation` was current, here and (unless
        refreshing under the caller's write lock) in the shared cache."""
        self._memo.put(key, venue_id, generation, value)
        if not refresh:
            async with self._database.write() as session:
                await store.remember(
                    session, [(key, venue_id, msgspec.msgpack.encode(value), generation)]
                )


def _refuse_unknown(resource_ids: Sequence[str]) -> None:
    """422 `unknown_resource`, naming each resource that is not there."""
    if resource_ids:
        raise InvalidRequest(
            "no such resource",
            code="unknown_resource",
            errors=[
                FieldError("resource_ids", f"unknown resource {rid!r}") for rid in resource_ids
            ],
        )


def registry_of(request: Request[Any, Any, Any]) -> RegistryClient:
    """The registry client the service's start-up made for this process."""
    client: RegistryClient = service_state(request.app.state).extras["registry"]
    return client
