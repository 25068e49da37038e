"""Free time and calendars: a resource's availability, the search across resources, its feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.params import FromQuery, QueryParameter

from services.booking import store
from services.booking.catalogue.reader import Readings, registry_of
from services.booking.domain import availability, halls
from services.booking.domain.bookings import (
    Bookable,
)
from shared import ical
from shared.contracts import ResourceType
from shared.time import Interval, check_range, window, zone
from shared.web import (
    Caller,
    Cursor,
    From,
    Ids,
    Limit,
    Page,
    PathId,
    To,
    decode_cursor,
    encode_cursor,
    service_state,
)

FEED_PAST = timedelta(days=90)
FEED_LIMIT = 5000
FEED_REFRESH = timedelta(hours=1)
# The search asks the registry for candidates a page at a time, at least this many (so that a
# small `limit` among busy rooms is not a round trip per room), and looks at no more than
# `SEARCH_SCAN` of them per answer before handing back a cursor.
SEARCH_PAGE = 100
SEARCH_SCAN = 2000


class Intervals(msgspec.Struct):
    items: list[Interval]


class ResourceAvailability(msgspec.Struct):
    resource_id: str
    name: str
    venue_id: str
    type: ResourceType
    capacity: int | None
    free: list[Interval]


class AvailabilityController(Controller):
    tags = ("availability",)

    @get("/v1/resources/{resource_id:str}/availability")
    async def resource(
        self,
        request: Request[Any, Any, Any],
        resource_id: PathId,
        principal: Caller,
        from_: From,
        to: To,
    ) -> Intervals:
        span = window(from_, to)
        check_range(span)
        registry = registry_of(request)
        (bookable,) = await registry.bookables([resource_id])
        free = await _free(request, [bookable], span)
        tz = zone(bookable.timezone)
        return Intervals(items=[interval.in_zone(tz) for interval in free[bookable.id]])

    @get("/v1/availability")
    async def search(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        from_: From,
        to: To,
        minutes: Annotated[int, QueryParameter(ge=1, le=24 * 60)] = 60,
        min_capacity: Annotated[int | None, QueryParameter(ge=0, le=100_000)] = None,
        feature: Annotated[list[str] | None, QueryParameter(max_items=20)] = None,
        area_id: FromQuery[str | None] = None,
        type: FromQuery[ResourceType | None] = None,  # noqa: A002 - the API's parameter name
        venue_id: Ids = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[ResourceAvailability]:
        """Resources with a free stretch of `minutes`, each with its free intervals; `venue_id`
        (repeatable) keeps to those venues. Up to `limit` a page; `next_cursor` goes on. A page
        may hold fewer where many resources had no such stretch: one answer looks at no more
        than `SEARCH_SCAN` of them."""
        span = window(from_, to)
        check_range(span)
        decode_cursor(cursor)  # refused here, not passed on to the registry
        registry = registry_of(request)
        found: list[ResourceAvailability] = []
        examined = 0
        while True:
            candidates = await registry.search(
                area_id=area_id,
                type=type,
                min_capacity=min_capacity,
                features=feature or [],
                venue_ids=venue_id or [],
                limit=max(limit, SEARCH_PAGE),
                cursor=cursor,
            )
            free = await _free(request, candidates.items, span)
            for index, bookable in enumerate(candidates.items, start=1):
                examined += 1
                stretches = availability.stretches_of(free[bookable.id], minutes)
                if stretches:
                    found.append(_available(bookable, stretches))
                last = index == len(candidates.items) and candidates.next_cursor is None
                if len(found) == limit or (examined >= SEARCH_SCAN and not last):
                    return Page(
                        items=found, next_cursor=None if last else encode_cursor(bookable.id)
                    )
            if candidates.next_cursor is None:
                return Page(items=found, next_cursor=None)
            cursor = candidates.next_cursor

    @get("/v1/resources/{resource_id:str}/calendar.ics", media_type="text/calendar")
    async def calendar(
        self, request: Request[Any, Any, Any], resource_id: PathId, principal: Caller
    ) -> Response[bytes]:
        """The resource's live bookings from three months back, as iCalendar."""
        (bookable,) = await registry_of(request).bookables([resource_id])
        database = service_state(request.app.state).database
        async with database.read() as session:
            rows = await store.resource_bookings(
                session, resource_id, since=datetime.now(UTC) - FEED_PAST, limit=FEED_LIMIT
            )
        return Response(_feed(bookable, rows), media_type=ical.MEDIA_TYPE)


