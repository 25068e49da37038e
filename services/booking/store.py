"""The booking service's database: bookings and the slots that make double booking impossible
(its replica of the registry is `catalogue.store`, on the same `metadata.Base`).

A booking holds one slot row per resource it claims (`domain.halls`: each booked resource, and the
wholes and parts of a booked room, each with its `reach`). A slot's `[blocked_from, blocked_until)`
is the booking plus its resource's turnover buffer; on PostgreSQL two exclusion constraints over
live slots refuse any overlap of two `own` slots of a resource (migration 0001) and of two slots
of a resource with different reaches (migration 0004), whoever inserts them and however many
replicas run. On SQLite the write transaction is `BEGIN IMMEDIATE`, so the check below and the
insert after it cannot interleave with another writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    and_,
    delete,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from services.booking.catalogue.store import RegistryGenerationRow
from services.booking.domain.bookings import LIVE, Booking, Status
from services.booking.domain.halls import Held, Reach
from services.booking.metadata import Base, tables
from shared.config import ServiceName
from shared.contracts import LONGEST_BLOCK, LONGEST_BUFFER, BookingChanged, Programme
from shared.db import Database, UTCDateTime, database_outage
from shared.errors import Conflict, FieldError, NotFound, ServiceUnavailable
from shared.outbox import outbox_row, publish
from shared.time import Interval

# PostgreSQL's SQLSTATEs: two inserters deadlocked; a slot held for a booking not inserted.
_DEADLOCK = "40P01"
_FOREIGN_KEY_VIOLATION = "23503"


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
_INSERT_SLOT_UNLESS_TAKEN = (
    pg_insert(Base.metadata.tables["booking_slots"])
    .on_conflict_do_nothing()
    .returning(Base.metadata.tables["booking_slots"].c.resource_id)
)


async def insert_booking(
    session: AsyncSession, row: NewBooking, plans: Sequence[SlotPlan], *, now: datetime
) -> Booking:
    """Store a booking, its slots and its event, or refuse with 409 naming what is in the way.

    SQLite: the check and the insert share one `BEGIN IMMEDIATE` transaction, so no other writer
    comes between them. PostgreSQL: the exclusion constraint decides, however many replicas insert
    at once. Its slots go in with ON CONFLICT DO NOTHING (which waits for a racing inserter to
    finish, then yields to it), so a refused slot leaves the transaction usable: the booking is
    taken back and the winner named on the same connection, and a series goes on with its other
    occurrences.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    if not postgres:
        found = await conflicts(session, plans)
        if found:
            raise conflict_error(found)
    live = row.status in LIVE_VALUES
    slots = [
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
        for plan in sorted(plans, key=lambda plan: plan.resource_id)
    ]
    # Core statements with the parameters apart, so the compiled SQL is cached: this is the hot
    # path of the service, and the ORM's unit of work would cost more than the database does.
    await session.execute(_INSERT_BOOKING, row.values())
    if not postgres:
        await session.execute(_INSERT_SLOT, slots)
    else:
        try:
            held = (await session.execute(_INSERT_SLOT_UNLESS_TAKEN, slots)).all()
        except DBAPIError as exc:
            if _sqlstate(exc) != _DEADLOCK:
                raise
            # The transaction is spent; the client may simply try again.
            raise Conflict("another booking of these resources was being made; try again") from exc
        if len(held) < len(slots):
            await session.execute(delete(BookingRow).where(BookingRow.id == row.id))
            raise conflict_error(await conflicts(session, plans))
    await publish(
        session, tables, source=SOURCE, type="booking.created", data=changed_of(row), now=now
    )
    return booking_of(row)


class Stale(Exception):
    """What this process holds of the venue is older than the registry's last event about it."""


async def insert_booking_at_once(
    database: Database,
    row: NewBooking,
    plans: Sequence[SlotPlan],
    *,
    generation: int,
    now: datetime,
) -> Booking:
    """`insert_booking` for PostgreSQL as one statement, and one round trip: the hot path.

    The statement holds the slots (ON CONFLICT DO NOTHING: the exclusion constraint decides,
    waiting for a racing inserter to finish), then inserts the booking and its event only if every
    slot was held and the venue's registry generation is still the one the rules were checked
    against. A slot held for a booking that is not inserted breaks its foreign key at the end of
    the statement, so nothing of a refused booking stays. Being one statement it needs no
    transaction of its own, and it runs on the driver's connection with a prepared statement:
    this path is what the service's throughput is.
    `Stale` when the generation moved; 409 naming the winner when a slot was taken.
    """
    event = outbox_row(source=SOURCE, type="booking.created", data=changed_of(row), now=now)
    booking = list(msgspec.structs.astuple(row))
    booking[_RESOURCE_IDS_AT] = msgspec.json.encode(row.resource_ids).decode()
    # In the order `_at_once_statement` numbers its parameters.
    arguments = [
        *booking,
        *(event[column] for column in _EVENT_COLUMNS),
        generation,
        row.start_at,
        row.end_at,
        row.status in LIVE_VALUES,
    ]
    for plan in sorted(plans, key=lambda plan: plan.resource_id):
        arguments += (plan.resource_id, plan.blocked.start, plan.blocked.end, plan.reach.value)
    try:
        async with database.driver() as connection:
            found = await connection.fetchrow(_at_once_statement(len(plans)), *arguments)
    except Exception as exc:
        # Checked first: a connection error is a PostgresError too. A broken connection is
        # dropped, not lent again (`StatementConnections`); the client may try again.
        if database_outage(exc):
            raise ServiceUnavailable(
                "the database does not answer", code="database_unavailable"
            ) from exc
        if not isinstance(exc, asyncpg.PostgresError) or exc.sqlstate not in (
            _FOREIGN_KEY_VIOLATION,
            _DEADLOCK,
        ):
            raise
        found = None
    if found is not None and found["generation"] != generation:
        raise Stale
    if found is None or not found["booked"]:
        async with database.read() as session:
            raise conflict_error(await conflicts(session, plans))
    return booking_of(row)


