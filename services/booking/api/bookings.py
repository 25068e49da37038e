"""Booking routes: create (one, or a series), read, list, and move a booking along its life."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import FromQuery, JSONBody, QueryParameter

from services.booking import bookings, store
from services.booking.catalogue.reader import registry_of
from services.booking.domain import fair_use
from services.booking.domain.bookings import (
    AttendanceBody,
    Booking,
    BookingCreate,
    ReasonBody,
    SeriesResult,
    Status,
    actor_of,
    ensure_attendance_allowed,
    ensure_may_change,
    ensure_visible,
    visible_scope,
)
from shared import ratelimit
from shared.auth import Principal
from shared.errors import FieldError, InvalidRequest, NotFound, TooManyRequests
from shared.ratelimit import RateLimit
from shared.time import window
from shared.web import (
    Caller,
    Cursor,
    DbSession,
    Limit,
    Page,
    PathId,
    answer_spec,
    decode_cursor,
    page_of,
    request_key,
    service_state,
)


class SeriesCancelled(msgspec.Struct):
    series_id: str
    cancelled: list[Booking]


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
        """Book one, or a series; see `bookings.make`."""
        await _within_rate(request, principal)
        held = service_state(request.app.state)
        answer = await bookings.make(
            registry_of(request),
            held.database,
            principal,
            data,
            keyed=await request_key(request, principal),
            hours_per_week=held.settings.fair_use_hours_per_week,
        )
        return Response(answer.body, status_code=answer.status)

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
        return await bookings.move(session, principal, booking_id, "cancel", data)

    @post("/{booking_id:str}/approve", status_code=200)
    async def approve(
        self,
        booking_id: PathId,
        principal: Caller,
        session: DbSession,
        data: JSONBody[ReasonBody | None] = None,
    ) -> Booking:
        return await bookings.move(session, principal, booking_id, "approve", data)

    @post("/{booking_id:str}/reject", status_code=200)
    async def reject(
        self,
        booking_id: PathId,
        principal: Caller,
        session: DbSession,
        data: JSONBody[ReasonBody | None] = None,
    ) -> Booking:
        return await bookings.move(session, principal, booking_id, "reject", data)

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
