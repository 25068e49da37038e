"""The catalogue, as the booking path asks it: resources with their venue's facts, and open
intervals, each cached in booking's own database until a registry event about the venue drops it.

The cache is read and filled in short transactions of its own, before the request's transaction
begins, so a cache fill never waits on the request's own write lock (SQLite) and every replica and
the worker share one cache. When the registry cannot be reached, what is cached still serves and
anything else is 503 `registry_unavailable`.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any, Generic, TypeVar

import msgspec
from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.catalogue import store
from services.booking.clients import (
    MAX_PIECE,
    RegistryResource,
    RegistryVenue,
    fetch_open_intervals,
    fetch_resource,
    fetch_venue,
    fetch_venues,
    registry_http,
)
from services.booking.domain import halls
from services.booking.domain.bookings import Bookable
from services.booking.domain.halls import Room, room_of
from shared.config import Settings
from shared.contracts import ResourceType
from shared.db import Database
from shared.errors import FieldError, InvalidRequest
from shared.http import ServiceClient
from shared.ids import is_uuid
from shared.time import Interval, merge
from shared.web import Page, service_state

Key = TypeVar("Key")
Value = TypeVar("Value")
# What one registry call for open intervals fetches: a resource's hours over a month window, at
# its venue's generation when the call began.
OpenKey = tuple[str, Interval, int]
# What one resource's entry of open intervals may grow to (about a year of daily hours) before
# it begins again from the window last asked about.
MAX_KNOWN_INTERVALS = 1000


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
        part_of=resource.part_of,
        parts=tuple(resource.parts),
    )


def day_window(window: Interval) -> Interval:
    """Whole UTC days around `window`: neighbouring requests share one cache entry."""
    start = datetime.combine(window.start.astimezone(UTC).date(), time(), tzinfo=UTC)
    end = datetime.combine(window.end.astimezone(UTC).date(), time(), tzinfo=UTC)
    return Interval(start, end if end == window.end else end + timedelta(days=1))


def month_window(window: Interval) -> Interval:
    """Whole UTC months around `window`: what the registry is asked for when the hours of
    `window` are not known, so a month's requests, however many come at once, share one
    answer."""
    start = window.start.astimezone(UTC)
    end = window.end.astimezone(UTC)
    first = datetime(start.year, start.month, 1, tzinfo=UTC)
    last = datetime(end.year, end.month, 1, tzinfo=UTC)
    if last < end:
        last = datetime(last.year + last.month // 12, last.month % 12 + 1, 1, tzinfo=UTC)
    return Interval(first, last)


class KnownHours(msgspec.Struct, frozen=True):
    """What this process knows of one resource's open intervals: the windows the registry was
    asked about (sorted, disjoint) and the open intervals inside them.

    Any window inside a known one is answered from it, so the week a booking falls in is known
    once its month's availability was asked for.
    """

    windows: tuple[Interval, ...] = ()
    intervals: tuple[Interval, ...] = ()

    def within(self, window: Interval) -> list[Interval] | None:
        """The open intervals inside `window`, or None where not all of it is known."""
        if not any(
            known.start <= window.start and window.end <= known.end for known in self.windows
        ):
            return None
        # Sorted and disjoint, so their ends are sorted too.
        first = bisect_right(self.intervals, window.start, key=lambda interval: interval.end)
        found = []
        for interval in self.intervals[first:]:
            if interval.start >= window.end:
                break
            found.append(Interval(max(interval.start, window.start), min(interval.end, window.end)))
        return found

    def adding(self, window: Interval, intervals: Iterable[Interval]) -> KnownHours:
        return KnownHours(
            windows=tuple(merge([*self.windows, window])),
            intervals=tuple(merge([*self.intervals, *intervals])),
        )


class Readings:
    """The registry generation at which each venue's answers in one request were read.

    A booking is checked against these answers, so it is committed only if the venue's current
    generation is still the one they were read at; a venue whose answers came from two
    generations (an event landed in between) is `MIXED`, which matches none.
    """

    MIXED = -1

    def __init__(self) -> None:
        self._by_venue: dict[str, int] = {}

    def saw(self, venue_id: str, generation: int) -> None:
        if self._by_venue.setdefault(venue_id, generation) != generation:
            self._by_venue[venue_id] = self.MIXED

    def of(self, venue_id: str) -> int:
        return self._by_venue.get(venue_id, self.MIXED)


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

    def of_venues(self, venue_ids: Collection[str], prefix: str) -> list[Any]:
        """What is held of the venues under keys that begin with `prefix`."""
        return [
            value
            for key, (venue, value) in self._entries.items()
            if venue in venue_ids and key.startswith(prefix)
        ]

    def forget(self, venue_id: str, *, now_at: int | None = None) -> None:
        """Drop what is held of the venue; `now_at` records the generation found current."""
        self._generations.pop(venue_id, None)
        if now_at is not None:
            self._generations[venue_id] = now_at
        for key in [key for key, (venue, _) in self._entries.items() if venue == venue_id]:
            del self._entries[key]


class _Flights(Generic[Key, Value]):
    """The registry calls in flight in this process, by each thing they fetch: a request that
    wants what one is already fetching waits for its answer instead of asking again.

    Each call runs as a task of its own, awaited shielded, so a request that goes away (its
    client hung up) does not cancel the answer the others wait for.
    """

    def __init__(self) -> None:
        self._flying: dict[Key, asyncio.Task[dict[Key, Value]]] = {}

    async def fetch(
        self, wanted: Iterable[Key], call: Callable[[list[Key]], Awaitable[dict[Key, Value]]]
    ) -> dict[Key, Value]:
        """What `call` answers for each of `wanted`: those in flight are waited for, the rest
        fetched in one `call` that later requests wait for in turn. A key the answer leaves
        out is left out."""
        waits: dict[Key, asyncio.Task[dict[Key, Value]]] = {}
        new = []
        for key in dict.fromkeys(wanted):
            flying = self._flying.get(key)
            if flying is None:
                new.append(key)
            else:
                waits[key] = flying
        if new:
            task = asyncio.ensure_future(call(new))
            for key in new:
                self._flying[key] = waits[key] = task
            task.add_done_callback(lambda done: self._landed(new, done))
        found: dict[Key, Value] = {}
        for key, task in waits.items():
            answer = await asyncio.shield(task)
            if key in answer:
                found[key] = answer[key]
        return found

    def _landed(self, keys: list[Key], done: asyncio.Task[dict[Key, Value]]) -> None:
        for key in keys:
            if self._flying.get(key) is done:
                del self._flying[key]
        # Retrieved, so a failure nobody waited for any more is not reported as never seen.
        if not done.cancelled():
            done.exception()


class RegistryClient:
    """Registry answers from this process's memo, the shared cache table, or the registry itself.

    `refresh=True` goes straight to the registry and writes no cache row: the caller may hold
    the database's write lock (SQLite), which a cache fill would wait on.
    """

    def __init__(self, settings: Settings, database: Database) -> None:
        self._http = registry_http(settings)
        self._database = database
        self._memo = _Memo()
        self._open_flights: _Flights[OpenKey, list[Interval]] = _Flights()
        self._bookable_flights: _Flights[str, tuple[Bookable, int]] = _Flights()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def http(self) -> ServiceClient:
        """The registry itself, uncached: for what keeps its own copy (the reports' projection)."""
        return self._http

    async def still_current(
        self, session: AsyncSession, venue_ids: Iterable[str], readings: Readings | None = None
    ) -> bool:
        """Whether what this process holds of these venues (and what `readings` were read at)
        is still current; what it held of a venue that moved on is forgotten."""
        return not await self.stale_venues(session, venue_ids, readings)

    async def stale_venues(
        self, session: AsyncSession, venue_ids: Iterable[str], readings: Readings | None = None
    ) -> set[str]:
        """Those of the venues a registry event has touched since this process read them, or
        since the answers of `readings` were read; what this process held of them is forgotten,
        and their current generations kept for the next read."""
        wanted = set(venue_ids)
        generations = await store.generations(session, wanted)
        stale = set()
        for venue_id in wanted:
            current = generations.get(venue_id, 0)
            if self._memo.generation(venue_id) != current:
                self._memo.forget(venue_id, now_at=current)
                stale.add(venue_id)
            elif readings is not None and readings.of(venue_id) != current:
                stale.add(venue_id)
        return stale

    async def fresh_bookables(self, venue_ids: Collection[str]) -> dict[str, Bookable]:
        """The venues' resources as the registry has them now, by id: after `stale_venues`,
        whose generations they are kept at (the caller holds a connection; none is asked for)."""
        generations = await self._generations(venue_ids, refresh=True)
        resources = await self._http.every_of(
            "/v1/resources", RegistryResource, name="venue_id", ids=sorted(venue_ids)
        )
        found = await self._with_venues(resources)
        for bookable in found:
            generation = generations.get(bookable.venue_id, 0)
            self._memo.put(f"resource:{bookable.id}", bookable.venue_id, generation, bookable)
        return {bookable.id: bookable for bookable in found}

    def generation_held(self, venue_id: str) -> int:
        """The venue's registry generation what this process holds was read at (-1: nothing)."""
        known = self._memo.generation(venue_id)
        return -1 if known is None else known

    async def bookables(
        self,
        resource_ids: Sequence[str],
        *,
        refresh: bool = False,
        readings: Readings | None = None,
    ) -> list[Bookable]:
        """The resources, in the order asked; 422 `unknown_resource` names any that do not exist.
        `readings` is told the generation each answer was read at."""
        readings = readings or Readings()
        # Not a UUID: not a resource, and not to be put into a URL to the registry (a path's id
        # may hold anything, even a control character).
        _refuse_unknown([rid for rid in dict.fromkeys(resource_ids) if not is_uuid(rid)])
        keys = {resource_id: f"resource:{resource_id}" for resource_id in resource_ids}
        found: dict[str, Bookable] = {}
        for resource_id, key in keys.items():
            if not refresh and (memo := self._memo.get(key)) is not None:
                found[resource_id] = memo
                readings.saw(memo.venue_id, self.generation_held(memo.venue_id))
        missing = [key for resource_id, key in keys.items() if resource_id not in found]
        for key, (venue_id, generation, value) in (await self._shared(missing, refresh)).items():
            bookable = msgspec.msgpack.decode(value, type=Bookable)
            self._memo.put(key, venue_id, generation, bookable)
            found[bookable.id] = bookable
            readings.saw(venue_id, generation)
        unknown = []
        for resource_id in dict.fromkeys(resource_ids):
            if resource_id in found:
                continue
            fetched = await self._fetch_bookable(resource_id, refresh=refresh, readings=readings)
            if fetched is None:
                unknown.append(resource_id)
            else:
                found[resource_id] = fetched
        _refuse_unknown(unknown)
        return [found[resource_id] for resource_id in resource_ids]

    async def rooms(
        self,
        resources: Sequence[Bookable],
        *,
        refresh: bool = False,
        readings: Readings | None = None,
    ) -> dict[str, Room]:
        """The resources and every whole and part of them (`domain.halls`), by id: a level of
        the venue's hierarchy a call, and none for rooms that are neither."""
        found = {resource.id: room_of(resource) for resource in resources}
        wanted = halls.related_ids(found.values()) - found.keys()
        while wanted:
            level = [
                room_of(r)
                for r in await self.bookables(sorted(wanted), refresh=refresh, readings=readings)
            ]
            found |= {room.id: room for room in level}
            wanted = halls.related_ids(level) - found.keys()
        return found

    async def _shared(
        self, keys: Sequence[str], refresh: bool
    ) -> dict[str, tuple[str, int, bytes]]:
        if refresh or not keys:
            return {}
        async with self._database.read() as session:
            return await store.cached(session, keys)

    async def _generations(
        self, venue_ids: Iterable[str], *, refresh: bool = False
    ) -> dict[str, int]:
        """The venues' current generations (absent: 0)."""
        wanted = set(venue_ids)
        # Refreshing follows `still_current`, which left the current generations in the memo;
        # the caller holds a connection, and asking the pool for another could starve it.
        held = {venue_id: self._memo.generation(venue_id) for venue_id in wanted}
        if refresh and all(generation is not None for generation in held.values()):
            return {venue_id: g for venue_id, g in held.items() if g is not None}
        async with self._database.read() as session:
            return await store.generations(session, wanted)

    async def _fetch_bookable(
        self, resource_id: str, *, refresh: bool, readings: Readings
    ) -> Bookable | None:
        """The resource from the registry, with its venue's facts; None where there is none.

        Requests that want the same resource at once share one reading and one cache write (a
        new resource's first bookings would otherwise each ask); a refreshing caller may hold
        the write lock (SQLite) that the cache write waits on, so it asks on its own."""
        if refresh:
            found = await self._read_bookable(resource_id, refresh=True)
        else:
            found = (
                await self._bookable_flights.fetch([resource_id], self._read_and_keep_bookables)
            ).get(resource_id)
        if found is None:
            return None
        bookable, generation = found
        self._memo.put(f"resource:{resource_id}", bookable.venue_id, generation, bookable)
        readings.saw(bookable.venue_id, generation)
        return bookable

    async def _read_bookable(
        self, resource_id: str, *, refresh: bool
    ) -> tuple[Bookable, int] | None:
        """The resource with its venue's facts, and the venue's generation read before them."""
        resource = await fetch_resource(self._http, resource_id)
        if resource is None:
            return None
        # The generation must be read before the answer that is kept: an event between the two
        # then marks the kept answer stale. The venue is known only from a first answer, so the
        # resource is asked for again (on a cold cache only).
        current = (await self._generations([resource.venue_id], refresh=refresh)).get(
            resource.venue_id, 0
        )
        resource = await fetch_resource(self._http, resource_id)
        if resource is None:
            return None
        return _bookable(resource, await fetch_venue(self._http, resource.venue_id)), current

    async def _read_and_keep_bookables(
        self, resource_ids: list[str]
    ) -> dict[str, tuple[Bookable, int]]:
        """`_read_bookable` of each, kept in the shared cache."""
        found = {}
        for resource_id in resource_ids:
            if (read := await self._read_bookable(resource_id, refresh=False)) is not None:
                found[resource_id] = read
        if found:
            async with self._database.write() as session:
                await store.remember(
                    session,
                    [
                        (f"resource:{rid}", bookable.venue_id, msgspec.msgpack.encode(bookable), at)
                        for rid, (bookable, at) in found.items()
                    ],
                )
        return found

    async def search(
        self,
        *,
        area_id: str | None,
        type: ResourceType | None,  # noqa: A002 - the API's parameter name
        min_capacity: int | None,
        features: Sequence[str],
        venue_ids: Sequence[str],
        limit: int,
        cursor: str | None,
    ) -> Page[Bookable]:
        """One registry page of resources matching the filters, each with its venue's facts.

        Where the venues are named, their generations are read first, so the answers can be
        kept for the bookings that follow (a booking after a search, the lecturers' holds after
        their rooms' availability); an answer read before its generation could not be.
        """
        before = await self._generations(venue_ids) if venue_ids else None
        filters = {"area_id": area_id, "type": type, "min_capacity": min_capacity, "cursor": cursor}
        params = {name: value for name, value in filters.items() if value is not None}
        page = await self._http.get(
            "/v1/resources",
            Page[RegistryResource],
            limit=limit,
            feature=list(features),
            venue_id=list(venue_ids),
            **params,
        )
        found = await self._with_venues(page.items)
        if before is not None:
            for bookable in found:
                generation = before.get(bookable.venue_id, 0)
                self._memo.put(f"resource:{bookable.id}", bookable.venue_id, generation, bookable)
        return Page(items=found, next_cursor=page.next_cursor)

    async def _with_venues(self, resources: Sequence[RegistryResource]) -> list[Bookable]:
        """The resources with their venues' facts, asked for in one go; a venue gone between
        the two answers takes its resources with it."""
        here = list(dict.fromkeys(resource.venue_id for resource in resources))
        venues = await fetch_venues(self._http, here)
        return [_bookable(r, venues[r.venue_id]) for r in resources if r.venue_id in venues]

    async def open_intervals(
        self,
        resources: Sequence[Bookable],
        window: Interval,
        *,
        refresh: bool = False,
        readings: Readings | None = None,
    ) -> dict[str, list[Interval]]:
        """Each resource's open intervals over whole UTC days covering `window`; `readings` is
        told the generation each answer was read at.

        The registry resolves at most a year per call, so a longer window goes in pieces.
        """
        readings = readings or Readings()
        days = day_window(window)
        found: dict[str, list[Interval]] = {resource.id: [] for resource in resources}
        start = days.start
        while start < days.end:
            piece = Interval(start, min(start + MAX_PIECE, days.end))
            pieces = await self._open_piece(resources, piece, refresh, readings)
            for resource_id, intervals in pieces.items():
                found[resource_id] = (
                    intervals
                    if not found[resource_id]
                    else merge([*found[resource_id], *intervals])
                )
            start = piece.end
        return found

    async def _open_piece(
        self, resources: Sequence[Bookable], days: Interval, refresh: bool, readings: Readings
    ) -> dict[str, list[Interval]]:
        found: dict[str, list[Interval]] = {}
        if not refresh:
            for resource in resources:
                known = self._memo.get(f"open:{resource.id}")
                if known is not None and (intervals := known.within(days)) is not None:
                    found[resource.id] = intervals
                    readings.saw(resource.venue_id, self.generation_held(resource.venue_id))
            if len(found) == len(resources):  # the hot path: all known in this process
                return found
        # Asked and kept by whole months: whatever day of a month is asked first, the month's
        # other requests find it in this process, in the shared cache, or in flight.
        months = month_window(days)
        stamp = f"{months.start.date().isoformat()}:{(months.end - months.start).days}"
        keys = {r.id: f"open:{r.id}:{stamp}" for r in resources if r.id not in found}
        shared = await self._shared(list(keys.values()), refresh)
        for resource in resources:
            if (entry := shared.get(keys.get(resource.id, ""))) is not None:
                venue_id, generation, value = entry
                intervals = msgspec.msgpack.decode(value, type=list[Interval])
                found[resource.id] = self._know_open(
                    resource.id, venue_id, generation, intervals, months=months, days=days
                )
                readings.saw(venue_id, generation)
        missing = [resource for resource in resources if resource.id not in found]
        if not missing:
            return found
        venue_ids = {resource.venue_id for resource in missing}
        current = await self._generations(venue_ids, refresh=refresh)
        # One call for a venue's month: the venue's other rooms this process knows are asked
        # with it, so a cold month's next requests find their rooms' hours kept or in flight.
        asked = {resource.id for resource in resources}
        alongside = [
            room
            for room in self._memo.of_venues(venue_ids, "resource:")
            if room.id not in asked and not self._knows_open(room, months)
        ]
        keys |= {room.id: f"open:{room.id}:{stamp}" for room in alongside}
        fetched = await self._fetch_open([*missing, *alongside], months, current, keys, refresh)
        for room in alongside:
            generation = current.get(room.venue_id, 0)
            intervals = fetched.get(room.id, [])
            self._know_open(
                room.id, room.venue_id, generation, intervals, months=months, days=months
            )
        for resource in missing:
            generation = current.get(resource.venue_id, 0)
            found[resource.id] = self._know_open(
                resource.id,
                resource.venue_id,
                generation,
                fetched.get(resource.id, []),
                months=months,
                days=days,
            )
            readings.saw(resource.venue_id, generation)
        return found

    async def _fetch_open(
        self,
        resources: Sequence[Bookable],
        months: Interval,
        current: dict[str, int],
        keys: dict[str, str],
        refresh: bool,
    ) -> dict[str, list[Interval]]:
        """The resources' open intervals over `months` from the registry, read while their
        venues' generations were `current`, and kept in the shared cache under `keys`.

        Requests that want the same resource's month at the same generation share one call and
        one cache write: a cold month's first seconds would otherwise ask the registry once per
        request. A refreshing caller may hold the write lock (SQLite) that a cache write waits
        on, so it asks on its own and keeps nothing."""
        if refresh:
            return await fetch_open_intervals(self._http, [r.id for r in resources], months)
        by_key = {(r.id, months, current.get(r.venue_id, 0)): r for r in resources}
        venue_of = {resource.id: resource.venue_id for resource in resources}

        async def fetch_and_keep(wanted: list[OpenKey]) -> dict[OpenKey, list[Interval]]:
            fetched = await fetch_open_intervals(self._http, [key[0] for key in wanted], months)
            # One the registry no longer has is never open; its removal's event is on its way.
            answers = {key: fetched.get(key[0], []) for key in wanted}
            entries = [
                (keys[resource_id], venue_of[resource_id], msgspec.msgpack.encode(answer), at)
                for (resource_id, _, at), answer in answers.items()
            ]
            async with self._database.write() as session:
                await store.remember(session, entries)
            return answers

        answers = await self._open_flights.fetch(by_key, fetch_and_keep)
        return {by_key[key].id: intervals for key, intervals in answers.items()}

    def _knows_open(self, resource: Bookable, window: Interval) -> bool:
        known = self._memo.get(f"open:{resource.id}")
        return known is not None and known.within(window) is not None

    def _know_open(
        self,
        resource_id: str,
        venue_id: str,
        generation: int,
        intervals: list[Interval],
        *,
        months: Interval,
        days: Interval,
    ) -> list[Interval]:
        """Add what the registry said of `months` to what this process knows of the resource;
        what it said of `days`."""
        key = f"open:{resource_id}"
        known = self._memo.get(key) if self._memo.generation(venue_id) == generation else None
        if known is not None and len(known.intervals) > MAX_KNOWN_INTERVALS:
            known = None  # begin again from what was just asked: each entry stays small
        self._memo.put(key, venue_id, generation, (known or KnownHours()).adding(months, intervals))
        return [part for interval in intervals if (part := interval.clip(days)) is not None]


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
