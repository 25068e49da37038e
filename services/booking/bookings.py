"""Bookings' use cases: make one or a series (every way a booking is made goes through
`store.book`), and move one along its life. The routes parse and answer; the rules are
`domain`'s; the rows are `store`'s; what the registry says comes through the `RegistryClient`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking import store
from services.booking.catalogue.reader import Readings, RegistryClient
from services.booking.domain import fair_use, halls, series
from services.booking.domain.bookings import (
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
    ensure_may_approve,
    ensure_may_book,
    ensure_may_decide,
    ensure_visible,
    initial_status,
    next_status,
    refusals,
    refuse,
)
from services.booking.domain.halls import Room
from shared.auth import Principal
from shared.db import Database
from shared.errors import (
    Conflict,
    FieldError,
    InvalidRequest,
    ServiceError,
    ServiceUnavailable,
    TooManyRequests,
)
from shared.idempotency import Keyed, Replay
from shared.ids import new_id
from shared.time import Interval, check_range, window, zone

# How many times a booking reads the registry again when its venue moved on under it.
_READINGS = 3


class Answer(NamedTuple):
    """What a create answers: its status and its JSON body (kept, or kept before, under the
    request's Idempotency-Key)."""

    status: int
    body: bytes


class _Loaded(NamedTuple):
    """What a booking request needs of the registry: its resources, occurrences and their hours."""

    resources: list[Bookable]
    occurrences: list[Interval]
    open_intervals: dict[str, list[Interval]]
    # The resources and the wholes and parts of the rooms among them.
    rooms: dict[str, Room]
    # The registry generations these answers were read at: the booking stands only on them.
    readings: Readings


async def make(
    registry: RegistryClient,
    database: Database,
    principal: Principal,
    data: BookingCreate,
    *,
    keyed: Keyed | None,
    hours_per_week: float,
) -> Answer:
    """Book one, or a series: 201 with the booking or the series, or the refusal raised. The
    registry is read outside any transaction, and read again when the venue moved on before
    the booking was stored (`store.Stale`). A keyed request that is refused looks for the key's
    answer first: it may be a retry of a booking made before the rules it now breaks began to
    apply (its lead time passed meanwhile, say)."""
    try:
        org = booking_org(principal, data)
        first = window(data.start, data.end, fields=("start", "end"))
        share = (
            fair_use.share_seconds(hours_per_week)
            if fair_use.bound(principal, hours_per_week)
            else None
        )
        refresh = False
        for _ in range(_READINGS):
            loaded = await _load(registry, principal, data, first, refresh=refresh)
            venue_id = loaded.resources[0].venue_id
            try:
                return await _store(
                    database,
                    principal,
                    data,
                    loaded,
                    org=org,
                    share=share,
                    keyed=keyed,
                    hours_per_week=hours_per_week,
                )
            except store.Stale:
                async with database.read() as session:
                    await registry.still_current(session, [venue_id])
                refresh = True
        raise ServiceUnavailable(
            "the venue keeps changing in the registry; try again", code="registry_unavailable"
        )
    except ServiceError:
        if keyed is not None and (kept := await store.replay(database, keyed)) is not None:
            return Answer(kept.status, kept.body)
        raise


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


async def _store(
    database: Database,
    principal: Principal,
    data: BookingCreate,
    loaded: _Loaded,
    *,
    org: str,
    share: int | None,
    keyed: Keyed | None,
    hours_per_week: float,
) -> Answer:
    now = datetime.now(UTC)
    resources = loaded.resources
    tz = zone(resources[0].timezone)
    series_id = new_id() if data.series is not None else None
    skip = data.series is not None and data.series.mode == "skip_conflicts"
    broken: list[Occurrence] = []
    attempts: list[store.Attempt] = []
    for interval in loaded.occurrences:
        found = refusals(
            interval,
            resources,
            loaded.open_intervals,
            attendees=data.attendees,
            now=now,
            override_hours=data.override_hours,
        )
        if not found:
            row = _new_row(
                principal, data, resources, interval, org=org, series_id=series_id, now=now
            )
            attempts.append(
                store.Attempt(row, _plans(loaded, interval), fair_use.charges(interval, tz))
            )
        elif data.series is None:
            raise refuse(found)
        else:
            broken.append(Occurrence(interval.start, interval.end, found[0].code))
    if broken and not skip:
        raise _series_failure(broken, status=422)

    def answer(made: store.Made) -> msgspec.Struct:
        if series_id is None:
            return store.booking_of(made.booked[0])
        skipped = broken + [_occurrence(refused) for refused in made.refused]
        return SeriesResult(
            series_id=series_id,
            bookings=[store.booking_of(row) for row in made.booked],
            skipped=[
                Occurrence(item.start.astimezone(tz), item.end.astimezone(tz), item.code)
                for item in sorted(skipped, key=lambda item: item.start)
            ],
        )

    made = store.Made([], [])
    if attempts:
        outcome = await store.book(
            database,
            attempts,
            generation=loaded.readings.of(resources[0].venue_id),
            share_seconds=share,
            all_or_nothing=not skip,
            keyed=keyed,
            answer=answer,
        )
        if isinstance(outcome, Replay):
            return Answer(outcome.status, outcome.body)
        made = outcome
    if made.refused and not skip:
        raise _refusal(
            made.refused,
            series=data.series is not None,
            tz=tz,
            hours_per_week=hours_per_week,
            now=now,
        )
    return Answer(201, made.answer or msgspec.json.encode(answer(made)))


def _refusal(
    refused: Sequence[store.Refused],
    *,
    series: bool,
    tz: ZoneInfo,
    hours_per_week: float,
    now: datetime,
) -> Conflict | InvalidRequest | TooManyRequests:
    """The answer to attempts refused: 409 when any was in the way of another booking, else 429
    naming the weeks they would overdraw."""
    conflicts = [item for item in refused if item.code == "conflict"]
    if conflicts:
        if series:
            return _series_failure([_occurrence(item) for item in conflicts], status=409)
        return store.conflict_error(conflicts[0].in_the_way)
    return fair_use.share_exceeded(
        [
            fair_use.Overdrawn(
                Interval(item.attempt.row.start_at, item.attempt.row.end_at),
                fair_use.week_from(item.week, tz),
                item.held_seconds / 3600,
            )
            for item in refused
            if item.week is not None
        ],
        hours_per_week,
        now,
    )


def _occurrence(refused: store.Refused) -> Occurrence:
    return Occurrence(refused.attempt.row.start_at, refused.attempt.row.end_at, refused.code)


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


_GUARDS = {"cancel": ensure_visible, "approve": ensure_may_approve, "reject": ensure_may_decide}


async def move(
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
