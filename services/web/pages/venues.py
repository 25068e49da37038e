"""The venues a manager looks after: the pick of a venue, its rooms and equipment (add, edit
rules and features) and its opening hours (periods, closures, public holidays) with a preview
of the weeks they resolve to."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from services.web.clients import HoursDoc, ManagedVenue, ResourceDetail
from services.web.domain import hours_editor, resource_form
from services.web.domain.registry_errors import field_codes
from services.web.domain.week import monday_of
from services.web.pages.auth import Form
from services.web.pages.venue_desk import DESK, venue_managed, venues_managed
from services.web.pages.views import Bearer, Page, Web, view
from services.web.runtime import PageContext, WebRuntime
from shared.http import RemoteError

Week = Annotated[str | None, QueryParameter(required=False, max_length=20)]
_SAVED = ("added", "changed", "removed", "holidays")


@get("/venues", guards=DESK)
async def venues(web: Web, page: Page, bearer: Bearer) -> Template:
    """The venues the visitor manages, each with its rooms and its hours."""
    found = sorted(await venues_managed(web, page, bearer), key=lambda venue: venue.name)
    return view(page, "venues.html", venues=found)


# Rooms and equipment


async def _resources_page(
    web: WebRuntime,
    page: PageContext,
    bearer: str,
    venue: ManagedVenue,
    *,
    status_code: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    saved: str | None = None,
) -> Template:
    resources = await web.desk.resources(bearer, [venue.id])
    return view(
        page,
        "venue_resources.html",
        status_code=status_code,
        venue=venue,
        resources=sorted(resources, key=lambda r: (r.type, r.name)),
        names={r.id: r.name for r in resources},
        halls=resource_form.halls_for(None, resources),
        form=form or {"type": "room"},
        errors=errors or {},
        saved=saved if saved in _SAVED else None,
    )


@get("/venues/{venue_id:str}/resources", guards=DESK)
async def resources(
    venue_id: str, web: Web, page: Page, bearer: Bearer, saved: str | None = None
) -> Template:
    venue = await venue_managed(web, page, bearer, venue_id)
    return await _resources_page(web, page, bearer, venue, saved=saved)


async def _refusals(change: Awaitable[object], *, within: str = "") -> dict[str, str]:
    """Make the change at the registry; what it refuses, as form field → message code (empty
    where it took the change). A refusal naming no field of the form is shown at the name."""
    try:
        await change
    except RemoteError as refusal:
        if refusal.remote_status >= 500:
            raise
        codes = field_codes(refusal.errors, within=within)
        if refusal.code == "resource_in_use":  # what the registry refuses under bookings to come
            return {"part_of": refusal.code}
        return {resource_form.field_of(f): c for f, c in codes.items()} or {"name": refusal.code}
    return {}


@post("/venues/{venue_id:str}/resources", guards=DESK)
async def add_resource(
    venue_id: str, web: Web, page: Page, bearer: Bearer, data: Form
) -> Template | Redirect:
    venue = await venue_managed(web, page, bearer, venue_id)
    body, errors = resource_form.resource_from_form(data)
    if body is not None:
        errors = await _refusals(web.desk.add_resource(bearer, venue_id, body))
        if not errors:
            return Redirect(f"/venues/{venue_id}/resources?saved=added", status_code=303)
    return await _resources_page(
        web, page, bearer, venue, status_code=400, form=data, errors=errors
    )


async def _owned_resource(
    web: WebRuntime, page: PageContext, bearer: str, venue_id: str, resource_id: str
) -> tuple[ManagedVenue, ResourceDetail, list[ResourceDetail]]:
    venue, resource, neighbours = await asyncio.gather(
        venue_managed(web, page, bearer, venue_id),
        web.desk.resource(bearer, resource_id),
        web.desk.resources(bearer, [venue_id]),
    )
    if resource.venue_id != venue.id:
        raise NotFoundException("no such resource at this venue")
    return venue, resource, resource_form.halls_for(resource.id, neighbours)


@get("/venues/{venue_id:str}/resources/{resource_id:str}", guards=DESK)
async def edit_resource(
    venue_id: str, resource_id: str, web: Web, page: Page, bearer: Bearer
) -> Template:
    venue, resource, halls = await _owned_resource(web, page, bearer, venue_id, resource_id)
    return view(
        page,
        "venue_resource.html",
        venue=venue,
        resource=resource,
        halls=halls,
        form=resource_form.form_of(resource),
        errors={},
    )


@post("/venues/{venue_id:str}/resources/{resource_id:str}", guards=DESK)
async def change_resource(
    venue_id: str, resource_id: str, web: Web, page: Page, bearer: Bearer, data: Form
) -> Template | Redirect:
    venue, resource, halls = await _owned_resource(web, page, bearer, venue_id, resource_id)
    body, errors = resource_form.resource_from_form(data)
    if body is not None:
        errors = await _refusals(web.desk.change_resource(bearer, resource_id, body))
        if not errors:
            return Redirect(f"/venues/{venue_id}/resources?saved=changed", status_code=303)
    return view(
        page,
        "venue_resource.html",
        status_code=400,
        venue=venue,
        resource=resource,
        halls=halls,
        form=data,
        errors=errors,
    )


# Opening hours


def _monday(week: str | None, zone: ZoneInfo) -> date | None:
    try:
        day = date.fromisoformat(week) if week else datetime.now(zone).date()
    except ValueError:
        return None
    return monday_of(day)


async def _hours_page(
    web: WebRuntime,
    page: PageContext,
    bearer: str,
    venue: ManagedVenue,
    *,
    week: str | None = None,
    status_code: int = 200,
    hours: HoursDoc | None = None,
    editing: int | None = None,
    form: dict[str, list[str]] | None = None,
    form_kind: str = "period",
    errors: dict[str, str] | None = None,
    saved: str | None = None,
) -> Template:
    zone = ZoneInfo(venue.timezone)
    monday = _monday(week, zone)
    week_error = monday is None
    if monday is None:
        monday = _monday(None, zone)
        assert monday is not None
    first = datetime.combine(monday, time(0), zone)
    last = first + timedelta(weeks=hours_editor.PREVIEW_WEEKS)
    if hours is None:
        published, opened = await asyncio.gather(
            web.desk.hours(bearer, venue.id), web.desk.open_intervals(bearer, venue.id, first, last)
        )
    else:
        published, opened = hours, await web.desk.open_intervals(bearer, venue.id, first, last)
    named = hours_editor.named_days(
        venue.holiday_calendar, {monday.year, (last - timedelta(days=1)).year}, page.locale
    )
    if editing is not None and form is None and 0 <= editing < len(published.periods):
        form = hours_editor.form_of(published.periods[editing])
    return view(
        page,
        "venue_hours.html",
        status_code=400 if week_error else status_code,
        venue=venue,
        hours=published,
        periods=hours_editor.period_rows(published, page.locale),
        weeks=hours_editor.preview_weeks(monday, hours_editor.PREVIEW_WEEKS, zone, opened, named),
        week_error=week_error,
        previous=(monday - timedelta(weeks=hours_editor.PREVIEW_WEEKS)).isoformat(),
        following=(monday + timedelta(weeks=hours_editor.PREVIEW_WEEKS)).isoformat(),
        editing=editing if form is not None else None,
        form=form or {},
        form_kind=form_kind,
        errors=errors or {},
        span_rows=range(hours_editor.SPAN_ROWS),
        weekdays=list(
            zip(
                hours_editor.WEEKDAYS,
                hours_editor.weekday_names(hours_editor.WEEKDAYS, page.locale),
                strict=True,
            )
        ),
        saved=saved if saved in _SAVED else None,
    )


@get("/venues/{venue_id:str}/hours", guards=DESK)
async def hours(
    venue_id: str,
    web: Web,
    page: Page,
    bearer: Bearer,
    week: Week = None,
    edit: int | None = None,
    saved: str | None = None,
) -> Template:
    venue = await venue_managed(web, page, bearer, venue_id)
    return await _hours_page(web, page, bearer, venue, week=week, editing=edit, saved=saved)


async def _form(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    sent = await request.form()
    return {key: [str(v) for v in sent.getall(key)] for key in sent}


@post("/venues/{venue_id:str}/hours/periods", guards=DESK)
async def save_period(
    request: Request[Any, Any, Any], venue_id: str, web: Web, page: Page, bearer: Bearer
) -> Template | Redirect:
    """Add a period (or a closure), or replace the one at `index`."""
    venue = await venue_managed(web, page, bearer, venue_id)
    form = await _form(request)
    kind = "closure" if (form.get("kind") or [""])[0] == "closure" else "period"
    index_text = (form.get("index") or [""])[0]
    index = int(index_text) if index_text.isdigit() else None
    period, errors = hours_editor.period_from_form(form)
    published = await web.desk.hours(bearer, venue_id)
    if period is not None:
        changed, at = hours_editor.with_period(published, period, index)
        errors = await _refusals(
            web.desk.publish_hours(bearer, venue_id, changed), within=f"periods[{at}]."
        )
        if not errors:
            saved = "changed" if index is not None else "added"
            return Redirect(f"/venues/{venue_id}/hours?saved={saved}", status_code=303)
    return await _hours_page(
        web,
        page,
        bearer,
        venue,
        status_code=400,
        hours=published,
        editing=index,
        form=form,
        form_kind=kind,
        errors=errors,
    )


@post("/venues/{venue_id:str}/hours/periods/{index:int}/delete", guards=DESK)
async def remove_period(
    venue_id: str, index: int, web: Web, page: Page, bearer: Bearer
) -> Redirect:
    await venue_managed(web, page, bearer, venue_id)  # another organisation's: refused
    published = await web.desk.hours(bearer, venue_id)
    await web.desk.publish_hours(bearer, venue_id, hours_editor.without_period(published, index))
    return Redirect(f"/venues/{venue_id}/hours?saved=removed", status_code=303)


@post("/venues/{venue_id:str}/hours/holidays", guards=DESK)
async def public_holidays(
    venue_id: str, web: Web, page: Page, bearer: Bearer, data: Form
) -> Template | Redirect:
    venue = await venue_managed(web, page, bearer, venue_id)
    published = await web.desk.hours(bearer, venue_id)
    changed = hours_editor.with_public_holidays(published, data.get("public_holidays", ""))
    if changed is None:
        return await _hours_page(
            web,
            page,
            bearer,
            venue,
            status_code=400,
            hours=published,
            form_kind="holidays",
            errors={"public_holidays": "required"},
        )
    await web.desk.publish_hours(bearer, venue_id, changed)
    return Redirect(f"/venues/{venue_id}/hours?saved=holidays", status_code=303)


ROUTES = [
    venues,
    resources,
    add_resource,
    edit_resource,
    change_resource,
    hours,
    save_period,
    remove_period,
    public_holidays,
]
