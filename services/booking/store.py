"""The booking service's database: bookings and the slots that make double booking impossible
(its replica of the registry is `catalogue.store`, on the same `metadata.Base`).

A booking holds one slot row per resource it claims (`domain.halls`: each booked resource, and the
wholes and parts of a booked room, each with its `reach`). A slot's `[blocked_from, blocked_until)`
is the booking plus its resource's turnover buffer; on PostgreSQL an exclusion constraint over
live slots (migration 0006) refuses any overlap of two slots of a resource unless both are a
hall's `whole` or both its `part` (`domain.halls.excludes`), whoever inserts them and however many
replicas run. On SQLite the write transaction is `BEGIN IMMEDIATE`, so the check below and the
insert after it cannot interleave with another writer. The weekly share is kept the same way: a
row per organisation, venue and week (`weekly_hours`) that a booking's own statement raises only
while it stays under the share. `book` is the one way in for every booking.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ColumnElement,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TextClause,
    and_,
    bindparam,
    delete,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from services.booking.catalogue import store as catalogue
from services.booking.domain.bookings import LIVE, Booking, Status
from services.booking.domain.fair_use import WeekCharge, overdrawn
from services.booking.domain.halls import Held, Reach
from services.booking.metadata import Base, tables
from shared import idempotency
from shared.config import ServiceName
from shared.contracts import LONGEST_BLOCK, LONGEST_BUFFER, BookingChanged, Programme
from shared.db import Database, UTCDateTime, database_outage
from shared.errors import Conflict, FieldError, NotFound, ServiceUnavailable
from shared.idempotency import Keyed, Replay
from shared.outbox import outbox_row, publish
from shared.time import Interval

# PostgreSQL's SQLSTATEs: two inserters deadlocked; a slot or a charge for a booking not
# inserted; a key already there.
_DEADLOCK = "40P01"
_FOREIGN_KEY_VIOLATION = "23503"
_UNIQUE_VIOLATION = "23505"


SOURCE: ServiceName = "booking"
LIVE_VALUES = sorted(status.value for status in LIVE)


class BookingRow(Base):
    __tablename__ = "bookings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org: Mapped[str] = mapped_column(String(100))
    venue_id: Mapped[str] = mapped_column(String(36))
    # The venue's owner and zone when booked: rights and local times without asking the registry.
    venue_org: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64))
    resource_ids: Mapped[list[str]] = mapped_column(JSON)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20))
    purpose: Mapped[str] = mapped_column(Text)
    programme: Mapped[str | None] = mapped_column(String(20))
    attendees: Mapped[int | None] = mapped_column(Integer)
    attended: Mapped[int | None] = mapped_column(Integer)
    series_id: Mapped[str | None] = mapped_column(String(36), index=True)
    hold: Mapped[bool] = mapped_column(Boolean, default=False)
    # Booked outside opening hours on purpose (a special event): never flagged when hours change.
    override_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    outside_opening_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    # The `sub` of the token that made the booking (a person, or a service such as lecturers).
    booked_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # 1 when made, raised by one with every change (`touch`): its events' order, notify's SEQUENCE.
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __table_args__ = (
        Index("ix_bookings_venue_start", "venue_id", "start_at"),
        Index("ix_bookings_org_start", "org", "start_at"),
        Index("ix_bookings_venue_org_start", "venue_org", "start_at"),
        CheckConstraint("start_at < end_at", name="booking_not_empty"),
    )

    def to_domain(self) -> Booking:
        return booking_of(self)

    def changed(self) -> BookingChanged:
        return changed_of(self)


class NewBooking(msgspec.Struct, frozen=True):
    """A booking about to be stored: the columns of `bookings`, without an ORM object's cost."""

    id: str
    org: str
    venue_id: str
    venue_org: str
    timezone: str
    resource_ids: list[str]
    start_at: datetime
    end_at: datetime
    status: str
    purpose: str
    programme: str | None
    attendees: int | None
    series_id: str | None
    hold: bool
    override_hours: bool
    booked_by: str
    created_at: datetime
    updated_at: datetime
    attended: int | None = None
    outside_opening_hours: bool = False
    reason: str | None = None
    version: int = 1

    def values(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)


def booking_of(row: BookingRow | NewBooking) -> Booking:
    """The booking as clients see it, its instants in the venue's own zone."""
    tz = ZoneInfo(row.timezone)
    return Booking(
        id=row.id,
        resource_ids=list(row.resource_ids),
        venue_id=row.venue_id,
        org=row.org,
        booked_by=row.booked_by,
        start=row.start_at.astimezone(tz),
        end=row.end_at.astimezone(tz),
        status=Status(row.status),
        purpose=row.purpose,
        programme=Programme(row.programme) if row.programme else None,
        attendees=row.attendees,
        attended=row.attended,
        series_id=row.series_id,
        hold=row.hold,
        outside_opening_hours=row.outside_opening_hours,
        reason=row.reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
    )


