"""Finding rooms and equipment: the search and its results."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import Template

from services.web.clients import Availability, Resource, resource_week
from services.web.domain.rooms import CITY_ZONE, TYPES, room_query
from services.web.domain.week import Span, monday_of, week_grid
from services.web.pages.views import Bearer, Catalogue, Page, view


class Found:
    """One row of the results: the resource, its venue's name, its free times (if asked)."""

    def __init__(self, resource: Resource | Availability, venue: str, free: list[Any]) -> None:
        self.id = resource.id if isinstance(resource, Resource) else resource.resource_id
        self.name = resource.name
        self.type = resource.type
        self.capacity = resource.capacity
        self.features = resource.features if isinstance(resource, Resource) else []
        self.venue = venue
        self.free = free


@get("/rooms")
async def search(
    request: Request[Any, Any, Any], page: Page, bearer: Bearer, catalogue: Catalogue
) -> Template:
    form = {key: str(value) for key, value in request.query_params.items()}
    query, errors = room_query(form)
    searched = bool(form) and not errors
    areas_task = asyncio.create_task(catalogue.areas(bearer))
    found: list[Found] = []
    if searched:
        venue_ids = None
        if query.q:
            venue_ids = [venue.id for venue in await catalogue.venues(bearer, q=query.q)]
        if venue_ids == []:
            rows: list[Resource] | list[Availability] = []
        elif query.start is not None and query.end is not None:
            rows = await catalogue.free_resources(
                bearer,
                start=query.start,
                end=query.end,
                minutes=query.minutes,
                venue_ids=venue_ids,
                **query.resource_params(),
            )
        else:
            rows = await catalogue.resources(bearer, venue_ids=venue_ids, **query.resource_params())
        # The venues of every row in one call.
        ids = sorted({row.venue_id for row in rows})
        names = {v.id: v.name for v in await catalogue.venues(bearer, ids=ids)} if ids else {}
        found = [Found(row, names.get(row.venue_id, ""), getattr(row, "free", [])) for row in rows]
    areas = sorted(await areas_task, key=lambda area: area.name)
    return view(
        page,
        "rooms.html",
        status_code=400 if errors else 200,
        form=form,
        errors=errors,
        areas=areas,
        types=TYPES,
        searched=searched,
        found=found,
        timed=query.start is not None,
    )


@get("/rooms/{resource_id:str}")
async def room(
    resource_id: str,
    page: Page,
    bearer: Bearer,
    catalogue: Catalogue,
    week: Annotated[str | None, QueryParameter(required=False, max_length=20)] = None,
) -> Template:
    """A resource's facts and its week grid (the week holding `week`, Monday first)."""
    try:
        day = date.fromisoformat(week) if week else datetime.now(CITY_ZONE).date()
    except ValueError:
        return view(page, "error.html", status_code=400, status=400, code="not_a_date")
    monday = monday_of(day)
    # A day either side: the venue's zone is known only with the answer.
    start = datetime.combine(monday - timedelta(days=1), time(0), UTC)
    end = datetime.combine(monday + timedelta(days=8), time(0), UTC)
    found = await resource_week(catalogue, bearer, resource_id, start, end)
    zone = ZoneInfo(found.venue.timezone)
    grid = week_grid(
        monday,
        zone,
        [Span(i.start, i.end) for i in found.open],
        [Span(i.start, i.end) for i in found.free],
    )
    return view(
        page,
        "room.html",
        resource=found.resource,
        venue=found.venue,
        week=grid,
        previous=(monday - timedelta(days=7)).isoformat(),
        following=(monday + timedelta(days=7)).isoformat(),
        may_book=page.session is not None and page.session.membership.role != "lecturer",
    )


ROUTES = [search, room]
