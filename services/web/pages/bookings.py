"""Booking a room (with equipment, a weekly repeat), the confirmation, and one's bookings:
upcoming, past and cancelled, with cancel, cancel the rest of a series, and the head count that
came. Every right is the booking service's to check; these pages ask with the visitor's token."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Request, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from services.web.clients import (
    BookingMade,
    CatalogueClient,
    RoomToBook,
    booking_of,
    bookings_between,
    cancel_series,
    change_booking,
    make_booking,
    room_to_book,
)
from services.web.domain.bookings import (
    BOOKING_ROLES,
    PROGRAMMES,
    SECTIONS,
    STATUS_WORDS,
    Listed,
    Problem,
    explain_refusal,
    form_times,
    may_cancel,
    may_record_attendance,
    place_of,
    problems_by_field,
    read_attendance,
    read_booking_form,
    read_reason,
    refusal_words,
    sections,
    skipped_words,
)
from services.web.pages.views import Bearer, Catalogue, Page, Web, view
from services.web.runtime import PageContext, WebRuntime
from services.web.store import Confirmations
from shared.contracts import Rules
from shared.errors import Forbidden
from shared.http import RemoteError

# The list shows bookings from half a year back to half a year ahead (the booking service's
# horizon is shorter): one window, asked in pages of 500.
LIST_REACH = timedelta(days=183)
Key = Annotated[str, QueryParameter(max_length=100)]


def _booker(page: PageContext) -> None:
    """A role that does not book rooms (a lecturer) gets the 403 page."""
    if page.session is not None and page.session.membership.role not in BOOKING_ROLES:
        raise Forbidden("this role does not book rooms")


def _zone(room: RoomToBook) -> ZoneInfo:
    return ZoneInfo(room.venue.timezone)


def _rules(room: RoomToBook) -> Rules:
    return Rules(**msgspec.structs.asdict(room.resource.rules))


def _form_view(
    page: PageContext,
    room: RoomToBook,
    values: dict[str, Any],
    *,
    problems: Sequence[Problem] = (),
    failures: Sequence[Any] = (),
    status_code: int = 200,
) -> Template:
    # A new key for each form shown: a refused form sent again is another request.
    return view(
        page,
        "booking_form.html",
        status_code=status_code,
        room=room,
        values=values,
        chosen=set(values.get("resource_ids", [])),
        problems=problems_by_field(problems),
        failures=failures,
        programmes=PROGRAMMES,
        idempotency_key=str(uuid.uuid4()),
    )


@get("/bookings/new")
async def new_booking(
    page: Page,
    bearer: Bearer,
    catalogue: Catalogue,
    resource_id: Annotated[str | None, QueryParameter(required=False, max_length=100)] = None,
    start: Annotated[str | None, QueryParameter(required=False, max_length=60)] = None,
    end: Annotated[str | None, QueryParameter(required=False, max_length=60)] = None,
) -> Template | Redirect:
    """The form for the room and the time a free cell of the week grid names."""
    _booker(page)
    if not resource_id:
        return Redirect("/rooms", status_code=303)
    room = await room_to_book(catalogue, bearer, resource_id)
    values = {"mode": "skip_conflicts", **_typed(start, end, _zone(room))}
    return _form_view(page, room, values)


def _typed(start: str | None, end: str | None, zone: ZoneInfo) -> dict[str, str]:
    """The typed fields for the instants of a week grid's link; none for a hand-made one,
    whose times are then left to fill in."""
    try:
        return form_times(
            datetime.fromisoformat(start or ""), datetime.fromisoformat(end or ""), zone
        )
    except (ValueError, TypeError):
        return {}


async def _form_of(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    form = await request.form()
    return {key: [str(v) for v in form.getall(key)] for key in form}


@post("/bookings")
async def create_booking(
    request: Request[Any, Any, Any], web: Web, page: Page, bearer: Bearer, catalogue: Catalogue
) -> Template | Redirect:
    """Book, or show the form again with what is wrong beside each field."""
    _booker(page)
    form = await _form_of(request)
    room_ids = [value for value in form.get("resource_ids", []) if value]
    if not room_ids:
        return Redirect("/rooms", status_code=303)
    room = await room_to_book(catalogue, bearer, room_ids[0])
    values: dict[str, Any] = {key: (vals[0] if vals else "") for key, vals in form.items()}
    values["resource_ids"] = room_ids
    if "date" not in form:
        values |= _typed(values.get("start"), values.get("end"), _zone(room))
    draft, problems = read_booking_form(form, _zone(room))
    if draft is None:
        return _form_view(page, room, values, problems=problems, status_code=400)
    key = values.get("idempotency_key") or str(uuid.uuid4())
    try:
        made = await make_booking(catalogue, bearer, draft.body(), key)
    except RemoteError as refused:
        if refused.remote_status not in (409, 422, 429):
            raise
        problems, failures = explain_refusal(
            refused.code,
            refused.errors,
            refused.detail,
            rules=_rules(room),
            capacity=room.resource.capacity,
            zone=_zone(room),
            locale=page.locale,
        )
        return _form_view(page, room, values, problems=problems, failures=failures, status_code=400)
    kept = _Made(made=made, room=room.resource.name, venue=room.venue.name)
    assert page.session_id is not None
    await _confirmations(web).keep(page.session_id, key, msgspec.json.encode(kept))
    return Redirect(f"/bookings/made/{key}", status_code=303)


class _Made(msgspec.Struct, frozen=True):
    made: BookingMade
    room: str
    venue: str


def _confirmations(web: WebRuntime) -> Confirmations:
    return Confirmations(web.sessions.redis)


@get("/bookings/made/{key:str}")
async def confirmation(key: str, web: Web, page: Page, bearer: Bearer) -> Template | Redirect:
    """What the form made: confirmed or awaiting approval, in words, and a repeat's skipped
    dates. The browser lands here after the POST; the message takes the focus."""
    assert page.session_id is not None
    found = await _confirmations(web).find(page.session_id, key[:100])
    if found is None:
        return Redirect("/bookings", status_code=303)
    kept = msgspec.json.decode(found, type=_Made)
    made = kept.made
    booked = (
        made.bookings
        if made.series_id is not None
        else [
            Listed(
                id=made.id or "",
                resource_ids=[],
                venue_id="",
                org="",
                start=made.start or datetime.now(UTC),
                end=made.end or datetime.now(UTC),
                status=made.status or "confirmed",
                purpose="",
            )
        ]
    )
    return view(
        page,
        "booking_made.html",
        kept=kept,
        booked=booked,
        pending=any(b.status == "pending" for b in booked),
        skipped=made.skipped,
        skipped_words=skipped_words,
    )


async def _listing(
    page: PageContext,
    bearer: str,
    catalogue: CatalogueClient,
    *,
    show: str,
    done: str | None = None,
    count: int | None = None,
    wrong: dict[str, str] | None = None,
) -> Template:
    now = datetime.now(UTC)
    found = await bookings_between(catalogue, bearer, now - LIST_REACH, now + LIST_REACH)
    resource_names, venue_names = await _names(
        catalogue, bearer, sorted({b.venue_id for b in found})
    )
    split = sections(found, now)
    chosen = show if show in SECTIONS else "upcoming"
    return view(
        page,
        "bookings.html",
        status_code=400 if wrong else 200,
        sections=split,
        show=chosen,
        rows=getattr(split, chosen),
        place_of=lambda b: place_of(b, resource_names, venue_names),
        status_words=STATUS_WORDS,
        may_cancel=lambda b: may_cancel(b, now),
        may_record=lambda b: may_record_attendance(b, now),
        done=done,
        count=count,
        wrong=wrong or {},
    )


@get("/bookings")
async def bookings(
    page: Page,
    bearer: Bearer,
    catalogue: Catalogue,
    show: Annotated[str, QueryParameter(max_length=20)] = "upcoming",
    done: Annotated[str | None, QueryParameter(required=False, max_length=20)] = None,
    count: Annotated[int | None, QueryParameter(required=False, ge=0, le=1000)] = None,
) -> Template:
    _booker(page)
    return await _listing(page, bearer, catalogue, show=show, done=done, count=count)


async def _names(
    catalogue: CatalogueClient, bearer: str, venue_ids: list[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The names of the venues and of their resources: two calls, however many bookings."""
    if not venue_ids:
        return {}, {}
    venues, resources = await asyncio.gather(
        catalogue.venues(bearer, ids=venue_ids[:100]),
        catalogue.resources(bearer, venue_ids=venue_ids[:100], limit=500),
    )
    return {r.id: r.name for r in resources}, {v.id: v.name for v in venues}