def changed_of(row: BookingRow | NewBooking) -> BookingChanged:
    """The data of the booking's events: the booking as it is after the change, its instants in
    the venue's zone. Everything comes from the row (the venue's owner and zone were kept when it
    was booked), so no event needs the registry."""
    tz = ZoneInfo(row.timezone)
    return BookingChanged(
        id=row.id,
        venue_id=row.venue_id,
        resource_ids=list(row.resource_ids),
        start=row.start_at.astimezone(tz),
        end=row.end_at.astimezone(tz),
        status=row.status,
        org=row.org,
        owner_org=row.venue_org,
        booked_by=row.booked_by,
        hold=row.hold,
        purpose=row.purpose,
        version=row.version,
        timezone=row.timezone,
    )


def touch(row: BookingRow, now: datetime) -> None:
    """Every change of a stored booking goes through here: it raises the version. The caller holds
    the row (`get_booking_row(lock=True)`, or SQLite's one writer), so no two changes share one."""
    row.version += 1
    row.updated_at = now


class SlotRow(Base):
    """One resource a booking claims: the row the no-overlap guarantee is built on. `reach` says
    how (`domain.halls.Reach`): `own` for a booked resource, `whole` or `part` for a room above
    or below a booked one; the booking's resources are its `own` slots."""

    __tablename__ = "booking_slots"

    booking_id: Mapped[str] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True
    )
    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    blocked_from: Mapped[datetime] = mapped_column(UTCDateTime)
    blocked_until: Mapped[datetime] = mapped_column(UTCDateTime)
    live: Mapped[bool] = mapped_column(Boolean)
    reach: Mapped[str] = mapped_column(String(5), server_default=Reach.OWN.value)

    __table_args__ = (
        Index("ix_booking_slots_resource_blocked", "resource_id", "blocked_from", "blocked_until"),
        CheckConstraint("blocked_from < blocked_until", name="slot_not_empty"),
    )


class WeeklyHoursRow(Base):
    """The seconds of live bookings an organisation holds at a venue in one local week (the
    week's Monday): what its weekly share is checked against, by the booking's own statement."""

    __tablename__ = "weekly_hours"

    org: Mapped[str] = mapped_column(String(100), primary_key=True)
    venue_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    week: Mapped[date] = mapped_column(Date, primary_key=True)
    seconds: Mapped[int] = mapped_column(Integer)


class ChargeRow(Base):
    """What a live booking charged a week of its organisation's share (`fair_use.charges`),
    given back exactly when it ends (whatever the zone's rules have become since)."""

    __tablename__ = "booking_charges"

    booking_id: Mapped[str] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True
    )
    week: Mapped[date] = mapped_column(Date, primary_key=True)
    seconds: Mapped[int] = mapped_column(Integer)


# Bookings


