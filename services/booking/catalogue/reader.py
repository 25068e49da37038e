"""The catalogue, as the booking path asks it: resources with their venue's facts, and open
intervals, from booking's one replica of the registry (`catalogue.store`, which the reports read
too), read through this process's memo with one generation check.

The replica is read and filled in short transactions of its own, before a booking is written
(`store.book`), so a fill never waits on the booking's write lock (SQLite) and every process and
the worker share one replica. When the registry cannot be reached, what the replica holds current
still serves and anything else is 503 `registry_unavailable`.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any, Generic, TypeVar

import msgspec
from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.catalogue import store
from services.booking.catalogue.store import HoursHeld, ResourceReading
from services.booking.clients import (
    MAX_PIECE,
    RegistryArea,
    RegistryResource,
    RegistryVenue,
    fetch_open_intervals,
    fetch_open_intervals_over,
    fetch_resource,
    fetch_venue,
    fetch_venues,
    registry_http,
)
from services.booking.domain import halls
from services.booking.domain.bookings import Bookable
from services.booking.domain.halls import Room, room_of
from services.booking.domain.reports import area_paths, pieces_of
from shared.config import Settings
from shared.contracts import ResourceType
from shared.db import Database
from shared.errors import FieldError, InvalidRequest
from shared.http import ServiceClient
from shared.ids import is_uuid
from shared.time import LONGEST_RANGE, Interval, merge, subtract, zone
from shared.web import Page, service_state

Key = TypeVar("Key")
Value = TypeVar("Value")
# What one flight for open hours fetches: a resource's hours over a month window; and what it
# answers: the venue's generation they were read at, and the open intervals.
OpenKey = tuple[str, Interval]
OpenHours = tuple[int, list[Interval]]
# The most open hours a resource keeps in the replica: two years of reports without reading any
# twice.
LONGEST_COVERAGE = 2 * LONGEST_RANGE
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


def _bookable_of(reading: ResourceReading) -> Bookable:
    return _bookable(reading.resource, reading.venue)


def day_window(window: Interval) -> Interval:
    """Whole UTC days around `window`: neighbouring requests share one reading."""
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


def hours_to_read(held: HoursHeld | None, at: int, months: Interval) -> list[Interval]:
    """What to ask the registry of a resource's hours for `months`, read at generation `at`:
    with what the replica holds beside it, if that may stay (`HoursHeld.stays_beside`), the
    stretch `covered_after` makes whole."""
    covered = covered_after(held, at, months)
    if held is None or covered is None or not held.stays_beside(covered, at):
        return [months]
    return merge([*subtract([covered], [held.covered]), months])


def covered_after(held: HoursHeld | None, at: int, months: Interval) -> Interval | None:
    """The stretch of a resource's hours the replica covers once `months` is read at generation
    `at`: grown from what it holds to take `months` in, with any days between, where that was
    read at `at` too and the whole stays within `LONGEST_COVERAGE` (so a report's stretch and
    the months bookings ask for become one, not two that push each other out); `months` alone
    otherwise; None where what it holds was read at a newer generation, which an older reading
    never replaces."""
    if held is None or held.generation < at:
        return months
    if held.generation > at:
        return None
    grown = Interval(min(held.covered.start, months.start), max(held.covered.end, months.end))
    return grown if grown.duration <= LONGEST_COVERAGE else months


async def read_new_areas(
    http: ServiceClient, area_id: str, known: dict[str, str]
) -> list[tuple[str, str, str]]:
    """The area and those of its ancestors not `known` (by path): (id, name, path) each."""
    fetched: dict[str, RegistryArea] = {}
    current: str | None = area_id
    while current is not None and current not in known and current not in fetched:
        area = await http.get(f"/v1/areas/{current}", RegistryArea)
        fetched[area.id] = area
        current = area.parent_id
    paths = area_paths({a.id: a.parent_id for a in fetched.values()}, known)
    return [(a.id, a.name, paths[a.id]) for a in fetched.values()]


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
    shared replica each time; a venue whose generation moved is forgotten whole.
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
    """The fetches in flight in this process (from the replica or the registry), by each thing
    they fetch: a request that wants what one is already fetching waits for its answer instead
    of asking again.

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
    """Registry answers from this process's memo, the shared replica, or the registry itself.

    `refresh=True` goes straight to the registry and writes nothing to the replica: its callers
    have just found the venue moved on (a booking's `store.Stale`, availability's stale venues),
    and availability reads on under a connection it holds, beside which a fill would need another.
    """

    def __init__(self, settings: Settings, database: Database) -> None:
        self._http = registry_http(settings)
        self._database = database
        self._memo = _Memo()
        self._open_flights: _Flights[OpenKey, OpenHours] = _Flights()
        self._bookable_flights: _Flights[str, tuple[Bookable, int]] = _Flights()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def http(self) -> ServiceClient:
        """The registry itself: for the reports, which keep the replica whole for what they sum."""
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
        found: dict[str, Bookable] = {}
        for resource_id in resource_ids:
            if not refresh and (memo := self._memo.get(f"resource:{resource_id}")) is not None:
                found[resource_id] = memo
                readings.saw(memo.venue_id, self.generation_held(memo.venue_id))
        missing = [resource_id for resource_id in resource_ids if resource_id not in found]
        for resource_id, (bookable, generation) in (
            await self._kept_bookables(missing, refresh)
        ).items():
            self._memo.put(f"resource:{resource_id}", bookable.venue_id, generation, bookable)
            found[resource_id] = bookable
            readings.saw(bookable.venue_id, generation)
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

    async def _kept_bookables(
        self, resource_ids: Sequence[str], refresh: bool
    ) -> dict[str, tuple[Bookable, int]]:
        """Those of the resources the replica holds at their venue's current generation."""
        if refresh or not resource_ids:
            return {}
        async with self._database.read() as session:
            return await store.bookables(session, resource_ids)

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

        Requests that want the same resource at once share one reading and one write to the
        replica (a new resource's first bookings would otherwise each ask); a refreshing caller
        asks on its own and keeps nothing (see the class)."""
        if refresh:
            reading = await self._read_resource(resource_id, refresh=True)
            found = None if reading is None else (_bookable_of(reading), reading.generation)
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

    async def _read_resource(self, resource_id: str, *, refresh: bool) -> ResourceReading | None:
        """The resource and its venue, with the venue's generation read before them."""
        resource = await fetch_resource(self._http, resource_id)
        if resource is None:
            return None
        # The generation must be read before the answer that is kept: an event between the two
        # then marks the kept answer stale. The venue is known only from a first answer, so the
        # resource is asked for again (on a miss only).
        current = (await self._generations([resource.venue_id], refresh=refresh)).get(
            resource.venue_id, 0
        )
        resource = await fetch_resource(self._http, resource_id)
        if resource is None:
            return None
        venue = await fetch_venue(self._http, resource.venue_id)
        return ResourceReading(resource=resource, venue=venue, generation=current)

    async def _read_and_keep_bookables(
        self, resource_ids: list[str]
    ) -> dict[str, tuple[Bookable, int]]:
        """`_read_resource` of each, kept in the replica with its venue's area path (what the
        reports group by), reading the areas the replica does not know yet."""
        found = [
            reading
            for resource_id in resource_ids
            if (reading := await self._read_resource(resource_id, refresh=False)) is not None
        ]
        if found:
            async with self._database.read() as session:
                paths = await store.area_paths(session)
            new_areas: list[tuple[str, str, str]] = []
            for area_id in dict.fromkeys(reading.venue.area_id for reading in found):
                if area_id not in paths:
                    read = await read_new_areas(self._http, area_id, paths)
                    new_areas += read
                    paths |= {read_id: path for read_id, _, path in read}
            async with self._database.write() as session:
                await store.keep_resources(session, found, new_areas, paths)
        return {
            reading.resource.id: (_bookable_of(reading), reading.generation) for reading in found
        }

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
        # other requests find it in this process, in flight, or in the replica.
        months = month_window(days)
        missing = [resource for resource in resources if resource.id not in found]
        if refresh:
            answers = await self._read_afresh(missing, months)
        else:
            # A venue's other rooms this process knows are asked with these, so a cold month's
            # next requests find their rooms' hours kept or in flight.
            asked = {resource.id for resource in resources}
            wanted = {resource.id: resource for resource in missing} | {
                room.id: room
                for room in self._memo.of_venues(
                    {resource.venue_id for resource in missing}, "resource:"
                )
                if room.id not in asked and not self._knows_open(room, months)
            }
            flown = await self._open_flights.fetch(
                [(resource_id, months) for resource_id in wanted],
                lambda keys: self._kept_or_read(
                    [wanted[key[0]] for key in keys], months, asked=asked
                ),
            )
            answers = {resource_id: answer for (resource_id, _), answer in flown.items()}
            if left := [resource for resource in missing if resource.id not in answers]:
                # Flown beside another request's rooms, which the replica held: the registry
                # was not asked for these. Asked now, as this request's own.
                answers |= {
                    resource_id: answer
                    for (resource_id, _), answer in (
                        await self._kept_or_read(left, months, asked={r.id for r in left})
                    ).items()
                }
        for resource in missing:
            generation, intervals = answers[resource.id]
            found[resource.id] = [part for i in intervals if (part := i.clip(days)) is not None]
            readings.saw(resource.venue_id, generation)
        return found

    async def _kept_or_read(
        self, resources: Sequence[Bookable], months: Interval, *, asked: Collection[str]
    ) -> dict[OpenKey, OpenHours]:
        """The resources' open hours over `months` with the generation they were read at: from
        the replica where it holds them current, else from the registry (and kept in the
        replica); this process knows them from then on. One flight for them all: every request
        that wants any of them meanwhile waits for it, reading nothing itself. The registry is
        asked only where one of the `asked` rooms needs it (the others come along): what the
        replica holds current never waits on the registry, nor fails with it. A resource left
        out of the answer was neither kept nor asked for."""
        current: dict[str, int] = {}
        held: dict[str, HoursHeld | None] = {}
        async with self._database.read() as session:
            kept = await store.open_hours(session, [resource.id for resource in resources], months)
            unread = [resource for resource in resources if resource.id not in kept]
            if not any(resource.id in asked for resource in unread):
                unread = []
            if unread:
                current = await store.generations(session, {r.venue_id for r in unread})
                held = await store.hours_held(session, [resource.id for resource in unread])
        answers = dict(kept)
        if unread:
            read_at = [(resource, current.get(resource.venue_id, 0)) for resource in unread]
            read = await self._read_and_keep_hours(read_at, months, held)
            answers |= {resource.id: (at, read[resource.id]) for resource, at in read_at}
        for resource in resources:
            if resource.id in answers:
                at, intervals = answers[resource.id]
                self._know_open(resource.id, resource.venue_id, at, intervals, months)
        return {(resource_id, months): answer for resource_id, answer in answers.items()}

    async def _read_afresh(
        self, resources: Sequence[Bookable], months: Interval
    ) -> dict[str, OpenHours]:
        """The resources' open hours over `months` from the registry, at the generations
        `still_current` left in the memo; kept in this process only (see the class)."""
        current = await self._generations({r.venue_id for r in resources}, refresh=True)
        read = await fetch_open_intervals(self._http, [r.id for r in resources], months)
        answers = {}
        for resource in resources:
            at, intervals = current.get(resource.venue_id, 0), read.get(resource.id, [])
            self._know_open(resource.id, resource.venue_id, at, intervals, months)
            answers[resource.id] = (at, intervals)
        return answers

    def _knows_open(self, resource: Bookable, window: Interval) -> bool:
        known = self._memo.get(f"open:{resource.id}")
        return known is not None and known.within(window) is not None

    async def _read_and_keep_hours(
        self,
        wanted: Sequence[tuple[Bookable, int]],
        months: Interval,
        held: Mapping[str, HoursHeld | None],
    ) -> dict[str, list[Interval]]:
        """Each resource's open intervals over `months` from the registry, read at the paired
        generation of its venue, and kept in the replica: beside the stretch it holds (`held`,
        read with the generations) where that was read at the same generation (`hours_to_read`
        asks for what joins them), so a report's stretch and the months bookings ask for grow
        into one."""
        read = await fetch_open_intervals_over(
            self._http,
            {
                resource.id: hours_to_read(held.get(resource.id), at, months)
                for resource, at in wanted
            },
        )
        # One the registry no longer has is never open; its removal's event is on its way.
        found = {resource.id: read.get(resource.id, []) for resource, _ in wanted}
        kept = []
        for resource, at in wanted:
            covered = covered_after(held.get(resource.id), at, months)
            # Not in the replica (known from a search), or read there since at a newer
            # generation: this process's memo keeps what was read.
            if resource.id not in held or covered is None:
                continue
            before = held[resource.id]
            new = found[resource.id]
            if before is not None and before.stays_beside(covered, at):
                new = subtract(new, [before.covered])
            pieces = pieces_of(new, zone(resource.timezone))
            kept.append(
                store.HoursReading(resource.venue_id, resource.id, before, covered, at, pieces)
            )
        if kept:
            async with self._database.write() as session:
                await store.keep_hours(session, kept)
        return {
            resource_id: [part for interval in intervals if (part := interval.clip(months))]
            for resource_id, intervals in found.items()
        }

    def _know_open(
        self,
        resource_id: str,
        venue_id: str,
        generation: int,
        intervals: list[Interval],
        months: Interval,
    ) -> None:
        """Add what the registry said of `months`, read at `generation`, to what this process
        knows of the resource."""
        key = f"open:{resource_id}"
        known = self._memo.get(key) if self._memo.generation(venue_id) == generation else None
        if known is not None and len(known.intervals) > MAX_KNOWN_INTERVALS:
            known = None  # begin again from what was just asked: each entry stays small
        self._memo.put(key, venue_id, generation, (known or KnownHours()).adding(months, intervals))


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
