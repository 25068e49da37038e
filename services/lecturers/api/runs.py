"""Routes of matching runs: ask for one (it runs on the worker) and read how it went."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody

from services.lecturers import store
from services.lecturers.domain.corps import check_month_ahead
from services.lecturers.domain.runs import Run, RunAccepted, RunCreate
from shared.auth import Role
from shared.ids import new_id
from shared.web import Caller, DbSession, PathId, answer_spec, create_once


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
