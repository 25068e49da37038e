"""Booking's replica of the registry, in its own database: the cache of registry answers with each
venue's generation (raised by every registry event about it), and the reports' projection of the
catalogue (kept by `reports.projection`, summed over in `reports.store`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from services.booking.metadata import Base
from shared.db import UTCDateTime
from shared.outbox import insert_ignoring_duplicates


class RegistryCacheRow(Base):
    """A registry answer kept until an event about its venue says it may have changed."""

    __tablename__ = "registry_cache"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    venue_id: Mapped[str] = mapped_column(String(36), index=True)
    generation: Mapped[int] = mapped_column(Integer)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class RegistryGenerationRow(Base):
    """Raised by every registry event about a venue: cache rows of older generations are stale."""

    __tablename__ = "registry_generations"

    venue_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)


class ReportResourceRow(Base):
    """A resource as the reports group it, with its venue's facts, and how much of its resolved
    opening hours `report_open_hours` holds: `[covered_from, covered_until)`, read while its
    venue's registry generation was `generation` (an older one than the current is stale)."""

    __tablename__ = "report_resources"

    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    venue_id: Mapped[str] = mapped_column(String(36), index=True)
    venue_name: Mapped[str] = mapped_column(Text)
    venue_kind: Mapped[str] = mapped_column(String(40))
    # The venue's area and its ancestors, `/root/.../area/`: a subtree is a prefix.
    area_path: Mapped[str] = mapped_column(Text)
    owner_org: Mapped[str] = mapped_column(String(100), index=True)
    timezone: Mapped[str] = mapped_column(String(64))
    covered_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    covered_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    generation: Mapped[int] = mapped_column(Integer)
    # Has no parts (`domain.halls`): what the reports sum above the level of one resource.
    smallest: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))


class ReportAreaRow(Base):
    """An area the reports may group by (areas never move, so a path once read stays true)."""

    __tablename__ = "report_areas"

    area_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)


class ReportOpenPieceRow(Base):
    """A piece of a resource's resolved open time (`domain.reports.OpenPiece`): inside one UTC
    day, one local day and one UTC offset, so bookings join it on (resource, day)."""

    __tablename__ = "report_open_hours"

    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    weekday: Mapped[int] = mapped_column(SmallInteger)
    wall_second: Mapped[int] = mapped_column(Integer)

    __table_args__ = (CheckConstraint("start_at < end_at", name="open_piece_not_empty"),)


class ReportCatalogueRow(Base):
    """Present once the whole catalogue was read from the registry; events keep it since."""

    __tablename__ = "report_catalogue"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime)


async def cached(session: AsyncSession, keys: Sequence[str]) -> dict[str, tuple[str, int, bytes]]:
    """(venue id, generation, value) of the cached `keys` no registry event has made stale."""
    rows = await session.execute(
        select(
            RegistryCacheRow.key,
            RegistryCacheRow.venue_id,
            RegistryCacheRow.generation,
            RegistryCacheRow.value,
        )
        .outerjoin(
            RegistryGenerationRow, RegistryGenerationRow.venue_id == RegistryCacheRow.venue_id
        )
        .where(
            RegistryCacheRow.key.in_(keys),
            RegistryCacheRow.generation == func.coalesce(RegistryGenerationRow.generation, 0),
        )
    )
    return {row.key: (row.venue_id, row.generation, row.value) for row in rows}


async def generation(session: AsyncSession, venue_id: str) -> int:
    return (await generations(session, [venue_id])).get(venue_id, 0)


_GENERATIONS = select(RegistryGenerationRow.venue_id, RegistryGenerationRow.generation).where(
    RegistryGenerationRow.venue_id.in_(bindparam("venue_ids", expanding=True))
)


async def generations(session: AsyncSession, venue_ids: Iterable[str]) -> dict[str, int]:
    """How many registry events each venue has had (absent: none yet)."""
    rows = await session.execute(_GENERATIONS, {"venue_ids": list(venue_ids)})
    return {row.venue_id: row.generation for row in rows}


async def remember(session: AsyncSession, entries: Sequence[tuple[str, str, bytes, int]]) -> None:
    """Cache registry answers: (key, venue id, value, the venue's generation before fetching)."""
    if not entries:
        return
    await session.execute(
        delete(RegistryCacheRow).where(RegistryCacheRow.key.in_([entry[0] for entry in entries]))
    )
    await session.execute(
        insert_ignoring_duplicates(session, RegistryCacheRow)
        .values(
            [
                {"key": key, "venue_id": venue_id, "value": value, "generation": generation}
                for key, venue_id, value, generation in entries
            ]
        )
        .on_conflict_do_nothing()
    )


async def invalidate(session: AsyncSession, venue_id: str, *, read_at: int | None = None) -> bool:
    """A registry event about the venue: everything cached about it is stale. With `read_at`,
    only if the venue's generation is still the one its handler read before asking the registry;
    False, and nothing changed, where another event came in between."""
    await session.execute(
        insert_ignoring_duplicates(session, RegistryGenerationRow)
        .values(venue_id=venue_id, generation=0)
        .on_conflict_do_nothing()
    )
    raise_generation = (
        update(RegistryGenerationRow)
        .where(RegistryGenerationRow.venue_id == venue_id)
        .values(generation=RegistryGenerationRow.generation + 1)
    )
    if read_at is not None:
        # One statement compares and raises: a racing handler waits on the row, then finds it
        # moved (PostgreSQL re-reads a row it waited on before updating it).
        raise_generation = raise_generation.where(RegistryGenerationRow.generation == read_at)
    raised = await session.execute(raise_generation)
    if raised.rowcount == 0:  # type: ignore[attr-defined]
        return False
    await session.execute(delete(RegistryCacheRow).where(RegistryCacheRow.venue_id == venue_id))
    return True
