"""Notify's HTTP API: the delivery log, for the office."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter

from services.notify import store
from services.notify.schemas import Message, Status
from shared.errors import Forbidden
from shared.web import Caller, Cursor, DbSession, Limit, Page, decode_cursor, page_of


class MessageController(Controller):
    path = "/v1/messages"
    tags = ("messages",)

    @get("/")
    async def search(
        self,
        principal: Caller,
        session: DbSession,
        recipient: Annotated[str | None, QueryParameter(max_length=320)] = None,
        status: FromQuery[Status | None] = None,
        event_id: Annotated[str | None, QueryParameter(max_length=36)] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Message]:
        """The delivery log, oldest first (office, and services, which read everything)."""
        if not principal.is_office_or_service:
            raise Forbidden("the delivery log is the office's")
        rows = await store.list_deliveries(
            session,
            recipient=recipient,
            status=status,
            event_id=event_id,
            after=decode_cursor(cursor),
            limit=limit,
        )
        page = page_of(rows, limit, lambda row: row.id)
        return Page(items=[_message(row) for row in page.items], next_cursor=page.next_cursor)


def _message(row: store.DeliveryRow) -> Message:
    return Message(
        id=row.id,
        event_id=row.event_id,
        recipient=row.recipient,
        subject=row.subject,
        status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts,
        last_error=row.last_error,
        sent_at=row.sent_at,
    )


ROUTES = [MessageController]
