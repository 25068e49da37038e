"""Booking routes: create (one, or a series), read, list, and move a booking along its life."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromQuery, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking import store
from services.booking.catalogue.reader import Readings, RegistryClient, registry_of
from services.booking.domain import fair_use, halls, series
from services.booking.domain.bookings import (
    AttendanceBody,
    Bookable,
    Booking,
    BookingCreate,
    Occurrence,
    ReasonBody,
    SeriesResult,
    Status,
    actor_of,
    blocked,
    booking_org,
    check_venue,
    ensure_attendance_allowed,
    ensure_may_approve,
    ensure_may_book,
    ensure_may_change,
    ensure_may_decide,
    ensure_visible,
    initial_status,
    next_status,
    refusals,
    refuse,
    visible_scope,
)
from services.booking.domain.halls import Room
from shared import ratelimit
from shared.auth import Principal
from shared.db import Database
from shared.errors import Conflict, FieldError, InvalidRequest, NotFound, TooManyRequests
from shared.ids import new_id
from shared.ratelimit import RateLimit
from shared.time import Interval, check_range, window, zone
from shared.web import (
    Caller,
    Cursor,
    DbSession,
    Limit,
    Page,
    PathId,
    answer_spec,
    create_once,
    decode_cursor,
    page_of,
    service_state,
)


class SeriesCancelled(msgspec.Struct):
    series_id: str
    cancelled: list[Booking]


def _new_row(
    principal: Principal,
    data: BookingCreate,
    resources: list[Bookable],
    interval: Interval,
    *,
    org: str,
    series_id: str | None,
    now: datetime,
) -> store.NewBooking:
    return store.NewBooking(
        id=new_id(),
        org=org,
        venue_id=resources[0].venue_id,
        venue_org=resources[0].owner_org,
        timezone=resources[0].timezone,
        resource_ids=[resource.id for resource in resources],
        start_at=interval.start,
        end_at=interval.end,
        status=initial_status(resources, hold=data.hold).value,
        purpose=data.purpose,
        programme=data.programme.value if data.programme else None,
        attendees=data.attendees,
        series_id=series_id,
        hold=data.hold,
        override_hours=data.override_hours,
        booked_by=principal.sub,
        created_at=now,
        updated_at=now,
    )


def _plans(loaded: _Loaded, interval: Interval) -> list[store.SlotPlan]:
    """The slots a booking of the loaded resources over `interval` holds (`domain.halls`)."""
    booked = [loaded.rooms[resource.id] for resource in loaded.resources]
    return [
        store.SlotPlan(claim.resource_id, blocked(interval, claim.buffer_minutes), claim.reach)
        for claim in halls.claims(booked, loaded.rooms)
    ]


class _Share(NamedTuple):
    """The organisation's weekly share at the venue, and what it already holds near the ask."""

    hours_per_week: float
    held: list[Interval]
    tz: ZoneInfo


class _Loaded(NamedTuple):
    """What a booking request needs of the registry: its resources, occurrences and their hours."""

    resources: list[Bookable]
    occurrences: list[Interval]
    open_intervals: dict[str, list[Interval]]
    # The resources and the wholes and parts of the rooms among them.
    rooms: dict[str, Room]
    # The registry generations these answers were read at: the booking stands only on them.
    readings: Readings


async def _load(
    registry: RegistryClient,
    principal: Principal,
    data: BookingCreate,
    first: Interval,
    *,
    refresh: bool,
) -> _Loaded:
    readings = Readings()
    resources = await registry.bookables(data.resource_ids, refresh=refresh, readings=readings)
    check_venue(resources)
    ensure_may_book(principal, data, resources[0].owner_org)
    tz = zone(resources[0].timezone)
    occurrences = series.expand(data.series.rrule, first, tz) if data.series else [first]
    covering = Interval(occurrences[0].start, occurrences[-1].end)
    # Before the registry is asked for its hours: a thousand years would be a call per year.
    check_range(covering)
    hours = await registry.open_intervals(resources, covering, refresh=refresh, readings=readings)
    rooms = await registry.rooms(resources, refresh=refresh, readings=readings)
    return _Loaded(resources, occurrences, hours, rooms, readings)


