"""The lecture requests of the visitor's venues (a venue manager: its own venues'; the office:
every venue's), as the lecturer service has them."""

from __future__ import annotations

import asyncio

from litestar import get
from litestar.response import Template

from services.web.domain.formatting import month_name
from services.web.domain.venue_desk import (
    PROGRAMME_NAMES,
    REQUEST_STATUS_NAMES,
    managed,
)
from services.web.pages.venue_desk import DESK, membership
from services.web.pages.views import Bearer, Page, Web, view


@get("/requests", guards=DESK)
async def lecture_requests(web: Web, page: Page, bearer: Bearer) -> Template:
    role, org = membership(page)
    venues, requests = await asyncio.gather(
        web.desk.venues(bearer), web.desk.lecture_requests(bearer)
    )
    names = {venue.id: venue.name for venue in managed(role, org, venues)}
    shown = sorted(
        (r for r in requests if r.venue_id in names),
        key=lambda r: (r.month, names[r.venue_id], r.topic),
    )
    return view(
        page,
        "lecture_requests.html",
        requests=shown,
        venue_names=names,
        months={r.month: month_name(r.month, page.locale) for r in shown},
        programme_names=PROGRAMME_NAMES,
        status_names=REQUEST_STATUS_NAMES,
    )


ROUTES = [lecture_requests]
