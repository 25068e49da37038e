"""Routes of offers: list, read, answer (with a token, or through a signed one-click link), and
the lecturer's calendar feed that carries those links."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, MediaType, Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.response import Redirect
from sqlalchemy.ext.asyncio import AsyncSession

from services.lecturers import store
from services.lecturers.clients import Booking, booking_of
from services.lecturers.domain.corps import (
    Answer,
    DeclineBody,
    Offer,
    OfferStatus,
    answered,
    ensure_may_answer,
    ensure_may_read_offer,
    offer_scope,
)
from services.lecturers.domain.feeds import FeedEntry, build_feed
from services.lecturers.domain.links import (
    OfferLink,
    answer_links,
    feed_token_matches,
    verify,
    web_link_pages,
)
from shared import ical
from shared.auth import Principal
from shared.errors import Conflict, NotFound
from shared.web import (
    Caller,
    Cursor,
    DbSession,
    Limit,
    Page,
    PathId,
    PublicDbSession,
    answer_spec,
    decode_cursor,
    page_of,
    service_state,
)

FeedToken = Annotated[str, QueryParameter(max_length=200, description="the feed's secret token")]


async def answer_offer(
    session: AsyncSession,
    booking: Booking,
    row: store.OfferRow,
    answer: Answer,
    *,
    reason: str | None,
    now: datetime,
) -> Offer:
    """Accept (the held booking confirmed first) or decline (the worker then frees the room and
    asks the next lecturer, on the `offer.declined` event)."""
    status = answered(OfferStatus(row.status), answer, now=now, expires_at=row.expires_at)
    if status is OfferStatus.ACCEPTED:
        assert row.booking_id is not None
        if not await booking.confirm(row.booking_id):
            raise Conflict(
                "the room booking for this lecture was cancelled", code="invalid_transition"
            )
    return await store.move_offer(session, row, status, reason=reason, now=now)


def _link_pages(request: Request[Any, Any, Any]) -> str:
    """Where people open the one-click links: the web service's pages."""
    return web_link_pages(service_state(request.app.state).settings.service_url("web"))


def _key(request: Request[Any, Any, Any]) -> bytes:
    """The links' key, derived from the link secret once, as the app was made."""
    key: bytes = service_state(request.app.state).extras["link_key"]
    return key


class OfferController(Controller):
    path = "/v1/offers"
    tags = ("offers",)

    @get("/")
    async def search(
        self,
        principal: Caller,
        session: DbSession,
        lecturer_id: FromQuery[str | None] = None,
        status: FromQuery[OfferStatus | None] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Offer]:
        offers = await store.list_offers(
            session,
            offer_scope(principal, lecturer_id),
            status=status,
            after=decode_cursor(cursor),
            limit=limit,
        )
        return page_of(offers, limit, lambda offer: offer.id)

    @get("/{offer_id:str}")
    async def read(self, offer_id: PathId, principal: Caller, session: DbSession) -> Offer:
        row = await store.get_offer_row(session, offer_id)
        ensure_may_read_offer(principal, row.lecturer_id, row.venue_org)
        return await store.offer_of(session, row)

    @post("/{offer_id:str}/accept", status_code=200)
    async def accept(
        self,
        request: Request[Any, Any, Any],
        offer_id: PathId,
        principal: Caller,
        session: DbSession,
    ) -> Offer:
        return await _answer_as(request, session, principal, offer_id, "accept", None)

    @post("/{offer_id:str}/decline", status_code=200)
    async def decline(
        self,
        request: Request[Any, Any, Any],
        offer_id: PathId,
        principal: Caller,
        session: DbSession,
        data: JSONBody[DeclineBody | None] = None,
    ) -> Offer:
        reason = data.reason if data else None
        return await _answer_as(request, session, principal, offer_id, "decline", reason)


async def _answer_as(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    principal: Principal,
    offer_id: str,
    answer: Answer,
    reason: str | None,
) -> Offer:
    row = await store.get_offer_row(session, offer_id, lock=True)
    ensure_may_answer(principal, row.lecturer_id)
    return await answer_offer(
        session, booking_of(request), row, answer, reason=reason, now=datetime.now(UTC)
    )


# ---------------------------------------------------------------------------------------------
# One-click links. The pages people open are the web service's (`{WEB_URL}/offers/links/{token}`,
# in the lecturer's language); this service answers them JSON. A browser that opens an old link
# here is sent there with 303: the page shows what the link would do and one button, and only a
# POST answers, so a mail scanner or a link preview that fetches the URL answers nothing.

# One URL, two shapes: caches must keep them apart, and keep neither (the URL is a credential).
_LINK_HEADERS = {"Cache-Control": "no-store", "Vary": "Accept", "Referrer-Policy": "no-referrer"}


