"""The reports' SQL: utilisation and heatmap sums over booking's one replica of the catalogue
(`catalogue.store`: its resources, areas and open pieces) and the bookings.

Every figure is summed by the database. Open seconds are the replica's pieces clipped to the
range. Booked seconds are, for each confirmed booking's slot, the length of slot ∩ piece ∩ range
over the pieces of its resource: pieces of one resource are disjoint and confirmed slots of one
resource never overlap, so the sum is exact and never exceeds the open time. A slot meets only the
pieces of the UTC days it spans, so it reads them from the pieces' primary key (resource, day) in
one short range, instead of comparing instants with every piece of its resource.

Divisible halls (`domain.halls`): a room's booked time is its own bookings and those of its
wholes (its `own` and `part` slots, which never overlap each other), never a booking of one of its
parts. A resource row reports each room so; every other grouping sums only the smallest parts (the
resources without parts), so a booking of a hall counts once, through its halves, and the hall's
open hours are not counted beside its halves'.

Grouping happens after the heavy join, per resource (or per venue, for booking counts, since a
booking of two resources is still one booking), so areas, kinds and venues cost little more.
The two dialects differ only in the small functions compiled below.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement, ReturnTypeFromArgs

from services.booking.catalogue.store import AREAS, GENERATIONS, PIECES, RESOURCES
from services.booking.domain.bookings import Status
from services.booking.domain.halls import Reach
from services.booking.domain.reports import (
    HOURS,
    GroupBy,
    GroupTotals,
    HeatmapCell,
    utc_day,
)
from services.booking.metadata import Base
from services.booking.store import BookingRow, SlotRow
from shared.contracts import LONGEST_BOOKING_MINUTES
from shared.db import UTCDateTime
from shared.time import Interval

SLOTS = Base.metadata.tables[SlotRow.__tablename__]
BOOKINGS = Base.metadata.tables[BookingRow.__tablename__]
LONGEST_BOOKING = timedelta(minutes=LONGEST_BOOKING_MINUTES)
CONFIRMED = Status.CONFIRMED.value
PENDING = Status.PENDING.value


class Scope(msgspec.Struct, frozen=True):
    """Which resources a report covers: a venue manager's organisation, a venue, an area's
    subtree (`/root/.../area/`); None is no limit."""

    owner_org: str | None = None
    venue_id: str | None = None
    area_path: str | None = None


# The dialects' differences


class seconds_between(FunctionElement[float]):  # noqa: N801 - reads as the SQL function it is
    """Seconds from the first instant to the second."""

    type = Float()
    inherit_cache = True


@compiles(seconds_between, "postgresql")
def _seconds_postgresql(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"EXTRACT(EPOCH FROM ({end} - {start}))"


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(unixepoch({end}) - unixepoch({start}))"


class day_of(FunctionElement[int]):  # noqa: N801 - reads as the SQL function it is
    """The UTC day of an instant, counted from 1970-01-01 (`domain.reports.utc_day`)."""

    type = Integer()
    inherit_cache = True


@compiles(day_of, "postgresql")
def _day_postgresql(element: day_of, compiler: SQLCompiler, **kw: Any) -> str:
    (instant,) = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(CAST(timezone('UTC', {instant}) AS DATE) - DATE '1970-01-01')"


@compiles(day_of, "sqlite")
def _day_sqlite(element: day_of, compiler: SQLCompiler, **kw: Any) -> str:
    (instant,) = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"(unixepoch({instant}) / 86400)"


class greatest(ReturnTypeFromArgs[Any]):  # noqa: N801 - reads as the SQL function it is
    inherit_cache = True


class least(ReturnTypeFromArgs[Any]):  # noqa: N801 - reads as the SQL function it is
    inherit_cache = True


@compiles(greatest, "sqlite")
def _greatest_sqlite(element: greatest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"max({compiler.process(element.clause_expr.element, **kw)})"


@compiles(least, "sqlite")
def _least_sqlite(element: least, compiler: SQLCompiler, **kw: Any) -> str:
    return f"min({compiler.process(element.clause_expr.element, **kw)})"


# What the reports' big statements need of PostgreSQL, for their length only: compiling them
# just in time cost more than it saved (1.9 s of a 5 s year's report), and a year's slots need
# more than the default 4 MB of working memory for their hash joins to stay in memory.
_BULK_SETTINGS = {"jit": "off", "work_mem": "64MB"}


async def _bulk_read(session: AsyncSession, query: Select[Any]) -> Sequence[Row[Any]]:
    """The rows of one big read, PostgreSQL tuned for it on the session's connection and reset
    after it."""
    tuned = session.get_bind().dialect.name == "postgresql"
    if tuned:
        for name, value in _BULK_SETTINGS.items():
            await session.execute(text(f"SET {name} = '{value}'"))
    try:
        rows: Sequence[Row[Any]] = (await session.execute(query)).all()
    finally:
        if tuned:
            for name in _BULK_SETTINGS:
                await session.execute(text(f"RESET {name}"))
    return rows


def _numbers(name: str, count: int) -> Any:
    """0 .. count-1 as a CTE of one column `n` (SQLite names no columns of a VALUES alias)."""
    return union_all(
        *(select(literal_column(str(n), Integer).label("n")) for n in range(count))
    ).cte(name)


# Reading the reports


def _within(scope: Scope, scoped: Any, resource_id: Any) -> list[ColumnElement[bool]]:
    """Keep `resource_id` among the scope's resources. A scope without limits holds every
    resource the replica does, and pieces exist only for those, so it needs no condition;
    one there only misled PostgreSQL's estimates (into an index probe for every slot)."""
    if scope == Scope():
        return []
    return [resource_id.in_(select(scoped.c.resource_id))]


