"""Routes of the corps and the schools' requests: create, read, list, change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import FromQuery, JSONBody

from services.lecturers import store
from services.lecturers.clients import registry_of
from services.lecturers.domain.corps import (
    Lecturer,
    LecturerCreate,
    LectureRequest,
    LecturerUpdate,
    Month,
    OfferStatus,
    RequestCreate,
    RequestStatus,
    check_month_ahead,
    ensure_may_manage_feed,
    ensure_may_read_lecturer,
    ensure_may_read_request,
    ensure_may_request,
    ensure_may_update_lecturer,
    request_scope,
    sees_feed_url,
)
from services.lecturers.domain.links import new_feed_token
from shared.auth import Principal, Role
from shared.errors import Conflict
from shared.ids import new_id
from shared.web import (
    Caller,
    Cursor,
    DbSession,
    Limit,
    Page,
    PathId,
    answer_spec,
    create_once,
    decode_cursor,
    page_of,
    service_state,
)


def feed_url(request: Request[Any, Any, Any], row: store.LecturerRow) -> str:
    """The lecturer's secret feed address, on the service's public base URL."""
    base = service_state(request.app.state).settings.service_url("lecturers")
    return f"{base}/v1/lecturers/{row.id}/feed.ics?token={row.feed_token}"


def _shown(
    request: Request[Any, Any, Any], principal: Principal, row: store.LecturerRow
) -> Lecturer:
    return row.to_domain(feed_url(request, row) if sees_feed_url(principal, row.id) else None)


class LecturerController(Controller):
    path = "/v1/lecturers"
    tags = ("lecturers",)

    @post("/", responses={201: answer_spec(Lecturer, description="The lecturer made")})
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LecturerCreate],
        principal: Caller,
        session: DbSession,
    ) -> Response[bytes]:
        principal.require(Role.OFFICE)
        await registry_of(request).ensure_area(data.area_id)

        async def make() -> Lecturer:
            row = await store.create_lecturer(
                session,
                lecturer_id=new_id(),
                data=data,
                feed_token=new_feed_token(),
                now=datetime.now(UTC),
            )
            return _shown(request, principal, row)

        return await create_once(request, session, principal, make)

    @get("/")
    async def search(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        session: DbSession,
        topic: FromQuery[str | None] = None,
        area_id: FromQuery[str | None] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Lecturer]:
        rows = await store.list_lecturers(
            session,
            topic=topic,
            area_id=area_id,
            only=principal.lecturer_id if principal.role is Role.LECTURER else None,
            after=decode_cursor(cursor),
            limit=limit,
        )
        page = page_of(rows, limit, lambda row: row.id)
        return Page(
            items=[_shown(request, principal, row) for row in page.items],
            next_cursor=page.next_cursor,
        )

    @get("/{lecturer_id:str}")
    async def read(
        self,
        request: Request[Any, Any, Any],
        lecturer_id: PathId,
        principal: Caller,
        session: DbSession,
    ) -> Lecturer:
        ensure_may_read_lecturer(principal, lecturer_id)
        return _shown(request, principal, await store.get_lecturer_row(session, lecturer_id))

    @patch("/{lecturer_id:str}")
    async def update(
        self,
        request: Request[Any, Any, Any],
        lecturer_id: PathId,
        data: JSONBody[LecturerUpdate],
        principal: Caller,
        session: DbSession,
    ) -> Lecturer:
        ensure_may_update_lecturer(principal, lecturer_id, data)
        row = await store.get_lecturer_row(session, lecturer_id)
        if isinstance(data.area_id, str) and data.area_id != row.area_id:
            await registry_of(request).ensure_area(data.area_id)
        row = await store.update_lecturer(session, row, data, now=datetime.now(UTC))
        return _shown(request, principal, row)

    @post("/{lecturer_id:str}/feed-token", status_code=200)
    async def new_feed_address(
        self,
        request: Request[Any, Any, Any],
        lecturer_id: PathId,
        principal: Caller,
        session: DbSession,
    ) -> Lecturer:
        """Give the lecturer a new feed address; the old one stops working at once."""
        ensure_may_manage_feed(principal, lecturer_id)
        row = await store.get_lecturer_row(session, lecturer_id)
        row.feed_token = new_feed_token()
        row.updated_at = datetime.now(UTC)
        return _shown(request, principal, row)


class RequestController(Controller):
    path = "/v1/requests"
    tags = ("requests",)

    @post("/", responses={201: answer_spec(LectureRequest, description="The request made")})
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RequestCreate],
        principal: Caller,
        session: DbSession,
    ) -> Response[bytes]:
        now = datetime.now(UTC)
        check_month_ahead(data.month, now.date())
        venue = await registry_of(request).venue(data.venue_id)
        ensure_may_request(principal, venue["owner_org"])

        async def make() -> LectureRequest:
            kept = await store.keep_venue(session, venue, now=now)
            return await store.create_request(
                session,
                request_id=new_id(),
                data=data,
                venue=kept,
                created_by=principal.sub,
                now=now,
            )

        return await create_once(request, session, principal, make)

    @get("/")
    async def search(
        self,
        principal: Caller,
        session: DbSession,
        month: FromQuery[Month | None] = None,
        venue_id: FromQuery[str | None] = None,
        status: FromQuery[RequestStatus | None] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[LectureRequest]:
        requests = await store.list_requests(
            session,
            org=request_scope(principal),
            month=month,
            venue_id=venue_id,
            status=status,
            after=decode_cursor(cursor),
            limit=limit,
        )
        return page_of(requests, limit, lambda item: item.id)

    @get("/{request_id:str}")
    async def read(
        self, request_id: PathId, principal: Caller, session: DbSession
    ) -> LectureRequest:
        row = await store.get_request_row(session, request_id)
        ensure_may_read_request(principal, row.org)
        return row.to_domain()

    @post("/{request_id:str}/cancel", status_code=200)
    async def cancel(
        self, request_id: PathId, principal: Caller, session: DbSession
    ) -> LectureRequest:
        """Withdraw a request: its open and accepted offers are cancelled and their rooms freed."""
        row = await store.get_request_row(session, request_id, lock=True)
        ensure_may_read_request(principal, row.org)
        ensure_may_request(principal, row.org)
        if row.status == RequestStatus.CANCELLED.value:
            raise Conflict("the request is already cancelled", code="invalid_transition")
        now = datetime.now(UTC)
        await store.cancel_request(session, row, now=now)
        for offer in await store.live_offers_of_request(session, request_id):
            await store.move_offer(
                session, offer, OfferStatus.CANCELLED, reason="request withdrawn", now=now
            )
        return row.to_domain()