async def _cancel_view(
    page: PageContext,
    bearer: str,
    catalogue: CatalogueClient,
    booking_id: str,
    *,
    problem: Problem | None = None,
) -> Template:
    booking = await booking_of(catalogue, bearer, booking_id)
    resource_names, venue_names = await _names(catalogue, bearer, [booking.venue_id])
    return view(
        page,
        "booking_cancel.html",
        status_code=200 if problem is None else 409,
        booking=booking,
        place=place_of(booking, resource_names, venue_names),
        problems={} if problem is None else {"form": problem},
        status_words=STATUS_WORDS,
    )


@get("/bookings/{booking_id:str}/cancel")
async def cancel_form(
    booking_id: str, page: Page, bearer: Bearer, catalogue: Catalogue
) -> Template:
    """Ask for the reason before cancelling; for a series, offer to cancel the rest of it."""
    _booker(page)
    return await _cancel_view(page, bearer, catalogue, booking_id)


@post("/bookings/{booking_id:str}/cancel")
async def cancel(
    booking_id: str,
    request: Request[Any, Any, Any],
    page: Page,
    bearer: Bearer,
    catalogue: Catalogue,
) -> Template | Redirect:
    _booker(page)
    form = await _form_of(request)
    reason = read_reason((form.get("reason") or [""])[0])
    try:
        await change_booking(
            catalogue, bearer, booking_id, "cancel", {} if reason is None else {"reason": reason}
        )
    except RemoteError as refused:
        if refused.code != "invalid_transition":
            raise
        problem = Problem("form", refusal_words(refused.code))
        return await _cancel_view(page, bearer, catalogue, booking_id, problem=problem)
    return Redirect("/bookings?show=cancelled&done=cancelled", status_code=303)