def _smallest(resource_id: Any, smallest_only: bool) -> list[ColumnElement[bool]]:
    """Keep `resource_id` among the smallest parts, where `smallest_only` (a city has few
    divided halls, so the wholes are the short list)."""
    if not smallest_only:
        return []
    return [resource_id.not_in(select(RESOURCES.c.resource_id).where(~RESOURCES.c.smallest))]


def _scoped(scope: Scope) -> Any:
    query = select(RESOURCES)
    if scope.owner_org is not None:
        query = query.where(RESOURCES.c.owner_org == scope.owner_org)
    if scope.venue_id is not None:
        query = query.where(RESOURCES.c.venue_id == scope.venue_id)
    if scope.area_path is not None:
        query = query.where(RESOURCES.c.area_path.startswith(scope.area_path, autoescape=True))
    return query.cte("scoped")


class _Range:
    """The report's `[from, to)` as typed parameters, and the day keys around it."""

    def __init__(self, span: Interval) -> None:
        self.start = bindparam("range_start", span.start, type_=UTCDateTime)
        self.end = bindparam("range_end", span.end, type_=UTCDateTime)
        self.earliest_slot = bindparam(
            "earliest_slot", span.start - LONGEST_BOOKING, type_=UTCDateTime
        )
        self.first_day = utc_day(span.start)
        self.last_day = utc_day(span.end)

    def pieces(self, *, by_day: bool = True) -> ColumnElement[bool]:
        """Pieces that meet the range; `by_day` bounds their day too, for an index to read a
        range of days (but not where a join fixes the day: SQLite would take the range over
        the join's equality and read a year of pieces for every slot)."""
        meets = and_(PIECES.c.start_at < self.end, PIECES.c.end_at > self.start)
        return and_(PIECES.c.day.between(self.first_day, self.last_day), meets) if by_day else meets


def _open_seconds(range_: _Range) -> ColumnElement[float]:
    return seconds_between(
        greatest(PIECES.c.start_at, range_.start), least(PIECES.c.end_at, range_.end)
    )


