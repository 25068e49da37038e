"""The approval queue: the bookings waiting at the visitor's venues, approved or rejected with a
reason. Each decision is a plain form (Post/Redirect/Get without script); where htmx runs, the
card is swapped for the outcome in place. Rooms held for offered lectures are listed apart,
read-only: the lecturer service confirms or releases them."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.response import Redirect, Template

from services.web.badges import (
    forget_pending_approvals,
    pending_approvals,
    remember_pending_approvals,
)
from services.web.clients import Booking, ManagedVenue
from services.web.domain.venue_desk import PROGRAMME_NAMES, awaiting, decision, managed
from services.web.pages.auth import Form
from services.web.pages.venue_desk import DESK, membership
from services.web.pages.views import Bearer, Page, Web, view
from services.web.runtime import PageContext, WebRuntime
from shared.errors import ServiceError
from shared.http import RemoteError


class Card(msgspec.Struct, frozen=True):
    """A booking with what the page says of it in words: where, and who asks."""

    booking: Booking
    venue: str
    resources: list[str]
    who: str


def _is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


async def _queue(web: WebRuntime, page: PageContext, bearer: str) -> tuple[list[Card], list[Card]]:
    """The bookings waiting for a decision and the lecture holds, at the visitor's venues."""
    role, org = membership(page)
    venues, asked, held, known = await asyncio.gather(
        web.desk.venues(bearer),
        web.desk.pending(bearer, hold=False),
        web.desk.pending(bearer, hold=True),
        web.identity.orgs(bearer),
    )
    orgs = {org.id: org.name for org in known}
    mine: dict[str, ManagedVenue] = {v.id: v for v in managed(role, org, venues)}
    waiting, holds = awaiting(asked, mine), awaiting(held, mine)
    venue_ids = sorted({b.venue_id for b in (*waiting, *holds)})
    resources = await web.desk.resources(bearer, venue_ids) if venue_ids else []
    names = {r.id: r.name for r in resources}

    def card(booking: Booking) -> Card:
        return Card(
            booking=booking,
            venue=mine[booking.venue_id].name,
            resources=[names.get(rid, rid) for rid in booking.resource_ids],
            who=orgs.get(booking.org, booking.org),
        )

    return [card(b) for b in waiting], [card(b) for b in holds]


async def _page(
    web: WebRuntime,
    page: PageContext,
    bearer: str,
    *,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    reasons: dict[str, str] | None = None,
    done: str | None = None,
) -> Template:
    waiting, holds = await _queue(web, page, bearer)
    if membership(page)[0] == "venue_manager" and page.session_id is not None:
        # The queue just counted is newer than the navigation's cached count: show it there too.
        page.badges["/approvals"] = len(waiting)
        await remember_pending_approvals(web.sessions.redis, page.session_id, len(waiting))
    return view(
        page,
        "approvals.html",
        status_code=status_code,
        waiting=waiting,
        holds=holds,
        errors=errors or {},
        reasons=reasons or {},
        done=done if done in ("approved", "rejected") else None,
        programme_names=PROGRAMME_NAMES,
    )


async def _badge(web: WebRuntime, page: PageContext, bearer: str) -> int | None:
    """The navigation's new count, for the page that changes in place (a venue manager's)."""
    role, org = membership(page)
    if role != "venue_manager" or page.session_id is None:
        return None
    try:
        return await pending_approvals(web.sessions.redis, web.desk, page.session_id, bearer, org)
    except ServiceError:  # the decision is made; the count follows on the next page
        return None


@get("/approvals", guards=DESK)
async def approvals(web: Web, page: Page, bearer: Bearer, done: str | None = None) -> Template:
    return await _page(web, page, bearer, done=done)


async def _decide(
    request: Request[Any, Any, Any],
    web: WebRuntime,
    page: PageContext,
    bearer: str,
    booking_id: str,
    action: str,
    data: dict[str, str],
) -> Template | Redirect:
    reason = data.get("reason", "")
    decided, problem = decision(action, reason)
    if decided is not None:
        try:
            booking = await web.desk.decide(bearer, booking_id, decided.action, decided.reason)
        except RemoteError as refused_here:
            if refused_here.remote_status >= 500:
                raise
            problem = refused_here.code
    if problem is not None:
        if _is_htmx(request):
            # Answered with 200: htmx swaps only successful answers into the page.
            waiting, _ = await _queue(web, page, bearer)
            found = next((card for card in waiting if card.booking.id == booking_id), None)
            return view(
                page,
                "approval_card.html",
                found=found,
                booking_id=booking_id,
                errors={booking_id: problem},
                reasons={booking_id: reason},
                programme_names=PROGRAMME_NAMES,
            )
        errors = {booking_id: problem}
        return await _page(
            web, page, bearer, status_code=400, errors=errors, reasons={booking_id: reason}
        )
    if page.session_id is not None:
        await forget_pending_approvals(web.sessions.redis, page.session_id)
    outcome = "approved" if action == "approve" else "rejected"
    if _is_htmx(request):
        return view(
            page,
            "approval_done.html",
            booking=booking,
            outcome=outcome,
            waiting=await _badge(web, page, bearer),
        )
    return Redirect(f"/approvals?done={outcome}", status_code=303)


@post("/approvals/{booking_id:str}/{action:str}", guards=DESK)
async def decide(
    request: Request[Any, Any, Any],
    booking_id: str,
    action: str,
    web: Web,
    page: Page,
    bearer: Bearer,
    data: Form,
) -> Template | Redirect:
    """`approve` or `reject` (with a reason) a booking waiting at the visitor's venue."""
    return await _decide(request, web, page, bearer, booking_id, action, data)


ROUTES = [approvals, decide]