@post("/bookings/series/{series_id:str}/cancel")
async def cancel_rest(series_id: str, page: Page, bearer: Bearer, catalogue: Catalogue) -> Redirect:
    """Cancel every occurrence of a series that has not started yet."""
    _booker(page)
    cancelled = await cancel_series(catalogue, bearer, series_id)
    return Redirect(f"/bookings?show=cancelled&done=series&count={cancelled}", status_code=303)


@post("/bookings/{booking_id:str}/attendance")
async def attendance(
    booking_id: str,
    request: Request[Any, Any, Any],
    page: Page,
    bearer: Bearer,
    catalogue: Catalogue,
) -> Template | Redirect:
    """The head count that came, after the end."""
    _booker(page)
    form = await _form_of(request)
    attended = read_attendance((form.get("attended") or [""])[0])
    if attended is None:
        return await _listing(
            page, bearer, catalogue, show="past", wrong={booking_id: "not_a_count"}
        )
    try:
        await change_booking(catalogue, bearer, booking_id, "attendance", {"attended": attended})
    except RemoteError as refused:
        if refused.code != "invalid_transition":
            raise
        return await _listing(
            page, bearer, catalogue, show="past", wrong={booking_id: refused.code}
        )
    return Redirect("/bookings?show=past&done=attendance", status_code=303)


ROUTES = [
    new_booking,
    create_booking,
    confirmation,
    bookings,
    cancel_form,
    cancel,
    cancel_rest,
    attendance,
]
