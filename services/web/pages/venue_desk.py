"""What the venue manager's pages share: who may open them, and the venues it manages.

A role without the desk, or a venue of another organisation, is the 403 page: the guard and
`venue_managed` raise a plain 403, which the error handlers render as "not allowed" (the
registry would refuse the changes anyway; the pages do not show another organisation's venue
as if it could be managed)."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from services.web.clients import ManagedVenue
from services.web.domain.venue_desk import managed, may_manage, uses_desk
from services.web.runtime import PageContext, WebRuntime, page_of


def membership(page: PageContext) -> tuple[str, str]:
    """The visitor's (role, org); the pages that call this have a signed-in visitor."""
    assert page.session is not None
    return page.session.membership.role, page.session.membership.org


def _not_allowed(why: str) -> HTTPException:
    return HTTPException(status_code=403, detail=why)


def desk_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Only venue managers and the office open the desk. A signed-out visitor passes here and
    is sent to the login by the page's `bearer`."""
    page = page_of(connection.scope)
    if page.session is not None and not uses_desk(page.session.membership.role):
        raise _not_allowed("the venue manager's pages")


async def venues_managed(web: WebRuntime, page: PageContext, bearer: str) -> list[ManagedVenue]:
    role, org = membership(page)
    return managed(role, org, await web.desk.venues(bearer))


async def venue_managed(
    web: WebRuntime, page: PageContext, bearer: str, venue_id: str
) -> ManagedVenue:
    """The venue, where the visitor manages it; another organisation's is refused."""
    role, org = membership(page)
    venue = await web.desk.venue(bearer, venue_id)
    if not may_manage(role, org, venue):
        raise _not_allowed("another organisation's venue")
    return venue


DESK: list[Guard] = [desk_guard]
