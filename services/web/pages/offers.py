"""The lecturer's pages: offers to answer, lectures to give, its availability and blackout
dates, its calendar subscription; and the one-click page behind the links in its mail and feed.

Every change is a plain form posted here and answered with a redirect back (303) to the page,
so it works without JavaScript; the lecturer service checks each right with the lecturer's own
token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from litestar.response import Redirect, Template

from services.web.clients import CatalogueClient, LecturerRecord, Offer, OfferLink
from services.web.domain.offers import (
    WEEKDAYS,
    WeeklySpan,
    closes_in,
    parse_date,
    parse_span,
    span_body,
    to_answer,
    to_give,
    webcal_url,
    weekday_names,
    with_blackout,
    without_blackout,
)
from services.web.domain.text import N_
from services.web.pages.auth import Form
from services.web.pages.views import Bearer, Catalogue, Page, Web, view
from services.web.runtime import PageContext, WebRuntime
from shared.errors import Forbidden
from shared.http import RemoteError

# The lecturer service takes a reason of at most this many characters.
MAX_REASON = 2000
Saved = Annotated[str | None, QueryParameter(required=False, max_length=20)]
# What the page says after a change, by the `saved` the change's redirect names.
SAVED = {
    "accepted": N_("You accepted the lecture: the room is booked for you."),
    "declined": N_("You declined the offer: we will ask another lecturer."),
    "availability": N_("Your weekly hours are saved."),
    "blackout_dates": N_("Your days off are saved."),
    "feed": N_(
        "Your new calendar link is ready. Subscribe again with it: the old one no longer works."
    ),
}


def _lecturer_id(page: PageContext) -> str:
    """The signed-in lecturer's id; any other role may not open these pages (403)."""
    membership = page.session.membership if page.session else None
    if membership is None or membership.role != "lecturer" or not membership.lecturer_id:
        raise Forbidden("only a lecturer has offers")
    return membership.lecturer_id


class Shown:
    """An offer as the page lists it: what, where, when in the venue's zone, and until when it
    may be answered, in words."""

    def __init__(self, offer: Offer, venue: str, now: datetime, locale: str) -> None:
        self.id = offer.id
        self.topic = offer.topic
        self.venue = venue
        self.start = offer.start
        self.end = offer.end
        self.closes = closes_in(offer.expires_at, now, locale)
        self.expires_at = offer.expires_at


@dataclass
class Desk:
    """One request of the lecturer's page: who asks, with what token, and the clients."""

    web: WebRuntime
    page: PageContext
    bearer: str
    catalogue: CatalogueClient

    @property
    def lecturer_id(self) -> str:
        return _lecturer_id(self.page)

    async def record(self) -> LecturerRecord:
        return await self.web.offers.lecturer(self.bearer, self.lecturer_id)

    async def view(self, *, status_code: int = 200, **context: Any) -> Template:
        """The page: offers to answer, lectures to give, availability, days off, calendar."""
        offered, accepted, lecturer = await asyncio.gather(
            self.web.offers.offers(self.bearer, self.lecturer_id, "offered"),
            self.web.offers.offers(self.bearer, self.lecturer_id, "accepted"),
            self.record(),
        )
        now = datetime.now(UTC)
        waiting, coming = to_answer(offered, now), to_give(accepted, now)
        # The venues of every row in one call.
        ids = sorted({offer.venue_id for offer in [*waiting, *coming]})
        venues = await self.catalogue.venues(self.bearer, ids=ids) if ids else []
        names = {venue.id: venue.name for venue in venues}
        locale = self.page.locale
        return view(
            self.page,
            "offers.html",
            status_code=status_code,
            waiting=[Shown(o, names.get(o.venue_id, ""), now, locale) for o in waiting],
            coming=[Shown(o, names.get(o.venue_id, ""), now, locale) for o in coming],
            lecturer=lecturer,
            spans=[(span, weekday_names(span.weekdays, locale)) for span in lecturer.availability],
            weekdays=[(day, weekday_names([day], locale)) for day in WEEKDAYS],
            webcal=webcal_url(lecturer.feed_url) if lecturer.feed_url else None,
            **{"errors": {}, "saved": None, "refused": None, "form": {}, **context},
        )

    async def answer(self, offer_id: str, answer: str, reason: str | None) -> Template | Redirect:
        try:
            await self.web.offers.answer(self.bearer, offer_id, answer, reason)
        except RemoteError as refused:
            if refused.remote_status not in (404, 409):
                raise
            # Answered elsewhere, expired, or withdrawn meanwhile: the list as it is now, and why.
            return await self.view(status_code=409, refused="offer_closed")
        done = "accepted" if answer == "accept" else "declined"
        return Redirect(f"/offers?saved={done}#answered", status_code=303)

    async def change(self, field: str, value: Any, form: Mapping[str, Any]) -> Template | Redirect:
        """Set one field of the lecturer's own record; a refusal is said beside the form."""
        try:
            await self.web.offers.update_lecturer(self.bearer, self.lecturer_id, {field: value})
        except RemoteError as refused:
            if refused.remote_status >= 500:
                raise
            return await self.view(status_code=400, errors={field: refused.code}, form=form)
        return Redirect(f"/offers?saved={field}#answered", status_code=303)

    async def blackouts(self, dates: list[date], form: Mapping[str, Any]) -> Template | Redirect:
        return await self.change("blackout_dates", [day.isoformat() for day in dates], form)

    async def spans(self, spans: list[WeeklySpan], form: Mapping[str, Any]) -> Template | Redirect:
        return await self.change("availability", span_body(spans), form)