async def _book_one(
    into: AsyncSession | Database,
    principal: Principal,
    data: BookingCreate,
    loaded: _Loaded,
    *,
    org: str,
    generation: int | None = None,
    share: _Share | None = None,
) -> Booking:
    """One booking, its rules checked: in the request's transaction, or (PostgreSQL, given the
    registry generation its rules were checked against) as one statement of its own."""
    now = datetime.now(UTC)
    (interval,) = loaded.occurrences
    broken = refusals(
        interval,
        loaded.resources,
        loaded.open_intervals,
        attendees=data.attendees,
        now=now,
        override_hours=data.override_hours,
    )
    if broken:
        raise refuse(broken)
    if share is not None:
        _, over = fair_use.within_share([interval], share.held, share.tz, share.hours_per_week)
        if over:
            raise fair_use.share_exceeded(over, share.hours_per_week, now)
    row = _new_row(principal, data, loaded.resources, interval, org=org, series_id=None, now=now)
    plans = _plans(loaded, interval)
    if isinstance(into, AsyncSession):
        return await store.insert_booking(into, row, plans, now=now)
    assert generation is not None
    return await store.insert_booking_at_once(into, row, plans, generation=generation, now=now)


async def _book_series(
    session: AsyncSession,
    principal: Principal,
    data: BookingCreate,
    loaded: _Loaded,
    *,
    org: str,
    now: datetime,
    share: _Share | None = None,
) -> SeriesResult:
    """Book every occurrence, or (all_or_nothing) none when any one fails."""
    assert data.series is not None
    series_id = new_id()
    skip = data.series.mode == "skip_conflicts"
    failed: list[Occurrence] = []
    bookable: list[Interval] = []
    resources = loaded.resources
    for interval in loaded.occurrences:
        broken = refusals(
            interval,
            resources,
            loaded.open_intervals,
            attendees=data.attendees,
            now=now,
            override_hours=data.override_hours,
        )
        if broken:
            failed.append(Occurrence(interval.start, interval.end, broken[0].code))
        else:
            bookable.append(interval)
    if failed and not skip:
        raise _series_failure(failed, status=422)
    if share is not None:
        bookable, over = fair_use.within_share(bookable, share.held, share.tz, share.hours_per_week)
        if over and not skip:
            raise fair_use.share_exceeded(over, share.hours_per_week, now)
        failed += [
            Occurrence(item.interval.start, item.interval.end, "fair_use_exceeded") for item in over
        ]
    booked: list[Booking] = []
    for interval in bookable:
        row = _new_row(principal, data, resources, interval, org=org, series_id=series_id, now=now)
        try:
            booked.append(
                await store.insert_booking(session, row, _plans(loaded, interval), now=now)
            )
        except Conflict:
            failed.append(Occurrence(interval.start, interval.end, "conflict"))
    if failed and not skip:
        raise _series_failure(failed, status=409)
    tz = zone(resources[0].timezone)
    return SeriesResult(
        series_id=series_id,
        bookings=booked,
        skipped=[
            Occurrence(item.start.astimezone(tz), item.end.astimezone(tz), item.code)
            for item in sorted(failed, key=lambda item: item.start)
        ],
    )


def _series_failure(failed: list[Occurrence], *, status: int) -> InvalidRequest | Conflict:
    errors = [
        FieldError("series", f"{item.code}: {item.start.isoformat()} to {item.end.isoformat()}")
        for item in sorted(failed, key=lambda item: item.start)
    ]
    if status == 409:
        return Conflict("some occurrences are taken; none was booked", errors=errors)
    return InvalidRequest(
        "some occurrences break the rules; none was booked", code=failed[0].code, errors=errors
    )