def _wants_json(request: Request[Any, Any, Any]) -> bool:
    """Whether the caller asks for JSON rather than a page; `*/*` and no Accept get the page."""
    offered = [MediaType.HTML.value, MediaType.JSON.value]
    return request.accept.best_match(offered, default=MediaType.HTML.value) == MediaType.JSON


async def _shown(
    session: AsyncSession, offer: Offer, answer: Answer, *, done: bool
) -> Response[Any]:
    venue = (await store.venues_by_id(session, [offer.venue_id])).get(offer.venue_id)
    link = OfferLink(
        offer=offer,
        action=answer,
        done=done,
        venue_name=venue.name if venue else None,
        venue_address=venue.address if venue else None,
        timezone=venue.timezone if venue else None,
    )
    return Response(link, media_type=MediaType.JSON, headers=_LINK_HEADERS)


async def _linked_offer(
    request: Request[Any, Any, Any], session: AsyncSession, token: str, *, lock: bool
) -> tuple[store.OfferRow, Answer]:
    """The offer a link answers; 409 `invalid_transition` once the link is used or expired."""
    claim = verify(_key(request), token)
    try:
        row = await store.get_offer_row(session, claim.offer_id, lock=lock)
    except NotFound:
        raise NotFound("no such link") from None
    if claim.sequence != row.sequence or datetime.now(UTC).timestamp() >= claim.expires:
        raise Conflict("this link has been used or has expired", code="invalid_transition")
    return row, claim.answer


_LINK_RESPONSES = {
    200: answer_spec(OfferLink, "What the link does (asked for as JSON)"),
    303: ResponseSpec(
        None, description="A browser: to the link's page on the web", generate_examples=False
    ),
}


class OfferLinkController(Controller):
    path = "/v1/offer-links"
    tags = ("offers",)

    @get("/{token:str}", responses=_LINK_RESPONSES)
    async def confirm(
        self, request: Request[Any, Any, Any], token: PathId, public_session: PublicDbSession
    ) -> Response[Any]:
        """What a one-click link will do, as JSON; a browser goes to the link's page."""
        if not _wants_json(request):
            # Checked by the page it lands on, which says in words what is wrong with a link.
            return Redirect(
                f"{_link_pages(request)}/{quote(token, safe='')}",
                status_code=303,
                headers=_LINK_HEADERS,
            )
        row, answer = await _linked_offer(request, public_session, token, lock=False)
        offer = await store.offer_of(public_session, row)
        return await _shown(public_session, offer, answer, done=False)

    @post("/{token:str}", status_code=200, responses=_LINK_RESPONSES)
    async def act(
        self, request: Request[Any, Any, Any], token: PathId, public_session: PublicDbSession
    ) -> Response[Any]:
        """Give the link's answer: the offer as it is now, as JSON (the form of an old page
        posted here too, so the answer is kept whatever the caller accepts)."""
        row, answer = await _linked_offer(request, public_session, token, lock=True)
        offer = await answer_offer(
            public_session, booking_of(request), row, answer, reason=None, now=datetime.now(UTC)
        )
        return await _shown(public_session, offer, answer, done=True)


# ---------------------------------------------------------------------------------------------
# The feed


def _entry(
    request: Request[Any, Any, Any], key: bytes, found: store.FeedRow, now: datetime
) -> FeedEntry:
    row = found.offer
    links: dict[str, str] = {}
    if row.status == OfferStatus.OFFERED.value and now < row.expires_at:
        links = answer_links(key, _link_pages(request), row.id, row.sequence, row.expires_at)
    return FeedEntry(
        offer_id=row.id,
        request_id=row.request_id,
        topic=found.topic,
        venue_name=found.venue_name,
        venue_address=found.venue_address or "",
        venue_zone=row.timezone,
        start=row.start_at,
        end=row.end_at,
        status=OfferStatus(row.status).value,
        sequence=row.sequence,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        **links,
    )


class FeedController(Controller):
    path = "/v1/lecturers"
    tags = ("lecturers",)

    @get("/{lecturer_id:str}/feed.ics", media_type="text/calendar")
    async def feed(
        self,
        request: Request[Any, Any, Any],
        lecturer_id: PathId,
        token: FeedToken,
        public_session: PublicDbSession,
    ) -> Response[bytes]:
        """The lecturer's offers and lectures as iCalendar; the token is the only credential,
        so a wrong one is told apart from no lecturer at all by nothing (404 both)."""
        row = await public_session.get(store.LecturerRow, lecturer_id)
        if row is None or not feed_token_matches(row.feed_token, token):
            raise NotFound("no such feed")
        now = datetime.now(UTC)
        key = _key(request)
        entries = [
            _entry(request, key, found, now)
            for found in await store.feed_rows(public_session, row.id, now=now)
        ]
        return Response(
            build_feed(row.name, entries, now=now),
            media_type=ical.MEDIA_TYPE,
            headers={"Cache-Control": "private, max-age=300", "Referrer-Policy": "no-referrer"},
        )