async def get_booking_row(
    session: AsyncSession, booking_id: str, *, lock: bool = False
) -> BookingRow:
    query = select(BookingRow).where(BookingRow.id == booking_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        raise NotFound("no such booking")
    return row


@dataclass(frozen=True)
class SlotPlan:
    """A resource to hold for a booking, the stretch (booking plus buffer) it holds, and how."""

    resource_id: str
    blocked: Interval
    reach: Reach = Reach.OWN


_OWN = SlotRow.reach == Reach.OWN.value


def _excluded_by(reach: Reach) -> ColumnElement[bool]:
    """The slots a slot of `reach` on the same resource may not overlap (`halls.excludes`)."""
    return true() if reach is Reach.OWN else SlotRow.reach != reach.value


async def conflicts(
    session: AsyncSession, plans: Sequence[SlotPlan], *, ignore_booking: str | None = None
) -> list[tuple[str, str, datetime, datetime]]:
    """Live slots in the way of `plans`: (booking id, resource id, start, end) each."""
    query = (
        select(SlotRow.booking_id, SlotRow.resource_id, SlotRow.start_at, SlotRow.end_at)
        .where(
            SlotRow.live,
            or_(
                *(
                    and_(
                        SlotRow.resource_id == plan.resource_id,
                        _excluded_by(plan.reach),
                        SlotRow.blocked_from < plan.blocked.end,
                        # A bound below as well, so the index is read as a range, not to its end.
                        SlotRow.blocked_from > plan.blocked.start - LONGEST_BLOCK,
                        SlotRow.blocked_until > plan.blocked.start,
                    )
                    for plan in plans
                )
            ),
        )
        .order_by(SlotRow.start_at, SlotRow.booking_id)
    )
    if ignore_booking is not None:
        query = query.where(SlotRow.booking_id != ignore_booking)
    return [tuple(row) for row in await session.execute(query)]  # type: ignore[misc]


def conflict_error(found: Sequence[tuple[str, str, datetime, datetime]]) -> Conflict:
    return Conflict(
        "the time is taken: another booking (or its turnover time) is in the way",
        code="conflict",
        errors=[
            FieldError(
                "resource_ids",
                f"booking {booking_id} holds {resource_id} from "
                f"{start.isoformat()} to {end.isoformat()}",
            )
            for booking_id, resource_id, start, end in found
        ],
    )


_INSERT_BOOKING = Base.metadata.tables["bookings"].insert()
_INSERT_SLOT = Base.metadata.tables["booking_slots"].insert()
_INSERT_CHARGE = Base.metadata.tables["booking_charges"].insert()
_CHARGE_WEEK = sqlite_insert(Base.metadata.tables["weekly_hours"])
_CHARGE_WEEK = _CHARGE_WEEK.on_conflict_do_update(
    index_elements=["org", "venue_id", "week"],
    set_={"seconds": WeeklyHoursRow.seconds + _CHARGE_WEEK.excluded.seconds},
)


# Making bookings: one write path for each database
#
# Every booking (one, a series' occurrence, a hold; with or without an Idempotency-Key; held to
# the weekly share or not) is one `Attempt` and goes through `book`. On PostgreSQL each attempt is
# `_TAKE`, one statement that holds the slots (the exclusion constraints decide), charges the
# organisation's weeks at the venue (a conditional upsert of its `weekly_hours` rows decides the
# share, so no lock is taken beyond those rows) and inserts the booking, its charges, its event
# and the answer kept under its key, or none of them. A lone booking runs it in autocommit on a
# bare driver connection; a series runs it once per occurrence in one transaction. On SQLite the
# write transaction holds the database (`BEGIN IMMEDIATE`), and `_refusal`, the statement's
# rules as queries, is checked before the same rows are inserted.


class Attempt(NamedTuple):
    """One booking to make: its row, the slots it holds (`domain.halls`) and what it charges
    each week of its organisation's share at the venue (`domain.fair_use`)."""

    row: NewBooking
    plans: Sequence[SlotPlan]
    charges: Sequence[WeekCharge]


class Refused(NamedTuple):
    """An attempt not made: `conflict` (the live slots in the way), or `fair_use_exceeded` (the
    first week it would overdraw, and the seconds of it the organisation held)."""

    attempt: Attempt
    code: Literal["conflict", "fair_use_exceeded"]
    in_the_way: Sequence[tuple[str, str, datetime, datetime]] = ()
    week: date | None = None
    held_seconds: int = 0


class Made(NamedTuple):
    """What `book` did: the bookings made, the attempts refused, and the answer it kept."""

    booked: list[NewBooking]
    refused: list[Refused]
    answer: bytes = b""


class Stale(Exception):
    """The venue's registry generation is no longer the one the booking's rules were checked
    against: what was read of the registry must be read again."""


async def book(
    database: Database,
    attempts: Sequence[Attempt],
    *,
    generation: int,
    share_seconds: int | None,
    all_or_nothing: bool,
    keyed: Keyed | None,
    answer: Callable[[Made], msgspec.Struct],
) -> Made | Replay:
    """Make the attempts (in the order given) at the venue's registry `generation`, each held to
    `share_seconds` a week when given. With `all_or_nothing`, one refusal undoes them all. When
    anything was made, `answer(made)` is the answer kept under `keyed`; a request whose key was
    answered before gets that answer (`Replay`) and makes nothing."""
    if not attempts:
        return Made([], [])
    if database.dialect == "postgresql" and len(attempts) == 1:
        return await _book_alone(
            database,
            attempts[0],
            generation=generation,
            share=share_seconds,
            keyed=keyed,
            answer=answer,
        )
    try:
        async with database.write() as session:
            return await _book_in(
                session,
                attempts,
                generation=generation,
                share=share_seconds,
                all_or_nothing=all_or_nothing,
                keyed=keyed,
                answer=answer,
            )
    except _Undone as undone:
        replay = None
        if keyed is not None:
            # What was refused may be what this key made before; or another request with the
            # key answered first.
            async with database.write() as session:
                replay = await _replay(session, keyed)
        if replay is not None:
            return replay
        if not undone.answered:
            return undone.made
    # The key's answer had expired, and was dropped: make them now.
    return await book(
        database,
        attempts,
        generation=generation,
        share_seconds=share_seconds,
        all_or_nothing=all_or_nothing,
        keyed=keyed,
        answer=answer,
    )


class _Undone(Exception):
    """The transaction is rolled back: all or nothing, and something was refused (`made`), or
    another request answered under the same key first (`answered`)."""

    def __init__(self, made: Made, *, answered: bool = False) -> None:
        self.made = made
        self.answered = answered


# A refused attempt on PostgreSQL: slots held for a booking that was not inserted (they break
# their foreign key at the end of the statement), two inserters deadlocked, or the key answered
# by another request.
_REFUSED = (_FOREIGN_KEY_VIOLATION, _DEADLOCK, _UNIQUE_VIOLATION)
# A lone booking whose refusal has no reason left when looked at (what was in the way went
# meanwhile) is tried again, this many times in all.
_TRIES = 3


async def _book_alone(
    database: Database,
    attempt: Attempt,
    *,
    generation: int,
    share: int | None,
    keyed: Keyed | None,
    answer: Callable[[Made], msgspec.Struct],
) -> Made | Replay:
    """One attempt on PostgreSQL: `_TAKE` in autocommit, on a bare driver connection, with a
    prepared statement (this is the service's throughput); only a refusal asks why."""
    made = Made([attempt.row], [])
    made = made._replace(answer=msgspec.json.encode(answer(made)))
    arguments = _TAKE.arguments(_take_values(attempt, generation, share, keyed, made.answer))
    for _ in range(_TRIES):
        try:
            async with database.driver() as connection:
                found = await connection.fetchrow(_TAKE.sql, *arguments)
        except Exception as exc:
            # Checked first: a connection error is a PostgresError too. A broken connection is
            # dropped, not lent again (`StatementConnections`); the client may try again.
            if database_outage(exc):
                raise ServiceUnavailable(
                    "the database does not answer", code="database_unavailable"
                ) from exc
            if not isinstance(exc, asyncpg.PostgresError) or exc.sqlstate not in _REFUSED:
                raise
        else:
            if found["generation"] != generation:
                raise Stale
            if found["booked"]:
                return made
        async with database.write() as session:
            if keyed is not None and (replay := await _replay(session, keyed)) is not None:
                return replay
            refusal = await _refusal(session, attempt, share)
        if refusal is not None:
            return Made([], [refusal])
    raise Conflict("another booking of these resources was being made; try again")


async def _book_in(
    session: AsyncSession,
    attempts: Sequence[Attempt],
    *,
    generation: int,
    share: int | None,
    all_or_nothing: bool,
    keyed: Keyed | None,
    answer: Callable[[Made], msgspec.Struct],
) -> Made | Replay:
    """The attempts in the session's transaction: on PostgreSQL `_TAKE` each, in a savepoint of
    its own; on SQLite, whose transaction holds the database, `_refusal` then the rows."""
    postgres = session.get_bind().dialect.name == "postgresql"
    now = datetime.now(UTC)
    if not postgres:
        venue_id = attempts[0].row.venue_id
        if await catalogue.generation(session, venue_id) != generation:
            raise Stale
        if keyed is not None:
            replay = await idempotency.claim(
                session,
                tables.idempotency_keys,
                scope=keyed.scope,
                key=keyed.key,
                body_fingerprint=keyed.fingerprint,
                now=now,
            )
            if replay is not None:
                return replay
    made = Made([], [])
    for attempt in attempts:
        if postgres:
            refusal = await _take_in(session, attempt, generation=generation, share=share)
        elif (refusal := await _refusal(session, attempt, share)) is None:
            await _insert(session, attempt)
        if refusal is None:
            made.booked.append(attempt.row)
        else:
            made.refused.append(refusal)
    if not made.booked or (made.refused and all_or_nothing):
        raise _Undone(made._replace(booked=[]))
    made = made._replace(answer=msgspec.json.encode(answer(made)))
    if keyed is not None:
        await _keep_answer(session, keyed, made.answer, postgres=postgres, now=now)
    return made


async def _take_in(
    session: AsyncSession, attempt: Attempt, *, generation: int, share: int | None
) -> Refused | None:
    """`_TAKE` inside the session's transaction, in a savepoint: a refusal undoes only it."""
    for _ in range(_TRIES):
        try:
            async with session.begin_nested():
                found = (
                    await session.execute(
                        _TAKE.text, _take_values(attempt, generation, share, None, b"")
                    )
                ).one()
        except DBAPIError as exc:
            if _sqlstate(exc) not in _REFUSED:
                raise
            if _sqlstate(exc) == _DEADLOCK:
                # The cycle runs through locks this transaction holds from earlier occurrences:
                # trying again would meet it again.
                return Refused(attempt, "conflict")
        else:
            if found.generation != generation:
                raise Stale
            if found.booked:
                return None
        if (refusal := await _refusal(session, attempt, share)) is not None:
            return refusal
    raise Conflict("another booking of these resources was being made; try again")


async def _refusal(session: AsyncSession, attempt: Attempt, share: int | None) -> Refused | None:
    """Why the attempt cannot be made now, if it cannot: `_TAKE`'s rules, as queries."""
    found = await conflicts(session, attempt.plans)
    if found:
        return Refused(attempt, "conflict", in_the_way=found)
    if share is None:
        return None
    row = attempt.row
    held = await weekly_seconds(session, row.org, row.venue_id, [c.week for c in attempt.charges])
    if (full := overdrawn(attempt.charges, held, share)) is None:
        return None
    return Refused(
        attempt, "fair_use_exceeded", week=full.week, held_seconds=held.get(full.week, 0)
    )


async def _insert(session: AsyncSession, attempt: Attempt) -> None:
    """The rows of a booking `_refusal` let through (SQLite: the transaction holds the database,
    so nothing came between the two)."""
    row = attempt.row
    await session.execute(_INSERT_BOOKING, row.values())
    await session.execute(_INSERT_SLOT, _slot_values(attempt))
    await session.execute(
        _INSERT_CHARGE,
        [{"booking_id": row.id, "week": c.week, "seconds": c.seconds} for c in attempt.charges],
    )
    await session.execute(
        _CHARGE_WEEK,
        [
            {"org": row.org, "venue_id": row.venue_id, "week": c.week, "seconds": c.seconds}
            for c in attempt.charges
        ],
    )
    await publish(
        session,
        tables,
        source=SOURCE,
        type="booking.created",
        data=changed_of(row),
        now=row.created_at,
    )


async def _keep_answer(
    session: AsyncSession, keyed: Keyed, answer: bytes, *, postgres: bool, now: datetime
) -> None:
    """Keep the answer under the key, with what it answers. SQLite claimed the key first; on
    PostgreSQL a key someone else answered meanwhile undoes this transaction."""
    table = tables.idempotency_keys
    if not postgres:
        await idempotency.remember(
            session, table, scope=keyed.scope, key=keyed.key, status=201, body=answer
        )
        return
    try:
        async with session.begin_nested():
            await session.execute(
                table.insert().values(
                    scope=keyed.scope,
                    key=keyed.key,
                    fingerprint=keyed.fingerprint,
                    created_at=now,
                    status=201,
                    body=answer,
                )
            )
    except DBAPIError as exc:
        if _sqlstate(exc) != _UNIQUE_VIOLATION:
            raise
        raise _Undone(Made([], []), answered=True) from exc


async def replay(database: Database, keyed: Keyed) -> Replay | None:
    """The answer kept under the key (422 when it answered another body), or None where there
    is none: for a keyed request refused before it reached `book`, which may be a retry."""
    async with database.write() as session:
        return await _replay(session, keyed)


async def _replay(session: AsyncSession, keyed: Keyed) -> Replay | None:
    """The answer kept under the key (422 when it answered another body), or None where there
    is none; one past its lifetime is dropped."""
    return await idempotency.answered(
        session,
        tables.idempotency_keys,
        scope=keyed.scope,
        key=keyed.key,
        body_fingerprint=keyed.fingerprint,
        now=datetime.now(UTC),
    )


def _slot_values(attempt: Attempt) -> list[dict[str, Any]]:
    row = attempt.row
    live = row.status in LIVE_VALUES
    return [
        {
            "booking_id": row.id,
            "resource_id": plan.resource_id,
            "start_at": row.start_at,
            "end_at": row.end_at,
            "blocked_from": plan.blocked.start,
            "blocked_until": plan.blocked.end,
            "live": live,
            "reach": plan.reach.value,
        }
        # One order for every inserter, so two multi-resource bookings cannot deadlock.
        for plan in sorted(attempt.plans, key=lambda plan: plan.resource_id)
    ]


def _take_values(
    attempt: Attempt, generation: int, share: int | None, keyed: Keyed | None, answer: bytes
) -> dict[str, Any]:
    """`_TAKE`'s parameters, by name."""
    row = attempt.row
    slots = _slot_values(attempt)
    event = outbox_row(
        source=SOURCE, type="booking.created", data=changed_of(row), now=row.created_at
    )
    booking = row.values()
    # A JSON column's value goes to the driver as its text.
    booking["resource_ids"] = msgspec.json.encode(row.resource_ids).decode()
    return {
        **{f"b_{name}": value for name, value in booking.items()},
        **{f"e_{name}": event[name] for name in _EVENT_COLUMNS},
        "generation": generation,
        "share": share,
        "weeks": [c.week for c in attempt.charges],
        "week_seconds": [c.seconds for c in attempt.charges],
        **{f"slot_{name}": [s[name] for s in slots] for name in _SLOT_ARRAYS},
        "slot_live": row.status in LIVE_VALUES,
        "k_scope": keyed.scope if keyed else None,
        "k_key": keyed.key if keyed else None,
        "k_fingerprint": keyed.fingerprint if keyed else None,
        "k_body": answer,
    }


class _Statement(NamedTuple):
    """A statement written with named parameters, and its form for the bare driver: `$n`
    placeholders and the names in their order."""

    text: TextClause
    sql: str
    names: tuple[str, ...]

    def arguments(self, values: dict[str, Any]) -> list[Any]:
        return [values[name] for name in self.names]


_SLOT_ARRAYS = ("resource_id", "blocked_from", "blocked_until", "reach")
_EVENT_COLUMNS = ("event_id", "type", "payload", "created_at")


def _take_statement() -> _Statement:
    """`_TAKE`: one booking as one statement. It holds the slots (the exclusion constraint decides,
    waiting for a racing inserter to finish) if the venue's registry generation is still the one
    the booking's rules were checked against (read FOR SHARE: a registry event being applied
    meanwhile is waited for and then seen, so the worker's look for the bookings its new hours
    leave outside cannot miss this one); then, if every slot was held, charges the weeks
    (each only while it stays under the share); then, if every week was charged, inserts the
    booking, its charges, its event and its keyed answer. Slots held for a booking that was not
    inserted break their foreign key at the end of the statement, which undoes it all. Slots
    before weeks, as a booking that ends frees them (`set_status`): a lone booking and an ending
    cannot deadlock. A series holds its earlier weeks until it commits, so it can; PostgreSQL
    finds such a cycle, and its loser is answered 409, free to try again."""
    table = Base.metadata.tables
    bookings, slots, outbox = table["bookings"], table["booking_slots"], tables.outbox
    counters, charged = table["weekly_hours"], table["booking_charges"]
    keys = tables.idempotency_keys
    dialect = postgresql.asyncpg.dialect()  # type: ignore[no-untyped-call]

    def typed(name: str, column: Any, array: str = "") -> str:
        # A parameter in a SELECT list has no type for PostgreSQL to infer: name it.
        return f"CAST(:{name} AS {column.type.compile(dialect=dialect)}{array})"

    booking_columns = list(bookings.columns.keys())
    slot_arrays = ", ".join(typed(f"slot_{n}", slots.c[n], "[]") for n in _SLOT_ARRAYS)
    weeks = (
        f"{typed('weeks', charged.c.week, '[]')}, {typed('week_seconds', charged.c.seconds, '[]')}"
    )
    share = typed("share", counters.c.seconds)
    generation = typed("generation", table["registry_generations"].c.generation)
    week_list = typed("weeks", charged.c.week, "[]")
    slot_list = typed("slot_resource_id", slots.c.resource_id, "[]")
    sql = f"""
        WITH current AS (
            SELECT COALESCE(
                (SELECT generation FROM registry_generations
                 WHERE venue_id = {typed("b_venue_id", bookings.c.venue_id)} FOR SHARE), 0
            ) AS generation
        ), slot AS (
            INSERT INTO {slots.name}
                (booking_id, resource_id, start_at, end_at, blocked_from, blocked_until, live,
                 reach)
            SELECT {typed("b_id", slots.c.booking_id)}, wanted.resource_id,
                {typed("b_start_at", slots.c.start_at)}, {typed("b_end_at", slots.c.end_at)},
                wanted.blocked_from, wanted.blocked_until, {typed("slot_live", slots.c.live)},
                wanted.reach
            FROM current, unnest({slot_arrays})
                AS wanted (resource_id, blocked_from, blocked_until, reach)
            WHERE current.generation = {generation}
            ON CONFLICT DO NOTHING
            RETURNING resource_id
        ), charge AS (
            INSERT INTO {counters.name} AS held (org, venue_id, week, seconds)
            SELECT {typed("b_org", counters.c.org)}, {typed("b_venue_id", counters.c.venue_id)},
                asked.week, asked.seconds
            FROM unnest({weeks}) AS asked (week, seconds)
            WHERE (SELECT count(*) FROM slot) = cardinality({slot_list})
                AND ({share} IS NULL OR asked.seconds <= {share})
            ON CONFLICT (org, venue_id, week) DO UPDATE
                SET seconds = held.seconds + EXCLUDED.seconds
                WHERE {share} IS NULL OR held.seconds + EXCLUDED.seconds <= {share}
            RETURNING week
        ), booking AS (
            INSERT INTO {bookings.name} ({", ".join(booking_columns)})
            SELECT {", ".join(typed(f"b_{name}", bookings.c[name]) for name in booking_columns)}
            WHERE (SELECT count(*) FROM charge) = cardinality({week_list})
            RETURNING id
        ), charged AS (
            INSERT INTO {charged.name} (booking_id, week, seconds)
            SELECT booking.id, asked.week, asked.seconds
            FROM booking, unnest({weeks}) AS asked (week, seconds)
        ), event AS (
            INSERT INTO {outbox.name} ({", ".join(_EVENT_COLUMNS)})
            SELECT {", ".join(typed(f"e_{name}", outbox.c[name]) for name in _EVENT_COLUMNS)}
            FROM booking
        ), answer AS (
            INSERT INTO {keys.name} (scope, key, fingerprint, created_at, status, body)
            SELECT {typed("k_scope", keys.c.scope)}, {typed("k_key", keys.c.key)},
                {typed("k_fingerprint", keys.c.fingerprint)},
                {typed("b_created_at", keys.c.created_at)}, 201, {typed("k_body", keys.c.body)}
            FROM booking
            WHERE {typed("k_key", keys.c.key)} IS NOT NULL
        )
        SELECT (SELECT generation FROM current) AS generation,
               EXISTS (SELECT 1 FROM booking) AS booked
    """  # noqa: S608 - every name is ours; every value travels as a parameter
    clause = text(sql)
    compiled = clause.compile(dialect=dialect)
    return _Statement(clause, compiled.string, tuple(compiled.positiontup or ()))


_TAKE = _take_statement()


def _sqlstate(exc: DBAPIError) -> str | None:
    original = getattr(exc, "orig", None)
    for candidate in (original, getattr(original, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if state:
            return str(state)
    return None


async def weekly_seconds(
    session: AsyncSession, org: str, venue_id: str, weeks: Sequence[date]
) -> dict[date, int]:
    """The seconds of live bookings `org` holds at the venue in each of the weeks."""
    rows = await session.execute(
        select(WeeklyHoursRow.week, WeeklyHoursRow.seconds).where(
            WeeklyHoursRow.org == org,
            WeeklyHoursRow.venue_id == venue_id,
            WeeklyHoursRow.week.in_(weeks),
        )
    )
    return dict(rows.all())


async def _give_back(session: AsyncSession, row: BookingRow) -> None:
    """A booking that ends gives its weeks' charges back to its organisation's share, after its
    slots are freed: the same order as `_TAKE` (see there)."""
    given = (
        await session.execute(
            delete(ChargeRow)
            .where(ChargeRow.booking_id == row.id)
            .returning(ChargeRow.week, ChargeRow.seconds)
        )
    ).all()
    if given:
        counters = Base.metadata.tables["weekly_hours"]
        await session.execute(
            update(counters)
            .where(
                counters.c.org == row.org,
                counters.c.venue_id == row.venue_id,
                counters.c.week == bindparam("charged_week"),
            )
            .values(seconds=counters.c.seconds - bindparam("charged_seconds")),
            # In week order, as `_TAKE` charges them, so two endings cannot deadlock either.
            [{"charged_week": week, "charged_seconds": seconds} for week, seconds in sorted(given)],
        )


async def set_status(
    session: AsyncSession,
    row: BookingRow,
    status: Status,
    *,
    reason: str | None,
    actor: str,
    now: datetime,
) -> Booking:
    """Move a booking on (by `actor`, `domain.bookings.actor_of`); an ending frees its slots at
    once."""
    row.status = status.value
    touch(row, now)
    if reason is not None:
        row.reason = reason
    if status not in LIVE:
        await session.execute(
            update(SlotRow).where(SlotRow.booking_id == row.id).values(live=False)
        )
        await _give_back(session, row)
    event = {
        Status.CONFIRMED: "booking.confirmed",
        Status.CANCELLED: "booking.cancelled",
        Status.REJECTED: "booking.rejected",
    }[status]
    told = msgspec.structs.replace(row.changed(), actor=actor, reason=reason)
    await publish(session, tables, source=SOURCE, type=event, data=told, now=now)
    return row.to_domain()


async def record_attendance(
    session: AsyncSession, row: BookingRow, attended: int, *, now: datetime
) -> Booking:
    row.attended = attended
    touch(row, now)
    data = {**msgspec.to_builtins(row.changed()), "attended": attended}
    await publish(session, tables, source=SOURCE, type="booking.attended", data=data, now=now)
    return row.to_domain()


async def list_bookings(
    session: AsyncSession,
    *,
    org: str | None,
    venue_org: str | None,
    resource_id: str | None,
    venue_id: str | None,
    window: Interval | None,
    status: Status | None,
    after: str | None,
    limit: int,
    hold: bool | None = None,
) -> list[Booking]:
    query = select(BookingRow).order_by(BookingRow.id).limit(limit + 1)
    if org is not None:
        # A venue manager also sees the bookings at its venues; anyone else its own only.
        mine = BookingRow.org == org
        query = query.where(or_(mine, BookingRow.venue_org == venue_org) if venue_org else mine)
    if resource_id is not None:
        query = query.where(
            BookingRow.id.in_(
                select(SlotRow.booking_id).where(SlotRow.resource_id == resource_id, _OWN)
            )
        )
    if venue_id is not None:
        query = query.where(BookingRow.venue_id == venue_id)
    if window is not None:
        query = query.where(BookingRow.start_at < window.end, BookingRow.end_at > window.start)
    if status is not None:
        query = query.where(BookingRow.status == status.value)
    if hold is not None:
        query = query.where(BookingRow.hold.is_(hold))
    if after is not None:
        query = query.where(BookingRow.id > after)
    return [row.to_domain() for row in (await session.scalars(query)).all()]


async def live_slots(
    session: AsyncSession, resource_ids: Sequence[str], window: Interval
) -> dict[str, list[Held]]:
    """The live claims on each resource that come near `window` (bookings of it, of its wholes
    and of its parts): their buffers, before and after, may reach into it."""
    rows = await session.execute(
        select(SlotRow.resource_id, SlotRow.start_at, SlotRow.end_at, SlotRow.reach)
        .where(
            SlotRow.live,
            SlotRow.resource_id.in_(resource_ids),
            # A booking just after the window still keeps its buffer's worth of it.
            SlotRow.blocked_from < window.end + LONGEST_BUFFER,
            SlotRow.blocked_from > window.start - LONGEST_BLOCK,
            SlotRow.blocked_until > window.start,
        )
        .order_by(SlotRow.resource_id, SlotRow.start_at)
    )
    found: dict[str, list[Held]] = {resource_id: [] for resource_id in resource_ids}
    for resource_id, start, end, reach in rows:
        found[resource_id].append(Held(Interval(start, end), Reach(reach)))
    return found


async def resource_bookings(
    session: AsyncSession, resource_id: str, *, since: datetime, limit: int
) -> list[BookingRow]:
    """A resource's bookings from `since` on, for its calendar feed."""
    query = (
        select(BookingRow)
        .join(SlotRow, SlotRow.booking_id == BookingRow.id)
        .where(SlotRow.resource_id == resource_id, _OWN, BookingRow.end_at > since)
        .order_by(BookingRow.start_at)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def future_series_rows(
    session: AsyncSession, series_id: str, now: datetime
) -> list[BookingRow]:
    """The series' live occurrences still to come, held (PostgreSQL) until the transaction ends,
    like any booking about to change."""
    query = (
        select(BookingRow)
        .where(
            BookingRow.series_id == series_id,
            BookingRow.start_at > now,
            BookingRow.status.in_(LIVE_VALUES),
        )
        .order_by(BookingRow.start_at, BookingRow.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return list((await session.scalars(query)).all())


async def series_exists(session: AsyncSession, series_id: str) -> BookingRow | None:
    return await session.scalar(
        select(BookingRow).where(BookingRow.series_id == series_id).limit(1)
    )


async def future_bookings_of(
    session: AsyncSession, resource_ids: Sequence[str], now: datetime
) -> list[BookingRow]:
    """Live bookings holding any of the resources that have not ended yet."""
    query = select(BookingRow).where(
        BookingRow.id.in_(
            select(SlotRow.booking_id).where(
                SlotRow.live, _OWN, SlotRow.resource_id.in_(resource_ids), SlotRow.end_at > now
            )
        )
    )
    return list((await session.scalars(query)).all())


async def flag_outside_hours(
    session: AsyncSession, flags: dict[str, bool], *, now: datetime
) -> list[str]:
    """Set each booking's `outside_opening_hours`; tell the venue of each live one newly outside.

    The bookings whose flag changes are read again and held (PostgreSQL) first: a cancel or an
    approval may have moved one since it was listed, and each change must raise the version the
    other left, never reuse it.
    """
    changing = sorted(
        [
            booking_id
            for booking_id, outside in flags.items()
            # Listed earlier in this session: found in it, without a query.
            if (listed := await session.get(BookingRow, booking_id)) is not None
            and listed.outside_opening_hours != outside
        ]
    )
    newly: list[str] = []
    for first in range(0, len(changing), _HELD_AT_ONCE):
        query = (
            select(BookingRow)
            .where(BookingRow.id.in_(changing[first : first + _HELD_AT_ONCE]))
            .order_by(BookingRow.id)
            .execution_options(populate_existing=True)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        for row in (await session.scalars(query)).all():
            outside = flags[row.id]
            if row.outside_opening_hours == outside or row.status not in LIVE_VALUES:
                continue
            row.outside_opening_hours = outside
            touch(row, now)
            if outside:
                newly.append(row.id)
                await publish(
                    session,
                    tables,
                    source=SOURCE,
                    type="booking.outside_opening_hours",
                    data=row.changed(),
                    now=now,
                )
    return newly


# Bookings read again and held per query: well inside both databases' limit on parameters.
_HELD_AT_ONCE = 1000


async def resources_with_future_slots(
    session: AsyncSession, venue_id: str, now: datetime
) -> list[str]:
    rows = await session.scalars(
        select(SlotRow.resource_id)
        .join(BookingRow, BookingRow.id == SlotRow.booking_id)
        .where(BookingRow.venue_id == venue_id, SlotRow.live, _OWN, SlotRow.end_at > now)
        .distinct()
    )
    return list(rows)