# The hot path's statement takes a booking's columns in the order of `NewBooking`'s fields, so
# its values go in as they are (`astuple`), with no dict built per booking.
_BOOKING_COLUMNS = tuple(field.name for field in msgspec.structs.fields(NewBooking))
_RESOURCE_IDS_AT = _BOOKING_COLUMNS.index("resource_ids")
_EVENT_COLUMNS = ("event_id", "type", "payload", "created_at")


@cache
def _at_once_statement(slot_count: int) -> str:
    """The statement for bookings of `slot_count` resources. Its parameters, in order: the
    booking's columns (`_BOOKING_COLUMNS`), the event's (`_EVENT_COLUMNS`), the generation, the
    slot's start and end and whether it is live, then each resource, its blocked stretch and the
    slot's reach."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    bookings, slots = BookingRow.__table__, SlotRow.__table__
    outbox = tables.outbox
    if set(_BOOKING_COLUMNS) != set(bookings.columns.keys()):
        raise RuntimeError("NewBooking's fields must be the columns of bookings")
    names = [
        *(f"b_{key}" for key in _BOOKING_COLUMNS),
        *(f"e_{key}" for key in _EVENT_COLUMNS),
        "generation",
        "slot_start",
        "slot_end",
        "slot_live",
        *(f"{part}{n}" for n in range(slot_count) for part in "rfuk"),
    ]

    def typed(name: str, column: Any) -> str:
        # A parameter in a SELECT list or VALUES has no type for PostgreSQL to infer: name it.
        return f"CAST(${names.index(name) + 1} AS {column.type.compile(dialect=dialect)})"

    generation = typed("generation", RegistryGenerationRow.__table__.c.generation)
    values = ", ".join(
        f"({typed(f'r{n}', slots.c.resource_id)}, {typed(f'f{n}', slots.c.blocked_from)}, "
        f"{typed(f'u{n}', slots.c.blocked_until)}, {typed(f'k{n}', slots.c.reach)})"
        for n in range(slot_count)
    )
    booking_id = typed("b_id", bookings.c.id)
    return f"""
        WITH current AS (
            SELECT COALESCE(
                (SELECT generation FROM registry_generations
                 WHERE venue_id = {typed("b_venue_id", bookings.c.venue_id)}), 0
            ) AS generation
        ), slot AS (
            INSERT INTO booking_slots
                (booking_id, resource_id, start_at, end_at, blocked_from, blocked_until, live,
                 reach)
            SELECT {booking_id}, held.resource_id, {typed("slot_start", slots.c.start_at)},
                {typed("slot_end", slots.c.end_at)}, held.blocked_from, held.blocked_until,
                {typed("slot_live", slots.c.live)}, held.reach
            FROM current, (VALUES {values})
                AS held (resource_id, blocked_from, blocked_until, reach)
            WHERE current.generation = {generation}
            ON CONFLICT DO NOTHING
            RETURNING resource_id
        ), booking AS (
            INSERT INTO bookings ({", ".join(_BOOKING_COLUMNS)})
            SELECT {", ".join(typed(f"b_{key}", bookings.c[key]) for key in _BOOKING_COLUMNS)}
            WHERE (SELECT count(*) FROM slot) = {slot_count}
            RETURNING id
        ), event AS (
            INSERT INTO {outbox.name} ({", ".join(_EVENT_COLUMNS)})
            SELECT {", ".join(typed(f"e_{key}", outbox.c[key]) for key in _EVENT_COLUMNS)}
            FROM booking
        )
        SELECT (SELECT generation FROM current) AS generation,
               EXISTS (SELECT 1 FROM booking) AS booked
    """  # noqa: S608 - every name is ours; every value travels as a parameter


def _sqlstate(exc: DBAPIError) -> str | None:
    original = getattr(exc, "orig", None)
    for candidate in (original, getattr(original, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if state:
            return str(state)
    return None


async def serialise_org_at_venue(session: AsyncSession, org: str, venue_id: str) -> None:
    """Until the transaction ends, no other one books for `org` at the venue (PostgreSQL; on
    SQLite the write transaction holds the database already)."""
    if session.get_bind().dialect.name == "postgresql":
        key = func.hashtextextended(f"{org}\x1f{venue_id}", 0)
        await session.execute(select(func.pg_advisory_xact_lock(key)))


async def held_by(
    session: AsyncSession, org: str, venue_id: str, window: Interval
) -> list[Interval]:
    """The live bookings of `org` at the venue that meet `window`."""
    rows = await session.execute(
        select(BookingRow.start_at, BookingRow.end_at).where(
            BookingRow.org == org,
            BookingRow.venue_id == venue_id,
            BookingRow.status.in_(LIVE_VALUES),
            BookingRow.start_at < window.end,
            BookingRow.end_at > window.start,
        )
    )
    return [Interval(start, end) for start, end in rows.all()]


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