def _available(bookable: Bookable, stretches: list[Interval]) -> ResourceAvailability:
    tz = zone(bookable.timezone)
    return ResourceAvailability(
        resource_id=bookable.id,
        name=bookable.name,
        venue_id=bookable.venue_id,
        type=bookable.type,
        capacity=bookable.capacity,
        free=[interval.in_zone(tz) for interval in stretches],
    )


async def _free(
    request: Request[Any, Any, Any], resources: list[Bookable], span: Interval
) -> dict[str, list[Interval]]:
    """Each resource's free time in `span`, from what this process holds of the registry where
    that is still current, and the live bookings, read in one transaction. A venue a registry
    event touched meanwhile is read again; a resource it no longer has is free never."""
    if not resources:
        return {}
    registry = registry_of(request)
    readings = Readings()
    open_intervals = await registry.open_intervals(resources, span, readings=readings)
    rooms = await registry.rooms(resources, readings=readings)
    gone: set[str] = set()
    async with service_state(request.app.state).database.read() as session:
        stale = await registry.stale_venues(session, {r.venue_id for r in resources}, readings)
        if stale:
            fresh = await registry.fresh_bookables(stale)
            gone = {r.id for r in resources if r.venue_id in stale and r.id not in fresh}
            resources = [fresh.get(r.id, r) for r in resources if r.id not in gone]
            reread = [r for r in resources if r.venue_id in stale]
            open_intervals |= await registry.open_intervals(reread, span, refresh=True)
            rooms = await registry.rooms(resources, refresh=True)
        held = await store.live_slots(session, sorted(rooms), span)
    free = {
        resource.id: [
            piece
            for interval in halls.free_for(
                rooms[resource.id], rooms, open_intervals[resource.id], held
            )
            if (piece := interval.clip(span)) is not None
        ]
        for resource in resources
    }
    return free | {resource_id: [] for resource_id in gone}


_ICAL_STATUS = {"pending": "TENTATIVE", "confirmed": "CONFIRMED"}


def _feed(bookable: Bookable, rows: list[store.BookingRow]) -> bytes:
    """The resource's bookings as iCalendar, written directly (see `shared.ical` for why)."""
    now = datetime.now(UTC)
    tz = ical.zone_of(bookable.timezone)
    location = ical.text(bookable.name)
    events = [
        "BEGIN:VEVENT\r\n"
        f"{ical.fold(f'UID:{ical.booking_uid(row.id)}')}\r\n"
        f"DTSTAMP:{ical.utc_stamp(row.updated_at)}\r\n"
        # The booking's version, as in notify's invitations: a calendar keeps the newest copy.
        f"SEQUENCE:{row.version}\r\n"
        f"{ical.fold(f'DTSTART{ical.wall_clock(row.start_at, tz, bookable.timezone)}')}\r\n"
        f"{ical.fold(f'DTEND{ical.wall_clock(row.end_at, tz, bookable.timezone)}')}\r\n"
        f"STATUS:{_ICAL_STATUS.get(row.status, 'CANCELLED')}\r\n"
        f"{ical.fold(f'SUMMARY:{ical.text(row.purpose)}')}\r\n"
        f"{ical.fold(f'LOCATION:{location}')}\r\n"
        "END:VEVENT\r\n"
        for row in rows
    ]
    spans = [(bookable.timezone, row.start_at, row.end_at) for row in rows]
    parts = [
        ical.header(prodid="-//Commonroom//booking//EN", name=bookable.name, refresh=FEED_REFRESH),
        *ical.vtimezones(spans, now),
        *events,
        ical.FOOTER,
    ]
    return "".join(parts).encode()
