"""The registry's HTTP routes: parse, authorise, call the domain or the store, map the result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post, put
from litestar.params import FromQuery, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry import store
from services.registry.domain import hours as opening
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
    check_hierarchy,
    check_rules,
    ensure_can_create_venue,
    ensure_can_manage,
    ensure_can_update_venue,
    normalise_features,
    parts_and_self,
)
from services.registry.domain.published import OpeningHoursDoc, to_hours
from shared.auth import Role
from shared.contracts import ResourceType
from shared.errors import Conflict
from shared.ids import new_id
from shared.time import Interval, check_range, window, zone
from shared.web import (
    MAX_IDS,
    Caller,
    Cursor,
    DbSession,
    From,
    Ids,
    Limit,
    Page,
    PathId,
    To,
    answer_spec,
    create_once,
    decode_cursor,
    page_of,
)


class Intervals(msgspec.Struct):
    items: list[Interval]


class ResourceIntervals(msgspec.Struct):
    resource_id: str
    items: list[Interval]


class ManyIntervals(msgspec.Struct):
    items: list[ResourceIntervals]


class HoursView(msgspec.Struct):
    """Published opening hours, and whose they are (`resource` or inherited from the `venue`)."""

    periods: list[Any]
    public_holidays: str
    source: str


def _hours_view(doc: OpeningHoursDoc | None, source: str) -> HoursView:
    if doc is None:
        return HoursView(periods=[], public_holidays="closed", source=source)
    return HoursView(
        periods=msgspec.to_builtins(doc.periods),
        public_holidays=doc.public_holidays,
        source=source,
    )


async def _area_path(session: AsyncSession, area_id: str | None) -> str | None:
    return None if area_id is None else (await store.get_area_row(session, area_id)).path


def _check_venue_settings(timezone: str | None, holiday_calendar: str | None) -> None:
    if timezone is not None:
        zone(timezone)
    if holiday_calendar is not None:
        opening.validate_holiday_calendar(holiday_calendar)


class AreaController(Controller):
    path = "/v1/areas"
    tags = ("areas",)

    @post("/", responses={201: answer_spec(Area, description="The area made")})
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[AreaCreate],
        principal: Caller,
        session: DbSession,
    ) -> Response[bytes]:
        principal.require(Role.OFFICE)

        async def make() -> Area:
            return await store.create_area(
                session, area_id=new_id(), data=data, now=datetime.now(UTC)
            )

        return await create_once(request, session, principal, make)

    @get("/")
    async def search(
        self,
        principal: Caller,
        session: DbSession,
        parent_id: FromQuery[str | None] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Area]:
        areas = await store.list_areas(
            session, parent_id=parent_id, after=decode_cursor(cursor), limit=limit
        )
        return page_of(areas, limit, lambda area: area.id)

    @get("/{area_id:str}")
    async def read(self, area_id: PathId, principal: Caller, session: DbSession) -> Area:
        return (await store.get_area_row(session, area_id)).to_domain()


class VenueController(Controller):
    path = "/v1/venues"
    tags = ("venues",)

    @post("/", responses={201: answer_spec(Venue, description="The venue made")})
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[VenueCreate],
        principal: Caller,
        session: DbSession,
    ) -> Response[bytes]:
        ensure_can_create_venue(principal, data.owner_org)
        _check_venue_settings(data.timezone, data.holiday_calendar)

        async def make() -> Venue:
            return await store.create_venue(
                session, venue_id=new_id(), data=data, now=datetime.now(UTC)
            )

        return await create_once(request, session, principal, make)

    @get("/")
    async def search(
        self,
        principal: Caller,
        session: DbSession,
        area_id: FromQuery[str | None] = None,
        kind: FromQuery[VenueKind | None] = None,
        q: Annotated[str | None, QueryParameter(max_length=200)] = None,
        id: Ids = None,  # noqa: A002 - the query parameter's name
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Venue]:
        """Venues, filtered; `id` (repeatable) picks venues by id."""
        venues = await store.list_venues(
            session,
            area_path=await _area_path(session, area_id),
            kind=kind,
            q=q,
            venue_ids=id or [],
            after=decode_cursor(cursor),
            limit=limit,
        )
        return page_of(venues, limit, lambda venue: venue.id)

    @get("/{venue_id:str}")
    async def read(self, venue_id: PathId, principal: Caller, session: DbSession) -> Venue:
        return (await store.get_venue_row(session, venue_id)).to_domain()

    @patch("/{venue_id:str}")
    async def update(
        self, venue_id: PathId, data: JSONBody[VenueUpdate], principal: Caller, session: DbSession
    ) -> Venue:
        row = await store.get_venue_row(session, venue_id)
        ensure_can_update_venue(principal, row.to_domain(), data)
        _check_venue_settings(
            data.timezone if isinstance(data.timezone, str) else None,
            data.holiday_calendar if isinstance(data.holiday_calendar, str) else None,
        )
        return await store.update_venue(session, row, data, now=datetime.now(UTC))

    @delete("/{venue_id:str}")
    async def remove(self, venue_id: PathId, principal: Caller, session: DbSession) -> None:
        row = await store.get_venue_row(session, venue_id)
        ensure_can_manage(principal, row.owner_org)
        now = datetime.now(UTC)
        if await store.has_future_bookings(session, now=now, venue_id=venue_id):
            raise Conflict("the venue has bookings still to come", code="venue_in_use")
        await store.delete_venue(session, row, now=now)

    @post(
        "/{venue_id:str}/resources",
        responses={201: answer_spec(Resource, description="The resource made")},
    )
    async def create_resource(
        self,
        request: Request[Any, Any, Any],
        venue_id: PathId,
        data: JSONBody[ResourceCreate],
        principal: Caller,
        session: DbSession,
    ) -> Response[bytes]:
        venue = await store.get_venue_row(session, venue_id)
        ensure_can_manage(principal, venue.owner_org)
        check_rules(data.rules)
        resource_id = new_id()
        if data.part_of is not None:
            placements = await store.venue_placements(session, venue_id)
            check_hierarchy(resource_id, Placement(data.type, data.part_of), placements)

        async def make() -> Resource:
            return await store.create_resource(
                session,
                resource_id=resource_id,
                venue_id=venue_id,
                data=data,
                features=normalise_features(data.features),
                now=datetime.now(UTC),
            )

        return await create_once(request, session, principal, make)

    @put("/{venue_id:str}/opening-hours")
    async def put_hours(
        self,
        venue_id: PathId,
        data: JSONBody[OpeningHoursDoc],
        principal: Caller,
        session: DbSession,
    ) -> HoursView:
        row = await store.get_venue_row(session, venue_id)
        ensure_can_manage(principal, row.owner_org)
        to_hours(data)
        await store.set_hours(session, row, data, now=datetime.now(UTC))
        return _hours_view(data, "venue")

    @get("/{venue_id:str}/opening-hours")
    async def get_hours(self, venue_id: PathId, principal: Caller, session: DbSession) -> HoursView:
        row = await store.get_venue_row(session, venue_id)
        return _hours_view(store.hours_document(row.opening_hours), "venue")

    @get("/{venue_id:str}/open-intervals")
    async def open_intervals(
        self, venue_id: PathId, principal: Caller, session: DbSession, from_: From, to: To
    ) -> Intervals:
        row = await store.get_venue_row(session, venue_id)
        return _resolve(store.hours_document(row.opening_hours), row, window(from_, to))


class ResourceController(Controller):
    path = "/v1/resources"
    tags = ("resources",)

    @get("/")
    async def search(
        self,
        principal: Caller,
        session: DbSession,
        venue_id: Ids = None,
        type: FromQuery[ResourceType | None] = None,  # noqa: A002 - the API's parameter name
        min_capacity: Annotated[int | None, QueryParameter(ge=0, le=100_000)] = None,
        feature: Annotated[list[str] | None, QueryParameter(max_items=20)] = None,
        area_id: FromQuery[str | None] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Resource]:
        """Resources, filtered; `venue_id` may be repeated for the resources of several venues."""
        resources = await store.list_resources(
            session,
            venue_ids=venue_id or [],
            type=type,
            min_capacity=min_capacity,
            features=normalise_features(feature or []),
            area_path=await _area_path(session, area_id),
            after=decode_cursor(cursor),
            limit=limit,
        )
        return page_of(resources, limit, lambda resource: resource.id)

    @get("/{resource_id:str}")
    async def read(self, resource_id: PathId, principal: Caller, session: DbSession) -> Resource:
        return await store.read_resource(
            session, await store.get_resource_row(session, resource_id)
        )

    @patch("/{resource_id:str}")
    async def update(
        self,
        resource_id: PathId,
        data: JSONBody[ResourceUpdate],
        principal: Caller,
        session: DbSession,
    ) -> Resource:
        row = await store.get_resource_row(session, resource_id)
        venue = await store.get_venue_row(session, row.venue_id)
        ensure_can_manage(principal, venue.owner_org)
        if isinstance(data.rules, msgspec.Struct):
            check_rules(data.rules)
        await _check_new_placement(session, row, data)
        features = None if isinstance(data.features, msgspec.UnsetType) else data.features
        return await store.update_resource(
            session,
            row,
            data,
            features=None if features is None else normalise_features(features),
            now=datetime.now(UTC),
        )

    @delete("/{resource_id:str}")
    async def remove(self, resource_id: PathId, principal: Caller, session: DbSession) -> None:
        row = await store.get_resource_row(session, resource_id)
        venue = await store.get_venue_row(session, row.venue_id)
        ensure_can_manage(principal, venue.owner_org)
        now = datetime.now(UTC)
        if await store.has_future_bookings(session, now=now, resource_id=resource_id):
            raise Conflict("the resource has bookings still to come", code="resource_in_use")
        await store.delete_resource(session, row, now=now)

    @put("/{resource_id:str}/opening-hours")
    async def put_hours(
        self,
        resource_id: PathId,
        data: JSONBody[OpeningHoursDoc],
        principal: Caller,
        session: DbSession,
    ) -> HoursView:
        row = await store.get_resource_row(session, resource_id)
        venue = await store.get_venue_row(session, row.venue_id)
        ensure_can_manage(principal, venue.owner_org)
        to_hours(data)
        await store.set_hours(session, row, data, now=datetime.now(UTC))
        return _hours_view(data, "resource")

    @delete("/{resource_id:str}/opening-hours")
    async def clear_hours(self, resource_id: PathId, principal: Caller, session: DbSession) -> None:
        """Withdraw the resource's own hours: it follows its venue's again."""
        row = await store.get_resource_row(session, resource_id)
        venue = await store.get_venue_row(session, row.venue_id)
        ensure_can_manage(principal, venue.owner_org)
        await store.set_hours(session, row, None, now=datetime.now(UTC))

    @get("/{resource_id:str}/opening-hours")
    async def get_hours(
        self, resource_id: PathId, principal: Caller, session: DbSession
    ) -> HoursView:
        row = await store.get_resource_row(session, resource_id)
        if row.opening_hours is not None:
            return _hours_view(store.hours_document(row.opening_hours), "resource")
        venue = await store.get_venue_row(session, row.venue_id)
        return _hours_view(store.hours_document(venue.opening_hours), "venue")

    @get("/{resource_id:str}/open-intervals")
    async def open_intervals(
        self, resource_id: PathId, principal: Caller, session: DbSession, from_: From, to: To
    ) -> Intervals:
        row = await store.get_resource_row(session, resource_id)
        venue = await store.get_venue_row(session, row.venue_id)
        doc = store.hours_document(
            row.opening_hours if row.opening_hours is not None else venue.opening_hours
        )
        return _resolve(doc, venue, window(from_, to))


async def _check_new_placement(
    session: AsyncSession, row: store.ResourceRow, change: ResourceUpdate
) -> None:
    """A new type or `part_of` must keep the venue's rooms a valid hierarchy (422), and
    `part_of` cannot move while the room or one of its parts has bookings to come (409): their
    slots were held for the rooms as they stood."""
    if isinstance(change.type, msgspec.UnsetType) and isinstance(change.part_of, msgspec.UnsetType):
        return
    placements = await store.venue_placements(session, row.venue_id)
    placement = Placement(
        type=ResourceType(row.type) if isinstance(change.type, msgspec.UnsetType) else change.type,
        part_of=row.part_of if isinstance(change.part_of, msgspec.UnsetType) else change.part_of,
    )
    check_hierarchy(row.id, placement, placements)
    if placement.part_of != row.part_of and await store.has_future_bookings(
        session, now=datetime.now(UTC), resource_ids=parts_and_self(row.id, placements)
    ):
        raise Conflict(
            "the room or one of its parts has bookings still to come", code="resource_in_use"
        )


class OpenIntervalsController(Controller):
    path = "/v1/open-intervals"
    tags = ("resources",)

    @get("/")
    async def of_resources(
        self,
        principal: Caller,
        session: DbSession,
        from_: From,
        to: To,
        resource_id: Annotated[list[str], QueryParameter(min_items=1, max_items=MAX_IDS)],
    ) -> ManyIntervals:
        """The open intervals of several resources at once (`resource_id` repeated), as each
        one's `/open-intervals` gives them; unknown ids are left out. Hours a venue's resources
        share are resolved once."""
        span = window(from_, to)
        check_range(span)
        resolved: dict[tuple[str, str], Intervals] = {}
        found = []
        for rid, venue, own in await store.hours_of_resources(session, resource_id):
            source = (rid, "resource") if own is not None else (venue.id, "venue")
            if source not in resolved:
                doc = store.hours_document(own if own is not None else venue.opening_hours)
                resolved[source] = _resolve(doc, venue, span)
            found.append(ResourceIntervals(resource_id=rid, items=resolved[source].items))
        return ManyIntervals(items=found)


def _resolve(doc: OpeningHoursDoc | None, venue: store.VenueRow, span: Interval) -> Intervals:
    """Open intervals inside `span`, in the venue's zone; no published hours means never open."""
    check_range(span)
    if doc is None:
        return Intervals(items=[])
    tz = zone(venue.timezone)
    local = span.in_zone(tz)
    # A year either side: a bridge between holidays may cross New Year, and a day's answer must
    # not depend on how wide a window it was asked in.
    calendar = opening.holiday_calendar(
        venue.holiday_calendar, range(local.start.year - 1, local.end.year + 2)
    )
    resolved = opening.resolve(to_hours(doc), tz, calendar, span)
    return Intervals(items=[interval.in_zone(tz) for interval in resolved])


ROUTES = [AreaController, VenueController, ResourceController, OpenIntervalsController]