def _slots_meeting(range_: _Range) -> list[ColumnElement[bool]]:
    """Live slots (of pending or confirmed bookings) that meet the range and take their room
    whole: not a `whole` slot, which a booking of a part holds on the room it is part of."""
    return [
        SLOTS.c.live,
        SLOTS.c.reach != Reach.WHOLE.value,
        SLOTS.c.start_at < range_.end,
        SLOTS.c.end_at > range_.start,
        # A bound below as well, so an index on start times can be read as a range.
        SLOTS.c.start_at > range_.earliest_slot,
    ]


def _confirmed_slots(scope: Scope, scoped: Any, range_: _Range) -> list[ColumnElement[bool]]:
    """Slots of confirmed bookings of the resources in scope that meet the range (with
    `bookings` joined)."""
    return [
        *_slots_meeting(range_),
        BOOKINGS.c.status == CONFIRMED,
        *_within(scope, scoped, SLOTS.c.resource_id),
    ]


def _booked_pairs(
    scope: Scope,
    scoped: Any,
    range_: _Range,
    *,
    by_programme: bool,
    dialect: str,
    smallest_only: bool,
) -> Any:
    """One row per confirmed slot and open piece in scope of the same resource on a UTC day the
    slot spans: their overlap clipped to the range (`start`, `end`; `start >= end` where they do
    not meet), the piece's `weekday`, `wall_second` and `piece_start`, and the booking's
    `programme` where `by_programme`; `dialect` picks how pending bookings are left out; only
    the smallest parts' slots where `smallest_only`.

    Each slot reads the pieces of its resource and its few days from the pieces' primary key:
    one short index range per slot on both databases. Without programmes, confirmed is live and
    not pending, the few pending bookings set apart once, instead of every slot looking up its
    booking (3 of SQLite's 8 seconds for a year). Whether a pair overlaps is left to the sums
    (clamped at zero), not put in the join: a range condition there made SQLite read a year of
    pieces for every slot, and PostgreSQL guess its rows badly.
    """
    if by_programme:
        slots: Any = SLOTS.join(BOOKINGS, BOOKINGS.c.id == SLOTS.c.booking_id)
        extra: tuple[Any, ...] = (BOOKINGS.c.programme,)
        confirmed: ColumnElement[bool] = BOOKINGS.c.status == CONFIRMED
    else:
        pending = select(BOOKINGS.c.id).where(BOOKINGS.c.status == PENDING)
        extra = ()
        if dialect == "postgresql":
            # An anti-join, hashed and run in parallel; NOT IN would hash too, but a hashed
            # subplan keeps the whole plan serial.
            held = pending.subquery("pending")
            slots = SLOTS.outerjoin(held, held.c.id == SLOTS.c.booking_id)
            confirmed = held.c.id.is_(None)
        else:
            # SQLite keeps the ids of NOT IN in an index in memory; as an outer join it read
            # them three times slower.
            slots = SLOTS
            confirmed = SLOTS.c.booking_id.not_in(pending)
    return (
        select(
            SLOTS.c.resource_id,
            *extra,
            PIECES.c.weekday,
            PIECES.c.wall_second,
            PIECES.c.start_at.label("piece_start"),
            greatest(SLOTS.c.start_at, PIECES.c.start_at, range_.start).label("start"),
            least(SLOTS.c.end_at, PIECES.c.end_at, range_.end).label("end"),
        )
        .select_from(
            slots.join(
                PIECES,
                and_(
                    PIECES.c.resource_id == SLOTS.c.resource_id,
                    PIECES.c.day.between(day_of(SLOTS.c.start_at), day_of(SLOTS.c.end_at)),
                ),
            )
        )
        .where(
            *_slots_meeting(range_),
            confirmed,
            range_.pieces(by_day=False),
            *_within(scope, scoped, PIECES.c.resource_id),
            *_smallest(PIECES.c.resource_id, smallest_only),
        )
        .subquery("booked_pairs")
    )