async def _within_rate(request: Request[Any, Any, Any], principal: Principal) -> None:
    """429 `rate_limited` when the caller's token has made its bookings for this minute."""
    limit: RateLimit | None = service_state(request.app.state).extras["booking_rate"]
    if limit is None or principal.role not in fair_use.BOUND_ROLES:
        return
    token = ratelimit.token_key(request.headers.get("authorization", ""))
    wait = await limit.take(token, now=time.time())
    if wait is not None:
        raise TooManyRequests(
            f"this token has made {limit.limit} bookings this minute; slow down",
            code="rate_limited",
            headers={"Retry-After": str(wait)},
        )


async def _share(session: AsyncSession, org: str, loaded: _Loaded, hours_per_week: float) -> _Share:
    """What the organisation holds at the venue in the weeks the booking touches, read under a
    lock on the organisation at the venue, so two of its bookings cannot both take the last
    hours."""
    venue_id = loaded.resources[0].venue_id
    tz = zone(loaded.resources[0].timezone)
    weeks = fair_use.weeks_of(loaded.occurrences, tz)
    await store.serialise_org_at_venue(session, org, venue_id)
    held = await store.held_by(session, org, venue_id, Interval(weeks[0].start, weeks[-1].end))
    return _Share(hours_per_week=hours_per_week, held=held, tz=tz)


_GUARDS = {"cancel": ensure_visible, "approve": ensure_may_approve, "reject": ensure_may_decide}


async def _move(
    session: AsyncSession,
    principal: Principal,
    booking_id: str,
    action: Literal["cancel", "approve", "reject"],
    data: ReasonBody | None,
) -> Booking:
    """Cancel, approve or reject: the row locked, the caller's right and the move checked."""
    row = await store.get_booking_row(session, booking_id, lock=True)
    _GUARDS[action](principal, row.org, row.venue_org)
    status = next_status(Status(row.status), action)
    reason = data.reason if data else None
    actor = actor_of(principal, row.booked_by, row.venue_org)
    return await store.set_status(
        session, row, status, reason=reason, actor=actor, now=datetime.now(UTC)
    )