def provide_desk(web: Web, page: Page, bearer: Bearer, catalogue: Catalogue) -> Desk:
    return Desk(web, page, bearer, catalogue)


Lecturing = NamedDependency[Desk]
_DESK = {"desk": Provide(provide_desk, sync_to_thread=False)}


async def lecturer_start(web: WebRuntime, page: PageContext, bearer: str) -> dict[str, Any]:
    """What a lecturer's start page shows first: how many offers wait for an answer (nothing
    for the other roles)."""
    membership = page.session.membership if page.session else None
    if membership is None or membership.role != "lecturer" or not membership.lecturer_id:
        return {}
    offered = await web.offers.offers(bearer, membership.lecturer_id, "offered")
    return {"open_offers": len(to_answer(offered, datetime.now(UTC)))}


@get("/offers", dependencies=_DESK)
async def offers_page(desk: Lecturing, saved: Saved = None) -> Template:
    return await desk.view(saved=SAVED.get(saved or ""))


@post("/offers/{offer_id:str}/accept", dependencies=_DESK)
async def accept(desk: Lecturing, offer_id: str) -> Template | Redirect:
    return await desk.answer(offer_id, "accept", None)


@post("/offers/{offer_id:str}/decline", dependencies=_DESK)
async def decline(desk: Lecturing, offer_id: str, data: Form) -> Template | Redirect:
    reason = data.get("reason", "").strip()[:MAX_REASON] or None
    return await desk.answer(offer_id, "decline", reason)


@post("/offers/blackouts", dependencies=_DESK)
async def add_blackout(desk: Lecturing, data: Form) -> Template | Redirect:
    day, error = parse_date(data.get("blackout_dates"))
    if day is None:
        return await desk.view(status_code=400, errors={"blackout_dates": error}, form=data)
    return await desk.blackouts(with_blackout((await desk.record()).blackout_dates, day), data)


@post("/offers/blackouts/remove", dependencies=_DESK)
async def remove_blackout(desk: Lecturing, data: Form) -> Template | Redirect:
    day, _ = parse_date(data.get("blackout_dates"))
    if day is None:
        return Redirect("/offers#blackouts", status_code=303)
    return await desk.blackouts(without_blackout((await desk.record()).blackout_dates, day), {})


@post("/offers/availability", dependencies=_DESK)
async def add_span(request: Request[Any, Any, Any], desk: Lecturing) -> Template | Redirect:
    sent = await request.form()
    weekdays = [str(day) for day in sent.getall("weekdays", [])]
    form = {"weekdays": weekdays, "start": sent.get("start"), "end": sent.get("end")}
    span, errors = parse_span(weekdays, sent.get("start"), sent.get("end"))
    if span is None:
        return await desk.view(status_code=400, errors=errors, form=form)
    return await desk.spans([*(await desk.record()).availability, span], form)


@post("/offers/availability/remove", dependencies=_DESK)
async def remove_span(desk: Lecturing, data: Form) -> Template | Redirect:
    spans = list((await desk.record()).availability)
    index = data.get("index", "")
    if index.isdigit() and int(index) < len(spans):
        del spans[int(index)]
    return await desk.spans(spans, {})


@get("/offers/feed")
async def confirm_new_feed(page: Page, bearer: Bearer) -> Template:
    """What a new calendar link does, and the button that makes it: a step of its own, since
    every calendar subscribed to the old link stops updating."""
    _lecturer_id(page)
    return view(page, "offers_feed.html")


@post("/offers/feed")
async def new_feed(web: Web, page: Page, bearer: Bearer) -> Redirect:
    await web.offers.new_feed(bearer, _lecturer_id(page))
    return Redirect("/offers?saved=feed#answered", status_code=303)


# ---------------------------------------------------------------------------------------------
# The one-click link: opened from mail or a calendar, usually signed out.
#
# GET shows the offer and one button; only the POST answers, so a mail scanner or a link
# preview that fetches the URL answers nothing. The POST is a form of this site like any other,
# guarded by Litestar's CSRF check: the GET sets the CSRF cookie (SameSite=Lax, HttpOnly) and puts
# the matching token in the form. A page of another site cannot POST here with that cookie
# (Lax cookies do not go along with a cross-site POST) nor read the token, so it cannot answer an
# offer for the lecturer even when it knows the link. The link's token, in the form's action,
# remains the only credential for the offer itself: no session is needed.


async def _link_page(page: PageContext, asked: Awaitable[OfferLink], token: str) -> Template:
    """The link's offer (what, when in the venue's zone, where) and its button; or, for a link
    that does not work, why in words: unknown (404), or used or expired (410)."""
    try:
        link = await asked
    except RemoteError as refused:
        if refused.remote_status not in (404, 409):
            raise
        used = refused.remote_status == 409
        return view(
            page,
            "offer_link_gone.html",
            status_code=410 if used else 404,
            reason="used" if used else "unknown",
        )
    zone = ZoneInfo(link.timezone) if link.timezone else link.offer.start.tzinfo
    return view(
        page,
        "offer_link.html",
        link=link,
        token=token,
        start=link.offer.start.astimezone(zone),
        end=link.offer.end.astimezone(zone),
    )


@get("/offers/links/{token:str}")
async def link_page(web: Web, page: Page, token: str) -> Template:
    return await _link_page(page, web.offers.link(token), token)


@post("/offers/links/{token:str}")
async def follow_link(web: Web, page: Page, token: str) -> Template:
    return await _link_page(page, web.offers.follow_link(token), token)


ROUTES = [
    offers_page,
    accept,
    decline,
    add_blackout,
    remove_blackout,
    add_span,
    remove_span,
    confirm_new_feed,
    new_feed,
    link_page,
    follow_link,
]