def _members(group_by: GroupBy, scoped: Any, scope: Scope) -> Any:
    """(resource_id, venue_id, key, label): the groups each resource in scope counts in."""
    columns = (scoped.c.resource_id, scoped.c.venue_id)
    if group_by is GroupBy.RESOURCE:
        return select(*columns, scoped.c.resource_id.label("key"), scoped.c.name.label("label"))
    if group_by is GroupBy.VENUE:
        return select(*columns, scoped.c.venue_id.label("key"), scoped.c.venue_name.label("label"))
    if group_by is GroupBy.KIND:
        kind = scoped.c.venue_kind
        return select(*columns, kind.label("key"), kind.label("label"))
    # An area totals its whole subtree: a resource counts in every area on its venue's path.
    query = select(*columns, AREAS.c.area_id.label("key"), AREAS.c.name.label("label")).join(
        AREAS, scoped.c.area_path.startswith(AREAS.c.path)
    )
    if scope.area_path is not None:
        query = query.where(AREAS.c.path.startswith(scope.area_path, autoescape=True))
    return query


def _booking_totals() -> list[Any]:
    return [
        func.count().label("bookings"),
        func.coalesce(func.sum(BOOKINGS.c.attendees), 0).label("attendees"),
        func.coalesce(func.sum(BOOKINGS.c.attended), 0).label("attended"),
    ]


def _confirmed_bookings(range_: _Range) -> ColumnElement[bool]:
    return and_(
        BOOKINGS.c.status == CONFIRMED,
        BOOKINGS.c.start_at < range_.end,
        BOOKINGS.c.end_at > range_.start,
    )


async def utilisation(
    session: AsyncSession, span: Interval, scope: Scope, group_by: GroupBy
) -> list[GroupTotals]:
    """Each group's open and booked seconds and confirmed bookings over `span`, by label."""
    range_ = _Range(span)
    scoped = _scoped(scope)
    smallest_only = group_by is not GroupBy.RESOURCE
    open_by_resource = (
        select(PIECES.c.resource_id, func.sum(_open_seconds(range_)).label("seconds"))
        .where(
            range_.pieces(),
            *_within(scope, scoped, PIECES.c.resource_id),
            *_smallest(PIECES.c.resource_id, smallest_only),
        )
        .group_by(PIECES.c.resource_id)
        .cte("open_by_resource")
    )
    by_programme = group_by is GroupBy.PROGRAMME
    pairs = _booked_pairs(
        scope,
        scoped,
        range_,
        by_programme=by_programme,
        dialect=session.get_bind().dialect.name,
        smallest_only=smallest_only,
    )
    per = (pairs.c.resource_id, pairs.c.programme) if by_programme else (pairs.c.resource_id,)
    booked = (
        select(
            *per,
            func.sum(greatest(seconds_between(pairs.c.start, pairs.c.end), 0)).label("seconds"),
        )
        .group_by(*per)
        .cte("booked")
    )
    if by_programme:
        query = _by_programme(scoped, open_by_resource, booked, range_)
    else:
        query = _by_catalogue(
            group_by=group_by,
            scope=scope,
            scoped=scoped,
            open_by_resource=open_by_resource,
            booked=booked,
            range_=range_,
        )
    rows = await _bulk_read(session, query)
    return [
        GroupTotals(
            key=row.key,
            label=row.label,
            open_seconds=float(row.open_seconds),
            booked_seconds=float(row.booked_seconds),
            bookings=int(row.bookings),
            attendees=int(row.attendees),
            attended=int(row.attended),
        )
        for row in rows
    ]