class BookingController(Controller):
    path = "/v1/bookings"
    tags = ("bookings",)

    @post(
        "/",
        responses={
            201: answer_spec(
                Booking | SeriesResult,
                description="The booking, or with `series` the series: its bookings and skips",
            )
        },
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[BookingCreate],
        principal: Caller,
    ) -> Response[bytes]:
        """Book; the transaction is opened here, since the hot path below needs none."""
        org = booking_org(principal, data)
        first = window(data.start, data.end, fields=("start", "end"))
        held = service_state(request.app.state)
        settings = held.settings
        await _within_rate(request, principal)
        registry = registry_of(request)
        database = held.database
        loaded = await _load(registry, principal, data, first, refresh=False)
        venue_id = loaded.resources[0].venue_id
        shared_out = fair_use.bound(principal, settings.fair_use_hours_per_week)
        at_once = (
            data.series is None
            and database.dialect == "postgresql"
            and "idempotency-key" not in request.headers
            # The share is checked under a lock on the organisation at the venue, in a transaction.
            and not shared_out
        )
        if at_once:
            try:
                booked = await _book_one(
                    database,
                    principal,
                    data,
                    loaded,
                    org=org,
                    generation=loaded.readings.of(venue_id),
                )
            except store.Stale:
                pass  # the registry changed under what this process holds: the way below
            else:
                return Response(msgspec.json.encode(booked), status_code=201)
        async with database.write() as session:
            if not await registry.still_current(session, [venue_id], loaded.readings):
                loaded = await _load(registry, principal, data, first, refresh=True)
            share = None
            if shared_out:
                share = await _share(session, org, loaded, settings.fair_use_hours_per_week)

            async def make() -> Booking | SeriesResult:
                if data.series is not None:
                    now = datetime.now(UTC)
                    return await _book_series(
                        session, principal, data, loaded, org=org, now=now, share=share
                    )
                return await _book_one(session, principal, data, loaded, org=org, share=share)

            return await create_once(request, session, principal, make)

    @get("/")
    async def search(
        self,
        principal: Caller,
        session: DbSession,
        resource_id: FromQuery[str | None] = None,
        venue_id: FromQuery[str | None] = None,
        from_: Annotated[datetime | None, QueryParameter(name="from")] = None,
        to: Annotated[datetime | None, QueryParameter(name="to")] = None,
        status: FromQuery[Status | None] = None,
        hold: FromQuery[bool | None] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Booking]:
        """The bookings the caller may see; `hold=false` leaves out the rooms held for offered
        lectures (a venue manager's approval queue), `hold=true` lists only those."""
        org, venue_org = visible_scope(principal)
        span = None
        if from_ is not None or to is not None:
            if from_ is None or to is None:
                missing = "from" if from_ is None else "to"
                raise InvalidRequest(
                    "from and to go together",
                    errors=[FieldError(missing, "required with the other")],
                )
            span = window(from_, to)
        bookings = await store.list_bookings(
            session,
            org=org,
            venue_org=venue_org,
            resource_id=resource_id,
            venue_id=venue_id,
            window=span,
            status=status,
            hold=hold,
            after=decode_cursor(cursor),
            limit=limit,
        )
        return page_of(bookings, limit, lambda booking: booking.id)

    @get("/{booking_id:str}")
    async def read(self, booking_id: PathId, principal: Caller, session: DbSession) -> Booking:
        row = await store.get_booking_row(session, booking_id)
        ensure_visible(principal, row.org, row.venue_org)
        return row.to_domain()

    @post("/{booking_id:str}/cancel", status_code=200)
    async def cancel(
        self,
        booking_id: PathId,
        principal: Caller,
        session: DbSession,
        data: JSONBody[ReasonBody | None] = None,
    ) -> Booking:
        return await _move(session, principal, booking_id, "cancel", data)

    @post("/{booking_id:str}/approve", status_code=200)
    async def approve(
        self,
        booking_id: PathId,
        principal: Caller,
        session: DbSession,
        data: JSONBody[ReasonBody | None] = None,
    ) -> Booking:
        return await _move(session, principal, booking_id, "approve", data)

    @post("/{booking_id:str}/reject", status_code=200)
    async def reject(
        self,
        booking_id: PathId,
        principal: Caller,
        session: DbSession,
        data: JSONBody[ReasonBody | None] = None,
    ) -> Booking:
        return await _move(session, principal, booking_id, "reject", data)

    @post("/{booking_id:str}/attendance", status_code=200)
    async def attendance(
        self,
        booking_id: PathId,
        data: JSONBody[AttendanceBody],
        principal: Caller,
        session: DbSession,
    ) -> Booking:
        row = await store.get_booking_row(session, booking_id, lock=True)
        ensure_may_change(principal, row.org, row.venue_org)
        now = datetime.now(UTC)
        ensure_attendance_allowed(Status(row.status), row.end_at, now)
        return await store.record_attendance(session, row, data.attended, now=now)


class SeriesController(Controller):
    path = "/v1/series"
    tags = ("bookings",)

    @delete("/{series_id:str}", status_code=200)
    async def cancel_rest(
        self, series_id: PathId, principal: Caller, session: DbSession
    ) -> SeriesCancelled:
        """Cancel the occurrences that have not started yet."""
        any_row = await store.series_exists(session, series_id)
        if any_row is None:
            raise NotFound("no such series")
        ensure_may_change(principal, any_row.org, any_row.venue_org)
        now = datetime.now(UTC)
        cancelled = [
            await store.set_status(
                session,
                row,
                Status.CANCELLED,
                reason="series cancelled",
                actor=actor_of(principal, row.booked_by, row.venue_org),
                now=now,
            )
            for row in await store.future_series_rows(session, series_id, now)
        ]
        return SeriesCancelled(series_id=series_id, cancelled=cancelled)
