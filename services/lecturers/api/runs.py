"""Routes of matching runs: ask for one (it runs on the worker) and read how it went."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import FromQuery, JSONBody

from services.lecturers import store
from services.lecturers.domain.corps import Month, check_month_ahead
from services.lecturers.domain.runs import Run, RunAccepted, RunCreate
from shared.auth import Role
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
)


class RunController(Controller):
    path = "/v1/matching/runs"
    tags = ("matching",)

    @post(
        "/",
        status_code=202,
        responses={202: answer_spec(RunAccepted, description="The run, queued")},
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RunCreate],
        principal: Caller,
        session: DbSession,
    ) -> Response[bytes]:
        """Queue a run for the month; 202 at once, the worker does the rest."""
        principal.require(Role.OFFICE)
        now = datetime.now(UTC)
        check_month_ahead(data.month, now.date())

        async def make() -> RunAccepted:
            run = await store.create_run(
                session,
                run_id=new_id(),
                month=data.month,
                request_ids=None,
                created_by=principal.sub,
                now=now,
            )
            return RunAccepted(run_id=run.id, status=run.status)

        return await create_once(request, session, principal, make, status=202)

    @get("/{run_id:str}")
    async def read(self, run_id: PathId, principal: Caller, session: DbSession) -> Run:
        principal.require(Role.SERVICE)  # the office's, and a service reads everything
        return (await store.get_run_row(session, run_id)).to_domain()

    @get("/")
    async def search(
        self,
        principal: Caller,
        session: DbSession,
        month: FromQuery[Month | None] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[Run]:
        """The runs, oldest first (of one month where `month` is given): the office's pages
        list them, so a run started elsewhere (the demo's, a script's) is found too."""
        principal.require(Role.SERVICE)
        rows = await store.list_runs(session, month=month, after=decode_cursor(cursor), limit=limit)
        page = page_of(rows, limit, lambda row: row.id)
        return Page(items=[row.to_domain() for row in page.items], next_cursor=page.next_cursor)