def _by_catalogue(
    *,
    group_by: GroupBy,
    scope: Scope,
    scoped: Any,
    open_by_resource: Any,
    booked: Any,
    range_: _Range,
) -> Select[Any]:
    members = _members(group_by, scoped, scope).cte("members")
    open_seconds = (
        select(members.c.key, func.sum(open_by_resource.c.seconds).label("seconds"))
        .join(open_by_resource, open_by_resource.c.resource_id == members.c.resource_id)
        .group_by(members.c.key)
        .subquery("open_seconds")
    )
    booked_seconds = (
        select(members.c.key, func.sum(booked.c.seconds).label("seconds"))
        .join(booked, booked.c.resource_id == members.c.resource_id)
        .group_by(members.c.key)
        .subquery("booked_seconds")
    )
    if group_by is GroupBy.RESOURCE:
        counted = (
            select(SLOTS.c.resource_id.label("key"), *_booking_totals())
            .join(BOOKINGS, BOOKINGS.c.id == SLOTS.c.booking_id)
            .where(*_confirmed_slots(scope, scoped, range_))
            .group_by(SLOTS.c.resource_id)
            .subquery("counted")
        )
    else:
        # Counted per booking, through its venue: a booking of a room and a projector is one.
        # Summed per venue first, so only a row a venue meets the groups.
        per_venue = (
            select(BOOKINGS.c.venue_id, *_booking_totals())
            .where(_confirmed_bookings(range_))
            .group_by(BOOKINGS.c.venue_id)
            .subquery("per_venue")
        )
        venue_members = select(members.c.venue_id, members.c.key).distinct().subquery()
        counted = (
            select(
                venue_members.c.key,
                *(
                    func.sum(per_venue.c[name]).label(name)
                    for name in ("bookings", "attendees", "attended")
                ),
            )
            .join(venue_members, venue_members.c.venue_id == per_venue.c.venue_id)
            .group_by(venue_members.c.key)
            .subquery("counted")
        )
    groups = select(members.c.key, members.c.label).distinct().subquery("groups")
    return (
        select(
            groups.c.key,
            groups.c.label,
            func.coalesce(open_seconds.c.seconds, 0).label("open_seconds"),
            func.coalesce(booked_seconds.c.seconds, 0).label("booked_seconds"),
            func.coalesce(counted.c.bookings, 0).label("bookings"),
            func.coalesce(counted.c.attendees, 0).label("attendees"),
            func.coalesce(counted.c.attended, 0).label("attended"),
        )
        .outerjoin(open_seconds, open_seconds.c.key == groups.c.key)
        .outerjoin(booked_seconds, booked_seconds.c.key == groups.c.key)
        .outerjoin(counted, counted.c.key == groups.c.key)
        .order_by(groups.c.label, groups.c.key)
    )


def _by_programme(scoped: Any, open_by_resource: Any, booked: Any, range_: _Range) -> Select[Any]:
    """Per programme: its booked time over all the open time in scope (so the rows' ratios add
    up to the whole scope's), one row for each programme with confirmed bookings in the range
    (a booking without one under the key None)."""
    all_open = select(func.coalesce(func.sum(open_by_resource.c.seconds), 0)).scalar_subquery()
    booked_seconds = (
        select(booked.c.programme, func.sum(booked.c.seconds).label("seconds"))
        .group_by(booked.c.programme)
        .subquery("booked_seconds")
    )
    counted = (
        select(BOOKINGS.c.programme, *_booking_totals())
        .where(
            _confirmed_bookings(range_),
            BOOKINGS.c.venue_id.in_(select(scoped.c.venue_id)),
        )
        .group_by(BOOKINGS.c.programme)
        .subquery("counted")
    )
    return (
        select(
            counted.c.programme.label("key"),
            counted.c.programme.label("label"),
            all_open.label("open_seconds"),
            func.coalesce(booked_seconds.c.seconds, 0).label("booked_seconds"),
            counted.c.bookings,
            counted.c.attendees,
            counted.c.attended,
        )
        .outerjoin(
            booked_seconds, booked_seconds.c.programme.is_not_distinct_from(counted.c.programme)
        )
        .order_by(counted.c.programme.nulls_last())
    )


