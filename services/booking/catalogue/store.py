"""Booking's one replica of the registry's catalogue, in its own database: each resource with its
venue's facts, the areas, and each resource's resolved open hours over one stretch it covers.

The booking path reads it through `catalogue.reader` (its rules, and its open hours by month); the
reports sum over the same rows (`reports.store`). Every row carries the generation of its venue it
was read at; `registry_generations` has each venue's current one, raised by every registry event
about it, so a row read at an older generation is stale: read again, never trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Integer,
    SmallInteger,
    String,
    Text,
    and_,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from services.booking.clients import RegistryResource, RegistryVenue
from services.booking.domain.bookings import Bookable
from services.booking.domain.reports import OpenPiece, utc_day
from services.booking.metadata import Base
from shared.contracts import ResourceType, Rules
from shared.db import UTCDateTime
from shared.outbox import insert_ignoring_duplicates
from shared.time import Interval, merge


class RegistryGenerationRow(Base):
    """Raised by every registry event about a venue: rows read at older generations are stale."""

    __tablename__ = "registry_generations"

    venue_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)


class ResourceRow(Base):
    """A resource with its venue's facts, as the booking rules and the reports' groupings read
    it, read while its venue's generation was `generation`; and how much of its resolved open
    hours `catalogue_open_hours` holds: `[covered_from, covered_until)`, read while the venue's
    generation was `hours_generation` (the hours are read on their own, and more often)."""

    __tablename__ = "catalogue_resources"

    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(20))
    capacity: Mapped[int | None] = mapped_column(Integer)
    requires_approval: Mapped[bool] = mapped_column(Boolean)
    # `shared.contracts.Rules` and the ids of its direct parts, as JSON.
    rules: Mapped[str] = mapped_column(Text)
    parts: Mapped[str] = mapped_column(Text)
    part_of: Mapped[str | None] = mapped_column(String(36))
    # Has no parts (`domain.halls`): what the reports sum above the level of one resource.
    smallest: Mapped[bool] = mapped_column(Boolean)
    venue_id: Mapped[str] = mapped_column(String(36), index=True)
    venue_name: Mapped[str] = mapped_column(Text)
    venue_kind: Mapped[str] = mapped_column(String(40))
    owner_org: Mapped[str] = mapped_column(String(100), index=True)
    timezone: Mapped[str] = mapped_column(String(64))
    area_id: Mapped[str] = mapped_column(String(36))
    # The venue's area and its ancestors, `/root/.../area/`: a subtree is a prefix.
    area_path: Mapped[str] = mapped_column(Text)
    generation: Mapped[int] = mapped_column(Integer)
    covered_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    covered_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hours_generation: Mapped[int | None] = mapped_column(Integer)


class AreaRow(Base):
    """An area resources are grouped by (areas never move, so a path once read stays true)."""

    __tablename__ = "catalogue_areas"

    area_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)


class OpenPieceRow(Base):
    """A piece of a resource's resolved open time (`domain.reports.OpenPiece`): inside one UTC
    day, one local day and one UTC offset, so bookings join it on (resource, day)."""

    __tablename__ = "catalogue_open_hours"

    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    weekday: Mapped[int] = mapped_column(SmallInteger)
    wall_second: Mapped[int] = mapped_column(Integer)

    __table_args__ = (CheckConstraint("start_at < end_at", name="open_piece_not_empty"),)


class CatalogueListedRow(Base):
    """Present once the whole catalogue was listed from the registry (a report's first need);
    events keep it since."""

    __tablename__ = "catalogue_listed"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    listed_at: Mapped[datetime] = mapped_column(UTCDateTime)


RESOURCES = Base.metadata.tables[ResourceRow.__tablename__]
AREAS = Base.metadata.tables[AreaRow.__tablename__]
PIECES = Base.metadata.tables[OpenPieceRow.__tablename__]
GENERATIONS = Base.metadata.tables[RegistryGenerationRow.__tablename__]
_CURRENT_GENERATION = func.coalesce(GENERATIONS.c.generation, 0)


class VenueReading(msgspec.Struct, frozen=True):
    """What the registry said of a venue, ready to be written: its resources with their area
    path, the areas not yet known, and for some resources open pieces over a new window.
    `venue` None: the venue is gone."""

    venue_id: str
    venue: RegistryVenue | None
    area_path: str = ""
    resources: list[RegistryResource] = []
    new_areas: list[tuple[str, str, str]] = []
    windows: dict[str, Interval] = {}
    pieces: dict[str, list[OpenPiece]] = {}


class ResourceReading(msgspec.Struct, frozen=True):
    """A resource and its venue as the registry gave them, read while the venue's generation
    was `generation`."""

    resource: RegistryResource
    venue: RegistryVenue
    generation: int


class HoursHeld(msgspec.Struct, frozen=True):
    """The stretch of a resource's open hours the replica holds, read at `generation`."""

    covered: Interval
    generation: int

    def stays_beside(self, covered: Interval, generation: int) -> bool:
        """Whether these pieces stay beside new ones that make the resource cover `covered`,
        read at `generation`: read at the same generation, and inside it."""
        return (
            self.generation == generation
            and covered.start <= self.covered.start
            and self.covered.end <= covered.end
        )


# Generations


async def generation(session: AsyncSession, venue_id: str) -> int:
    return (await generations(session, [venue_id])).get(venue_id, 0)


_GENERATIONS = select(GENERATIONS.c.venue_id, GENERATIONS.c.generation).where(
    GENERATIONS.c.venue_id.in_(bindparam("venue_ids", expanding=True))
)


async def generations(session: AsyncSession, venue_ids: Iterable[str]) -> dict[str, int]:
    """How many registry events each venue has had (absent: none yet)."""
    rows = await session.execute(_GENERATIONS, {"venue_ids": list(venue_ids)})
    return {row.venue_id: row.generation for row in rows}


async def all_generations(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(GENERATIONS.c.venue_id, GENERATIONS.c.generation))
    return {row.venue_id: row.generation for row in rows}


async def raise_generation(session: AsyncSession, venue_id: str, *, read_at: int) -> bool:
    """A registry event about the venue: everything read of it before is stale, if its
    generation is still `read_at`, the one its handler read before asking the registry; False,
    and nothing changed, where another event came in between."""
    await session.execute(
        insert_ignoring_duplicates(session, RegistryGenerationRow)
        .values(venue_id=venue_id, generation=0)
        .on_conflict_do_nothing()
    )
    # One statement compares and raises: a racing handler waits on the row, then finds it
    # moved (PostgreSQL re-reads a row it waited on before updating it).
    raised = await session.execute(
        update(RegistryGenerationRow)
        .where(
            RegistryGenerationRow.venue_id == venue_id, RegistryGenerationRow.generation == read_at
        )
        .values(generation=RegistryGenerationRow.generation + 1)
    )
    return bool(raised.rowcount)  # type: ignore[attr-defined]


# What the booking path reads


def _bookable_of_row(row: Any) -> Bookable:
    return Bookable(
        id=row.resource_id,
        venue_id=row.venue_id,
        name=row.name,
        type=ResourceType(row.type),
        capacity=row.capacity,
        requires_approval=row.requires_approval,
        rules=msgspec.json.decode(row.rules, type=Rules),
        owner_org=row.owner_org,
        timezone=row.timezone,
        area_id=row.area_id,
        venue_kind=row.venue_kind,
        part_of=row.part_of,
        parts=msgspec.json.decode(row.parts, type=tuple[str, ...]),
    )


async def bookables(
    session: AsyncSession, resource_ids: Sequence[str]
) -> dict[str, tuple[Bookable, int]]:
    """Those of the resources held at their venue's current generation, by id, with it."""
    rows = await session.execute(
        select(RESOURCES)
        .outerjoin(GENERATIONS, GENERATIONS.c.venue_id == RESOURCES.c.venue_id)
        .where(
            RESOURCES.c.resource_id.in_(resource_ids),
            RESOURCES.c.generation == _CURRENT_GENERATION,
        )
    )
    return {row.resource_id: (_bookable_of_row(row), row.generation) for row in rows}


async def open_hours(
    session: AsyncSession, resource_ids: Sequence[str], window: Interval
) -> dict[str, tuple[int, list[Interval]]]:
    """(generation, open intervals inside `window`) of those of the resources whose held hours
    cover `window` at their venue's current generation.

    One statement, so the pieces are those of the coverage it read even while a writer
    replaces them."""
    pieces = and_(
        PIECES.c.resource_id == RESOURCES.c.resource_id,
        PIECES.c.day.between(utc_day(window.start), utc_day(window.end)),
        PIECES.c.start_at < window.end,
        PIECES.c.end_at > window.start,
    )
    rows = await session.execute(
        select(
            RESOURCES.c.resource_id,
            RESOURCES.c.hours_generation,
            PIECES.c.start_at,
            PIECES.c.end_at,
        )
        .select_from(RESOURCES)
        .outerjoin(GENERATIONS, GENERATIONS.c.venue_id == RESOURCES.c.venue_id)
        .outerjoin(PIECES, pieces)
        .where(
            RESOURCES.c.resource_id.in_(resource_ids),
            RESOURCES.c.hours_generation == _CURRENT_GENERATION,
            RESOURCES.c.covered_from <= window.start,
            RESOURCES.c.covered_until >= window.end,
        )
    )
    found: dict[str, tuple[int, list[Interval]]] = {}
    for row in rows:
        _, intervals = found.setdefault(row.resource_id, (row.hours_generation, []))
        if row.start_at is not None:
            intervals.append(Interval(max(row.start_at, window.start), min(row.end_at, window.end)))
    # Pieces are cut at midnights and changes of offset: the registry's intervals joined again.
    return {rid: (at, merge(intervals)) for rid, (at, intervals) in found.items()}


async def hours_held(
    session: AsyncSession, resource_ids: Sequence[str]
) -> dict[str, HoursHeld | None]:
    """What each of the resources the replica has holds of its open hours (None: nothing)."""
    rows = await session.execute(
        select(
            RESOURCES.c.resource_id,
            RESOURCES.c.covered_from,
            RESOURCES.c.covered_until,
            RESOURCES.c.hours_generation,
        ).where(RESOURCES.c.resource_id.in_(resource_ids))
    )
    return {
        row.resource_id: (
            None
            if row.covered_from is None or row.covered_until is None
            else HoursHeld(Interval(row.covered_from, row.covered_until), row.hours_generation)
        )
        for row in rows
    }


class HoursReading(NamedTuple):
    """A resource's open hours as the registry answered, read while its venue's generation was
    `generation`, to be kept so that the resource covers `covered`, where the replica still
    holds what it held when the registry was asked (`held`)."""

    venue_id: str
    resource_id: str
    held: HoursHeld | None
    covered: Interval
    generation: int
    pieces: Sequence[OpenPiece]


async def keep_hours(session: AsyncSession, readings: Sequence[HoursReading]) -> None:
    """Hold each reading's pieces so its resource covers its `covered`: beside the pieces it
    holds where they stay (`HoursHeld.stays_beside`), in their place otherwise. A reading whose
    resource no longer holds what it held is not kept: another landed first. A few statements
    for them all, however many: a cold month's bookings wait for this."""
    await lock_venues(session, [reading.venue_id for reading in readings])
    now_held = await hours_held(session, [reading.resource_id for reading in readings])
    kept = [
        reading
        for reading in readings
        if reading.resource_id in now_held and now_held[reading.resource_id] == reading.held
    ]
    await _delete_pieces(
        session,
        [
            reading.resource_id
            for reading in kept
            if reading.held is None
            or not reading.held.stays_beside(reading.covered, reading.generation)
        ],
    )
    await _insert_pieces(session, {reading.resource_id: reading.pieces for reading in kept})
    await _set_coverage(
        session, [(reading.resource_id, reading.covered, reading.generation) for reading in kept]
    )


# What the reports read


async def catalogue_listed(session: AsyncSession) -> bool:
    return await session.scalar(select(CatalogueListedRow.id).limit(1)) is not None


async def mark_catalogue_listed(session: AsyncSession, now: datetime) -> None:
    await session.execute(
        insert_ignoring_duplicates(session, CatalogueListedRow)
        .values(id=1, listed_at=now)
        .on_conflict_do_nothing()
    )


async def area_paths(session: AsyncSession) -> dict[str, str]:
    """The path of every area the replica knows (a city has hundreds, not millions)."""
    rows = await session.execute(select(AREAS.c.area_id, AREAS.c.path))
    return {row.area_id: row.path for row in rows}


async def venue_owner(session: AsyncSession, venue_id: str) -> str | None:
    """The owning organisation of a venue the replica holds resources of."""
    return await session.scalar(
        select(RESOURCES.c.owner_org).where(RESOURCES.c.venue_id == venue_id).limit(1)
    )


async def coverage(session: AsyncSession, venue_id: str) -> dict[str, Interval | None]:
    """What each resource of the venue holds of its open hours (None: nothing yet)."""
    rows = await session.execute(
        select(RESOURCES.c.resource_id, RESOURCES.c.covered_from, RESOURCES.c.covered_until).where(
            RESOURCES.c.venue_id == venue_id
        )
    )
    return {
        row.resource_id: (
            Interval(row.covered_from, row.covered_until)
            if row.covered_from is not None and row.covered_until is not None
            else None
        )
        for row in rows
    }


# Keeping the replica


async def lock_venue(session: AsyncSession, venue_id: str) -> None:
    """One writer of a venue's open hours at a time (PostgreSQL; SQLite writers queue anyway):
    two fills racing would otherwise leave pieces of both readings of the hours."""
    await lock_venues(session, [venue_id])


_LOCK_VENUES = text(
    "SELECT pg_advisory_xact_lock(held.key) FROM (SELECT DISTINCT hashtext(venue) AS key"
    " FROM unnest(CAST(:venue_ids AS text[])) AS venue ORDER BY key) AS held"
)


async def lock_venues(session: AsyncSession, venue_ids: Iterable[str]) -> None:
    """`lock_venue` for several venues, taken in the order of their lock keys (two fills of
    overlapping venues then cannot deadlock, even where two ids share a key)."""
    if session.get_bind().dialect.name == "postgresql":
        keys = [f"catalogue:{venue_id}" for venue_id in set(venue_ids)]
        await session.execute(_LOCK_VENUES, {"venue_ids": keys})


async def keep_resources(
    session: AsyncSession,
    readings: Sequence[ResourceReading],
    new_areas: Sequence[tuple[str, str, str]],
    area_paths: Mapping[str, str],
) -> None:
    """Resources read from the registry one by one (a booking's miss), with the areas of their
    venues that were not yet known, and every area's path by id."""
    await save_areas(session, new_areas)
    await _save_resources(
        session,
        [
            _resource_values(
                reading.resource,
                reading.venue,
                area_paths[reading.venue.area_id],
                reading.generation,
            )
            for reading in readings
        ],
    )


async def save_catalogue(
    session: AsyncSession,
    areas: Sequence[tuple[str, str, str]],
    resources: Sequence[tuple[RegistryResource, RegistryVenue, str]],
    generations: Mapping[str, int],
) -> None:
    """The whole catalogue as the registry listed it: areas (id, name, path), and each resource
    with its venue and the venue's area path; no open hours yet."""
    await save_areas(session, areas)
    await _save_resources(
        session,
        [
            _resource_values(resource, venue, path, generations.get(venue.id, 0))
            for resource, venue, path in resources
        ],
    )


async def save_venue(session: AsyncSession, reading: VenueReading, generation: int) -> None:
    """Write what the registry said of a venue, read while its generation was `generation`."""
    await lock_venue(session, reading.venue_id)
    kept = [resource.id for resource in reading.resources]
    gone = select(RESOURCES.c.resource_id).where(
        RESOURCES.c.venue_id == reading.venue_id, RESOURCES.c.resource_id.not_in(kept)
    )
    await session.execute(delete(PIECES).where(PIECES.c.resource_id.in_(gone)))
    await session.execute(
        delete(RESOURCES).where(
            RESOURCES.c.venue_id == reading.venue_id, RESOURCES.c.resource_id.not_in(kept)
        )
    )
    if reading.venue is None:
        return
    await save_areas(session, reading.new_areas)
    await _save_resources(
        session,
        [
            _resource_values(resource, reading.venue, reading.area_path, generation)
            for resource in reading.resources
        ],
    )
    await _delete_pieces(session, list(reading.pieces))
    await _insert_pieces(session, reading.pieces)
    await _set_coverage(
        session,
        [(resource_id, reading.windows[resource_id], generation) for resource_id in reading.pieces],
    )


async def save_areas(session: AsyncSession, areas: Sequence[tuple[str, str, str]]) -> None:
    if areas:
        await session.execute(
            insert_ignoring_duplicates(session, AreaRow)
            .values([{"area_id": id_, "name": name, "path": path} for id_, name, path in areas])
            .on_conflict_do_nothing()
        )


async def _delete_pieces(session: AsyncSession, resource_ids: Sequence[str]) -> None:
    if resource_ids:
        await session.execute(delete(PIECES).where(PIECES.c.resource_id.in_(resource_ids)))


async def _insert_pieces(session: AsyncSession, pieces: Mapping[str, Sequence[OpenPiece]]) -> None:
    rows = [
        {
            "resource_id": resource_id,
            "day": piece.day,
            "start_at": piece.start,
            "end_at": piece.end,
            "weekday": piece.weekday,
            "wall_second": piece.wall_second,
        }
        for resource_id, of_resource in pieces.items()
        for piece in of_resource
    ]
    if rows:
        await session.execute(PIECES.insert(), rows)


_SET_COVERAGE = (
    update(RESOURCES)
    .where(RESOURCES.c.resource_id == bindparam("covering"))
    .values(
        covered_from=bindparam("covered_from"),
        covered_until=bindparam("covered_until"),
        hours_generation=bindparam("hours_generation"),
    )
)


async def _set_coverage(
    session: AsyncSession, coverage: Sequence[tuple[str, Interval, int]]
) -> None:
    """Each resource's (id, stretch its hours now cover, generation they were read at)."""
    if coverage:
        await session.execute(
            _SET_COVERAGE,
            [
                {
                    "covering": resource_id,
                    "covered_from": covered.start,
                    "covered_until": covered.end,
                    "hours_generation": generation,
                }
                for resource_id, covered, generation in coverage
            ],
        )


def _resource_values(
    resource: RegistryResource, venue: RegistryVenue, area_path: str, generation: int
) -> dict[str, Any]:
    return {
        "resource_id": resource.id,
        "name": resource.name,
        "type": resource.type.value,
        "capacity": resource.capacity,
        "requires_approval": resource.requires_approval,
        "rules": msgspec.json.encode(resource.rules).decode(),
        "parts": msgspec.json.encode(resource.parts).decode(),
        "part_of": resource.part_of,
        "smallest": not resource.parts,
        "venue_id": venue.id,
        "venue_name": venue.name,
        "venue_kind": venue.kind,
        "owner_org": venue.owner_org,
        "timezone": venue.timezone,
        "area_id": venue.area_id,
        "area_path": area_path,
        "generation": generation,
    }


async def _save_resources(session: AsyncSession, values: Sequence[dict[str, Any]]) -> None:
    """Upsert the facts, unless those held were read at a newer generation; what a resource
    covers of its hours is left as it was (it has its own generation)."""
    if not values:
        return
    insert = insert_ignoring_duplicates(session, ResourceRow)
    facts = [name for name in values[0] if name != "resource_id"]
    await session.execute(
        insert.values(list(values)).on_conflict_do_update(
            index_elements=[RESOURCES.c.resource_id],
            set_={name: insert.excluded[name] for name in facts},
            where=RESOURCES.c.generation <= insert.excluded.generation,
        )
    )
