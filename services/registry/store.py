"""The registry's own database: areas, venues, resources, their opening hours, and the outbox.

Queries take the request's session and return domain Structs; nothing here decides a rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET
from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    exists,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.registry.domain.catalogue import (
    Area,
    AreaCreate,
    Placement,
    Resource,
    ResourceCreate,
    ResourceUpdate,
    Venue,
    VenueCreate,
    VenueKind,
    VenueUpdate,
)
from services.registry.domain.published import OpeningHoursDoc
from shared.config import ServiceName
from shared.contracts import Location, ResourceType, Rules
from shared.db import UTCDateTime, new_metadata
from shared.errors import NotFound
from shared.outbox import insert_ignoring_duplicates, outbox_tables, publish


class Base(DeclarativeBase):
    metadata = new_metadata()


tables = outbox_tables(Base.metadata)
SOURCE: ServiceName = "registry"


class AreaRow(Base):
    __tablename__ = "areas"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("areas.id"), index=True)
    # The ids from the root down to this area, "/"-joined and "/"-ended: a subtree is a prefix.
    path: Mapped[str] = mapped_column(String(1000), index=True)
    population: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def to_domain(self) -> Area:
        return Area(
            id=self.id,
            name=self.name,
            parent_id=self.parent_id,
            population=self.population,
            created_at=self.created_at,
        )


class VenueRow(Base):
    __tablename__ = "venues"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40), index=True)
    area_id: Mapped[str] = mapped_column(ForeignKey("areas.id"), index=True)
    owner_org: Mapped[str] = mapped_column(String(100), index=True)
    address: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64))
    holiday_calendar: Mapped[str] = mapped_column(String(10))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    description: Mapped[str | None] = mapped_column(Text)
    opening_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def to_domain(self) -> Venue:
        location = None
        if self.lat is not None and self.lon is not None:
            location = Location(lat=self.lat, lon=self.lon)
        return Venue(
            id=self.id,
            name=self.name,
            kind=VenueKind(self.kind),
            area_id=self.area_id,
            owner_org=self.owner_org,
            address=self.address,
            timezone=self.timezone,
            holiday_calendar=self.holiday_calendar,
            location=location,
            description=self.description,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )


class ResourceRow(Base):
    __tablename__ = "resources"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    venue_id: Mapped[str] = mapped_column(ForeignKey("venues.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))
    capacity: Mapped[int | None] = mapped_column(Integer)
    requires_approval: Mapped[bool] = mapped_column(Boolean)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text)
    opening_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The room of the same venue this one is a part of (`domain.catalogue.check_hierarchy`).
    part_of: Mapped[str | None] = mapped_column(String(36), index=True)
    feature_rows: Mapped[list[ResourceFeatureRow]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="ResourceFeatureRow.feature"
    )

    __table_args__ = (Index("ix_resources_type_capacity", "type", "capacity"),)

    def to_domain(self, parts: list[str]) -> Resource:
        return _resource(self, [row.feature for row in self.feature_rows], parts)


def _resource(row: Any, features: list[str], parts: list[str]) -> Resource:
    """A resource from its row, whether an ORM object or a Core row of the same columns."""
    return Resource(
        id=row.id,
        venue_id=row.venue_id,
        name=row.name,
        type=ResourceType(row.type),
        capacity=row.capacity,
        features=features,
        requires_approval=row.requires_approval,
        rules=msgspec.convert(row.rules, Rules),
        description=row.description,
        created_at=row.created_at,
        updated_at=row.updated_at,
        part_of=row.part_of,
        parts=parts,
    )


class ResourceFeatureRow(Base):
    """One feature of a resource: a row each, so `feature=` filters use an index."""

    __tablename__ = "resource_features"

    resource_id: Mapped[str] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True
    )
    feature: Mapped[str] = mapped_column(String(60), primary_key=True)

    __table_args__ = (Index("ix_resource_features_feature", "feature", "resource_id"),)


class LiveBookingRow(Base):
    """A booking of a resource as the booking service's events tell it (`live` until it ends).

    The registry keeps this projection so that it can refuse to delete a venue or resource with
    bookings still to come without asking the booking service at that moment.
    """

    __tablename__ = "live_bookings"

    booking_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    venue_id: Mapped[str] = mapped_column(String(36), index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    live: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (Index("ix_live_bookings_resource", "resource_id", "ends_at"),)


# Areas


async def get_area_row(session: AsyncSession, area_id: str) -> AreaRow:
    row = await session.get(AreaRow, area_id)
    if row is None:
        raise NotFound(f"no area {area_id}", code="not_found")
    return row


async def list_areas(
    session: AsyncSession, *, parent_id: str | None, after: str | None, limit: int
) -> list[Area]:
    query = select(AreaRow).order_by(AreaRow.id).limit(limit + 1)
    if parent_id is not None:
        query = query.where(AreaRow.parent_id == parent_id)
    if after is not None:
        query = query.where(AreaRow.id > after)
    return [row.to_domain() for row in (await session.scalars(query)).all()]


def _in_subtree(area_path_prefix: str) -> Any:
    """Venues whose area lies in the subtree whose root has this path."""
    return VenueRow.area_id.in_(
        select(AreaRow.id).where(AreaRow.path.startswith(area_path_prefix, autoescape=True))
    )


# Venues


async def get_venue_row(session: AsyncSession, venue_id: str) -> VenueRow:
    row = await session.get(VenueRow, venue_id)
    if row is None:
        raise NotFound(f"no venue {venue_id}")
    return row


async def list_venues(
    session: AsyncSession,
    *,
    area_path: str | None,
    kind: VenueKind | None,
    q: str | None,
    venue_ids: list[str],
    after: str | None,
    limit: int,
) -> list[Venue]:
    query = select(VenueRow).order_by(VenueRow.id).limit(limit + 1)
    if venue_ids:
        query = query.where(VenueRow.id.in_(venue_ids))
    if area_path is not None:
        query = query.where(_in_subtree(area_path))
    if kind is not None:
        query = query.where(VenueRow.kind == kind.value)
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(
            func.lower(VenueRow.name).like(pattern) | func.lower(VenueRow.address).like(pattern)
        )
    if after is not None:
        query = query.where(VenueRow.id > after)
    return [row.to_domain() for row in (await session.scalars(query)).all()]


async def has_future_bookings(
    session: AsyncSession,
    *,
    now: datetime,
    venue_id: str | None = None,
    resource_id: str | None = None,
    resource_ids: Sequence[str] | None = None,
) -> bool:
    condition = LiveBookingRow.live.is_(True) & (LiveBookingRow.ends_at > now)
    if venue_id is not None:
        condition &= LiveBookingRow.venue_id == venue_id
    if resource_id is not None:
        condition &= LiveBookingRow.resource_id == resource_id
    if resource_ids is not None:
        condition &= LiveBookingRow.resource_id.in_(resource_ids)
    return bool(await session.scalar(select(exists().where(condition))))


# Resources


async def get_resource_row(session: AsyncSession, resource_id: str) -> ResourceRow:
    row = await session.get(ResourceRow, resource_id)
    if row is None:
        raise NotFound(f"no resource {resource_id}")
    return row


async def list_resources(
    session: AsyncSession,
    *,
    venue_ids: list[str],
    type: ResourceType | None,  # noqa: A002 - the API's parameter name
    min_capacity: int | None,
    features: list[str],
    area_path: str | None,
    after: str | None,
    limit: int,
) -> list[Resource]:
    # Core rows, not ORM objects: a page of 500 builds no identity map, and the opening hours,
    # which a list does not show, are not even read.
    shown = [column for column in ResourceRow.__table__.columns if column.key != "opening_hours"]
    query = select(*shown).order_by(ResourceRow.id).limit(limit + 1)
    if venue_ids:
        query = query.where(ResourceRow.venue_id.in_(venue_ids))
    if type is not None:
        query = query.where(ResourceRow.type == type.value)
    if min_capacity is not None:
        query = query.where(ResourceRow.capacity >= min_capacity)
    for feature in features:
        query = query.where(
            exists().where(
                ResourceFeatureRow.resource_id == ResourceRow.id,
                ResourceFeatureRow.feature == feature,
            )
        )
    if area_path is not None:
        query = query.where(
            ResourceRow.venue_id.in_(select(VenueRow.id).where(_in_subtree(area_path)))
        )
    if after is not None:
        query = query.where(ResourceRow.id > after)
    rows = (await session.execute(query)).all()
    features_of: dict[str, list[str]] = defaultdict(list)
    if rows:
        found = await session.execute(
            select(ResourceFeatureRow.resource_id, ResourceFeatureRow.feature)
            .where(ResourceFeatureRow.resource_id.in_([row.id for row in rows]))
            .order_by(ResourceFeatureRow.resource_id, ResourceFeatureRow.feature)
        )
        for resource_id, feature in found:
            features_of[resource_id].append(feature)
    parts = await parts_of(session, [row.id for row in rows])
    return [_resource(row, features_of[row.id], parts[row.id]) for row in rows]


async def parts_of(session: AsyncSession, resource_ids: Sequence[str]) -> dict[str, list[str]]:
    """The direct parts of each resource, by id (an empty list for a room not divided)."""
    found: dict[str, list[str]] = {resource_id: [] for resource_id in resource_ids}
    if resource_ids:
        rows = await session.execute(
            select(ResourceRow.part_of, ResourceRow.id)
            .where(ResourceRow.part_of.in_(resource_ids))
            .order_by(ResourceRow.id)
        )
        for whole, part in rows:
            found[str(whole)].append(part)
    return found


async def read_resource(session: AsyncSession, row: ResourceRow) -> Resource:
    return row.to_domain((await parts_of(session, [row.id]))[row.id])


async def venue_placements(session: AsyncSession, venue_id: str) -> dict[str, Placement]:
    """Every resource of the venue, by id, with its type and the room it is part of."""
    rows = await session.execute(
        select(ResourceRow.id, ResourceRow.type, ResourceRow.part_of).where(
            ResourceRow.venue_id == venue_id
        )
    )
    return {row.id: Placement(type=ResourceType(row.type), part_of=row.part_of) for row in rows}


def hours_document(raw: dict[str, Any] | None) -> OpeningHoursDoc | None:
    return None if raw is None else msgspec.convert(raw, OpeningHoursDoc)


async def hours_of_resources(
    session: AsyncSession, resource_ids: list[str]
) -> list[tuple[str, VenueRow, dict[str, Any] | None]]:
    """Each existing resource of `resource_ids` with its venue and its own hours (None where it
    follows the venue's); unknown ids are left out."""
    rows = (
        await session.execute(
            select(ResourceRow.id, ResourceRow.opening_hours, VenueRow)
            .join(VenueRow, VenueRow.id == ResourceRow.venue_id)
            .where(ResourceRow.id.in_(resource_ids))
        )
    ).all()
    return [(resource_id, venue, hours) for resource_id, hours, venue in rows]


# The booking projection


async def track_booking(
    session: AsyncSession,
    *,
    booking_id: str,
    venue_id: str,
    resource_ids: list[str],
    ends_at: datetime,
    live: bool,
) -> None:
    """Follow a booking's life from its events, whatever order they arrive in.

    An ending (cancel, reject) is final: it overwrites a live row, and a late `created` does not
    bring an ended booking back.
    """
    for resource_id in resource_ids:
        insert = insert_ignoring_duplicates(session, LiveBookingRow).values(
            booking_id=booking_id,
            resource_id=resource_id,
            venue_id=venue_id,
            ends_at=ends_at,
            live=live,
        )
        if live:
            await session.execute(insert.on_conflict_do_nothing())
        else:
            await session.execute(
                insert.on_conflict_do_update(
                    index_elements=["booking_id", "resource_id"], set_={"live": False}
                )
            )


# Writes: each changes rows and records its event in the same transaction.


async def create_area(
    session: AsyncSession, *, area_id: str, data: AreaCreate, now: datetime
) -> Area:
    parent_path = ""
    if data.parent_id is not None:
        parent_path = (await get_area_row(session, data.parent_id)).path
    row = AreaRow(
        id=area_id,
        name=data.name,
        parent_id=data.parent_id,
        path=f"{parent_path}{area_id}/",
        population=data.population,
        created_at=now,
    )
    session.add(row)
    area = row.to_domain()
    await publish(session, tables, source=SOURCE, type="area.created", data=area, now=now)
    return area


async def create_venue(
    session: AsyncSession, *, venue_id: str, data: VenueCreate, now: datetime
) -> Venue:
    await get_area_row(session, data.area_id)
    row = VenueRow(
        id=venue_id,
        name=data.name,
        kind=data.kind.value,
        area_id=data.area_id,
        owner_org=data.owner_org,
        address=data.address,
        timezone=data.timezone,
        holiday_calendar=data.holiday_calendar,
        lat=data.location.lat if data.location else None,
        lon=data.location.lon if data.location else None,
        description=data.description,
        opening_hours=None,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    venue = row.to_domain()
    await publish(session, tables, source=SOURCE, type="venue.created", data=venue, now=now)
    return venue


async def update_venue(
    session: AsyncSession, row: VenueRow, change: VenueUpdate, *, now: datetime
) -> Venue:
    fields = msgspec.structs.asdict(change)
    if change.area_id is not UNSET:
        await get_area_row(session, change.area_id)
    if change.location is not UNSET:
        row.lat = change.location.lat if change.location else None
        row.lon = change.location.lon if change.location else None
    for name, value in fields.items():
        if value is UNSET or name == "location":
            continue
        setattr(row, name, msgspec.to_builtins(value))
    row.updated_at = now
    venue = row.to_domain()
    await publish(session, tables, source=SOURCE, type="venue.updated", data=venue, now=now)
    if change.timezone is not UNSET or change.holiday_calendar is not UNSET:
        await _hours_changed(session, venue_id=row.id, resource_id=None, now=now)
    return venue


async def delete_venue(session: AsyncSession, row: VenueRow, *, now: datetime) -> None:
    resource_ids = list(
        await session.scalars(select(ResourceRow.id).where(ResourceRow.venue_id == row.id))
    )
    await session.execute(delete(ResourceRow).where(ResourceRow.venue_id == row.id))
    await session.delete(row)
    for resource_id in resource_ids:
        await publish(
            session,
            tables,
            source=SOURCE,
            type="resource.deleted",
            data={"id": resource_id, "venue_id": row.id},
            now=now,
        )
    await publish(
        session, tables, source=SOURCE, type="venue.deleted", data={"id": row.id}, now=now
    )


async def create_resource(
    session: AsyncSession,
    *,
    resource_id: str,
    venue_id: str,
    data: ResourceCreate,
    features: list[str],
    now: datetime,
) -> Resource:
    row = ResourceRow(
        id=resource_id,
        venue_id=venue_id,
        name=data.name,
        type=data.type.value,
        capacity=data.capacity,
        requires_approval=data.requires_approval,
        rules=msgspec.to_builtins(data.rules),
        description=data.description,
        opening_hours=None,
        created_at=now,
        updated_at=now,
        part_of=data.part_of,
        feature_rows=[ResourceFeatureRow(feature=feature) for feature in features],
    )
    session.add(row)
    resource = row.to_domain(parts=[])
    await publish(session, tables, source=SOURCE, type="resource.created", data=resource, now=now)
    return resource


async def update_resource(
    session: AsyncSession,
    row: ResourceRow,
    change: ResourceUpdate,
    *,
    features: list[str] | None,
    now: datetime,
) -> Resource:
    for name, value in msgspec.structs.asdict(change).items():
        if value is UNSET or name == "features":
            continue
        setattr(row, name, msgspec.to_builtins(value))  # enums to values, rules to JSON
    if features is not None:
        row.feature_rows = [ResourceFeatureRow(feature=feature) for feature in features]
    row.updated_at = now
    await session.flush()
    resource = await read_resource(session, row)
    await publish(session, tables, source=SOURCE, type="resource.updated", data=resource, now=now)
    return resource


async def delete_resource(session: AsyncSession, row: ResourceRow, *, now: datetime) -> None:
    """Remove the resource; its parts, if it was divided, become rooms of their own."""
    parts = (await session.scalars(select(ResourceRow).where(ResourceRow.part_of == row.id))).all()
    for part in parts:
        part.part_of = None
        part.updated_at = now
        await publish(
            session,
            tables,
            source=SOURCE,
            type="resource.updated",
            data=await read_resource(session, part),
            now=now,
        )
    await session.delete(row)
    await publish(
        session,
        tables,
        source=SOURCE,
        type="resource.deleted",
        data={"id": row.id, "venue_id": row.venue_id},
        now=now,
    )


async def set_hours(
    session: AsyncSession,
    row: VenueRow | ResourceRow,
    doc: OpeningHoursDoc | None,
    *,
    now: datetime,
) -> None:
    """Publish (or, with None on a resource, withdraw) opening hours."""
    row.opening_hours = None if doc is None else msgspec.to_builtins(doc)
    row.updated_at = now
    if isinstance(row, VenueRow):
        await _hours_changed(session, venue_id=row.id, resource_id=None, now=now)
    else:
        await _hours_changed(session, venue_id=row.venue_id, resource_id=row.id, now=now)


async def _hours_changed(
    session: AsyncSession, *, venue_id: str, resource_id: str | None, now: datetime
) -> None:
    await publish(
        session,
        tables,
        source=SOURCE,
        type="opening_hours.changed",
        data={"venue_id": venue_id, "resource_id": resource_id},
        now=now,
    )