async def heatmap(session: AsyncSession, span: Interval, scope: Scope) -> list[HeatmapCell]:
    """Open and booked seconds in each (ISO weekday, local hour) with any open time.

    A piece's wall clock runs with real time from its `wall_second`, so the local hour of any
    instant in it is arithmetic; each venue's pieces carry its own zone's weekday and hours.
    """
    range_ = _Range(span)
    scoped = _scoped(scope)
    hours = _numbers("hours", HOURS)
    hour_start = hours.c.n * 3600
    hour_end = hour_start + 3600

    def on_the_clock(pieces: Any, name: str) -> Any:
        """Each piece's [start, end) as seconds of its wall clock, computed once per piece:
        materialized, so the join with the day's hours does arithmetic, not date functions,
        on each of its pieces-times-24 rows."""

        def wall(instant: Any) -> Any:
            return pieces.c.wall_second + seconds_between(pieces.c.piece_start, instant)

        return (
            select(
                pieces.c.weekday,
                wall(pieces.c.start).label("wall_start"),
                wall(pieces.c.end).label("wall_end"),
            )
            .cte(name)
            .prefix_with("MATERIALIZED")
        )

    open_pieces = (
        select(
            PIECES.c.weekday,
            PIECES.c.wall_second,
            PIECES.c.start_at.label("piece_start"),
            greatest(PIECES.c.start_at, range_.start).label("start"),
            least(PIECES.c.end_at, range_.end).label("end"),
        )
        .where(
            range_.pieces(),
            *_within(scope, scoped, PIECES.c.resource_id),
            *_smallest(PIECES.c.resource_id, True),
        )
        .subquery("open_pieces")
    )

    def cells(pieces: Any, name: str) -> Any:
        clock = on_the_clock(pieces, f"{name}_clock")
        seconds = least(clock.c.wall_end, hour_end) - greatest(clock.c.wall_start, hour_start)
        meets = and_(clock.c.wall_start < hour_end, clock.c.wall_end > hour_start)
        return (
            select(clock.c.weekday, hours.c.n.label("hour"), func.sum(seconds).label("seconds"))
            .select_from(clock.join(hours, meets))
            .group_by(clock.c.weekday, hours.c.n)
            .subquery(name)
        )

    pairs = _booked_pairs(
        scope,
        scoped,
        range_,
        by_programme=False,
        dialect=session.get_bind().dialect.name,
        smallest_only=True,
    )
    overlapping = select(pairs).where(pairs.c.start < pairs.c.end).subquery("overlapping")
    open_cells = cells(open_pieces, "open_cells")
    booked_cells = cells(overlapping, "booked_cells")
    query = select(
        open_cells.c.weekday,
        open_cells.c.hour,
        open_cells.c.seconds,
        func.coalesce(booked_cells.c.seconds, 0).label("booked"),
    ).outerjoin(
        booked_cells,
        and_(
            booked_cells.c.weekday == open_cells.c.weekday,
            booked_cells.c.hour == open_cells.c.hour,
        ),
    )
    rows = await _bulk_read(session, query)
    return [
        HeatmapCell(
            weekday=row.weekday,
            hour=row.hour,
            open_seconds=float(row.seconds),
            booked_seconds=float(row.booked),
        )
        for row in rows
    ]


# A report's scope


async def scope_name(session: AsyncSession, scope: Scope) -> str | None:
    """The name of the venue or area a scope is limited to, if it is."""
    if scope.venue_id is not None:
        return await session.scalar(
            select(RESOURCES.c.venue_name).where(RESOURCES.c.venue_id == scope.venue_id).limit(1)
        )
    if scope.area_path is not None:
        area_id = scope.area_path.rstrip("/").rsplit("/", 1)[-1]
        return await session.scalar(select(AREAS.c.name).where(AREAS.c.area_id == area_id))
    return None


async def venues_needing_work(session: AsyncSession, scope: Scope, days: Interval) -> list[str]:
    """Venues in scope with a resource whose open hours do not cover `days`, or whose facts
    or hours were read at an older registry generation than the venue's current one."""
    generation = func.coalesce(GENERATIONS.c.generation, 0)
    scoped = _scoped(scope)
    rows = await session.scalars(
        select(scoped.c.venue_id)
        .outerjoin(GENERATIONS, GENERATIONS.c.venue_id == scoped.c.venue_id)
        .where(
            or_(
                scoped.c.covered_from.is_(None),
                scoped.c.covered_from > days.start,
                scoped.c.covered_until < days.end,
                scoped.c.generation != generation,
                scoped.c.hours_generation != generation,
            )
        )
        .distinct()
        .order_by(scoped.c.venue_id)
    )
    return list(rows)
