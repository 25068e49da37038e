"""Reports for the office and venue managers: utilisation by group, and the weekday-hour heatmap."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.params import FromQuery

from services.booking.catalogue.reader import registry_of
from services.booking.domain.heatmap import render_heatmap_png
from services.booking.domain.reports import (
    CSV_MEDIA_TYPE,
    GroupBy,
    Heatmap,
    PictureFormat,
    TableFormat,
    Utilisation,
    csv_filename,
    heatmap_matrix,
    heatmap_subtitle,
    heatmap_title,
    row_of,
    utilisation_csv,
)
from services.booking.reports import projection
from services.booking.reports import store as reports_store
from shared.errors import FieldError, InvalidRequest
from shared.time import Interval, check_range, window
from shared.web import Caller, From, To, also_answered_as, answer_spec, service_state

PNG_MEDIA_TYPE = "image/png"


async def _scope(
    request: Request[Any, Any, Any],
    principal: Caller,
    span: Interval,
    venue_id: str | None,
    area_id: str | None,
) -> reports_store.Scope:
    if venue_id is not None and area_id is not None:
        raise InvalidRequest(
            "name a venue or an area, not both",
            errors=[FieldError("area_id", "not together with venue_id")],
        )
    return await projection.prepare(
        service_state(request.app.state).database,
        registry_of(request).http,
        principal,
        span,
        venue_id=venue_id,
        area_id=area_id,
    )


def _range(from_: Any, to: Any) -> Interval:
    span = window(from_, to)
    check_range(span)
    return span


class ReportController(Controller):
    path = "/v1/reports"
    tags = ("reports",)

    @get(
        "/utilisation",
        responses={200: answer_spec(Utilisation, "Hours per group (`format=csv`: for Excel)")},
        operation_class=also_answered_as(CSV_MEDIA_TYPE),
    )
    async def utilisation(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        from_: From,
        to: To,
        group_by: FromQuery[GroupBy] = GroupBy.VENUE,
        format: FromQuery[TableFormat] = TableFormat.JSON,  # noqa: A002 - the API's parameter name
        venue_id: FromQuery[str | None] = None,
        area_id: FromQuery[str | None] = None,
    ) -> Response[bytes] | Utilisation:
        """Open and booked hours per group over [from, to), as JSON or CSV for Excel."""
        span = _range(from_, to)
        scope = await _scope(request, principal, span, venue_id, area_id)
        async with service_state(request.app.state).database.read() as session:
            totals = await reports_store.utilisation(session, span, scope, group_by)
        rows = [row_of(group) for group in totals]
        if format is TableFormat.JSON:
            return Utilisation(items=rows)
        filename = csv_filename(group_by, from_.date(), to.date())
        return Response(
            utilisation_csv(rows),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @get(
        "/heatmap",
        responses={200: answer_spec(Heatmap, "The matrix (`format=png`: the picture)")},
        operation_class=also_answered_as(PNG_MEDIA_TYPE),
    )
    async def heatmap(
        self,
        request: Request[Any, Any, Any],
        principal: Caller,
        from_: From,
        to: To,
        venue_id: FromQuery[str | None] = None,
        area_id: FromQuery[str | None] = None,
        format: FromQuery[PictureFormat] = PictureFormat.JSON,  # noqa: A002 - the API's parameter name
    ) -> Response[bytes] | Heatmap:
        """Utilisation per ISO weekday and venue-local hour, as a matrix or a picture."""
        span = _range(from_, to)
        scope = await _scope(request, principal, span, venue_id, area_id)
        async with service_state(request.app.state).database.read() as session:
            cells = await reports_store.heatmap(session, span, scope)
            name = await reports_store.scope_name(session, scope)
        matrix = heatmap_matrix(cells)
        if format is PictureFormat.JSON:
            return Heatmap(matrix=matrix)
        picture = render_heatmap_png(
            matrix,
            title=heatmap_title(name),
            subtitle=heatmap_subtitle(from_.date(), to.date()),
        )
        return Response(picture, media_type=PNG_MEDIA_TYPE)
