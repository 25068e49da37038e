"""The office's pages: utilisation reports (a venue manager's for its venues), the lecturer
corps, matching runs, and the members and invitations of an organisation (managers' too)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from uuid import uuid4

from litestar import Request, Response, Router, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException
from litestar.params import QueryParameter
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler

from services.web.clients import (
    CatalogueClient,
    IdentityClient,
    LectureRequestBrief,
    Member,
    OfficeClient,
    OpenInvitation,
    UtilisationRow,
)
from services.web.domain.locales import LOCALES
from services.web.domain.office import (
    DONE_MESSAGES,
    GROUP_NAMES,
    GROUPS,
    RUN_STATUS_NAMES,
    ReportQuery,
    failure_message,
    heatmap_summary,
    in_city,
    invitable_roles,
    invitation_body,
    invite_form,
    may_end_membership,
    may_open,
    next_month,
    parse_month,
    reason_message,
    report_query,
    row_label,
    run_month,
)
from services.web.domain.rooms import CITY_ZONE
from services.web.pages.auth import Form
from services.web.pages.views import Bearer, Catalogue, Page, Web, field_errors, runtime_of, view
from services.web.runtime import PageContext
from shared.errors import Forbidden
from shared.http import RemoteError

Office = NamedDependency[OfficeClient]
Id = Annotated[str, QueryParameter(required=False, max_length=100)]


def provide_office(state: State) -> OfficeClient:
    return runtime_of(state).office


def _allow(page: PageContext, path: str) -> str:
    """The visitor's role where it may open the page at `path`; else the 403 page."""
    role = page.session.membership.role if page.session is not None else ""
    if not may_open(path, role):
        raise Forbidden(f"the {role} role may not open {path}")
    return role


def _today() -> date:
    return datetime.now(CITY_ZONE).date()


def _refused_fields(refused: RemoteError, fields: tuple[str, ...], fallback: str) -> dict[str, str]:
    """An API's refusal as messages beside the page's own fields: the field the API named,
    else `fallback`; the API's code where it is a specific one."""
    named = [name for name in field_errors(refused.errors) if name in fields]
    if "email" in named and refused.code == "invalid_request":
        return {"email": "invalid_email"}
    return dict.fromkeys(named, refused.code) or {fallback: refused.code}


# ---------------------------------------------------------------------------------------------
# Reports


class ReportRow:
    """A row of the utilisation table; `translated` where its label is a message id (a kind or
    a programme), not a name as the API gave it."""

    def __init__(self, group_by: str, row: UtilisationRow) -> None:
        self.label = row_label(group_by, row.key, row.label)
        self.translated = self.label != row.label
        self.row = row


def _report_links(query: ReportQuery) -> dict[str, str]:
    span = {"from": query.first.isoformat(), "to": query.last.isoformat()}
    return {
        "csv": f"/reports/utilisation.csv?{urlencode(query.form())}",
        "png": f"/reports/heatmap.png?{urlencode(span)}",
    }


@get("/reports")
async def reports(
    request: Request[Any, Any, Any], page: Page, bearer: Bearer, office: Office
) -> Template:
    _allow(page, "/reports")
    form = {key: str(value) for key, value in request.query_params.items()}
    query, errors = report_query(form, _today())
    rows: list[UtilisationRow] = []
    matrix: list[list[float]] = []
    if not errors:
        try:
            rows, matrix = await asyncio.gather(
                office.utilisation(bearer, query.api_params()),
                office.heatmap(bearer, query.heatmap_params()),
            )
        except RemoteError as refused:
            if refused.remote_status not in (400, 422):
                raise
            errors = _refused_fields(refused, ("from", "to", "group_by"), "to")
    shown = {**query.form(), **{k: form[k] for k in errors if k in form}}
    return view(
        page,
        "reports.html",
        status_code=400 if errors else 200,
        form=shown,
        errors=errors,
        query=query,
        groups=GROUPS,
        group_names=GROUP_NAMES,
        rows=[ReportRow(query.group_by, row) for row in rows],
        summary=heatmap_summary(matrix) if matrix else None,
        links=_report_links(query),
    )


def _file_query(page: PageContext, request: Request[Any, Any, Any]) -> ReportQuery:
    """The report a file link of the page asks for; a hand-made wrong one is the 400 page."""
    _allow(page, "/reports")
    form = {key: str(value) for key, value in request.query_params.items()}
    query, errors = report_query(form, _today())
    if errors:
        raise ValidationException(f"wrong report fields: {sorted(errors)}")
    return query


@get("/reports/utilisation.csv")
async def utilisation_csv(
    request: Request[Any, Any, Any], page: Page, bearer: Bearer, office: Office
) -> Response[bytes]:
    """The API's CSV (UTF-8 with a BOM, for Excel) as it came, named for the days it covers."""
    query = _file_query(page, request)
    download = await office.utilisation_csv(bearer, query.api_params())
    return Response(
        download.content,
        media_type=download.media_type,
        headers={"Content-Disposition": f'attachment; filename="{query.filename()}"'},
    )


@get("/reports/heatmap.png")
async def heatmap_png(
    request: Request[Any, Any, Any], page: Page, bearer: Bearer, office: Office
) -> Response[bytes]:
    """The booking service's picture, fetched with the visitor's token (the browser has none)."""
    query = _file_query(page, request)
    picture = await office.heatmap_png(bearer, query.heatmap_params())
    return Response(picture.content, media_type="image/png")


# ---------------------------------------------------------------------------------------------
# The corps


@get("/lecturers")
async def corps(
    page: Page,
    bearer: Bearer,
    office: Office,
    catalogue: Catalogue,
    topic: Annotated[str, QueryParameter(required=False, max_length=100)] = "",
    area_id: Id = "",
    cursor: Annotated[str, QueryParameter(required=False, max_length=200)] = "",
) -> Template:
    _allow(page, "/lecturers")
    filters = {"topic": topic.strip(), "area_id": area_id}
    asked = {key: value for key, value in filters.items() if value}
    found, areas = await asyncio.gather(
        office.corps(bearer, limit="50", **asked, **({"cursor": cursor} if cursor else {})),
        catalogue.areas(bearer),
    )
    names = {area.id: area.name for area in areas}
    following = (
        f"/lecturers?{urlencode({**asked, 'cursor': found.next_cursor})}"
        if found.next_cursor
        else None
    )
    return view(
        page,
        "lecturers.html",
        form=filters,
        lecturers=found.items,
        area_names=names,
        areas=sorted(areas, key=lambda area: area.name),
        following=following,
        first=f"/lecturers?{urlencode(asked)}" if cursor else None,
    )


# ---------------------------------------------------------------------------------------------
# Matching runs


async def _runs_page(
    page: PageContext, bearer: str, office: OfficeClient, month: str, **context: Any
) -> Template:
    runs = await office.runs(bearer, month)
    errors = context.pop("errors", {})
    return view(
        page,
        "runs.html",
        status_code=400 if errors else 200,
        month=month,
        runs=list(reversed(runs)),
        status_names=RUN_STATUS_NAMES,
        in_city=in_city,
        errors=errors,
        **{"typed": "", **context},
    )


@get("/runs")
async def runs(
    page: Page,
    bearer: Bearer,
    office: Office,
    month: Annotated[str, QueryParameter(required=False, max_length=20)] = "",
) -> Template:
    _allow(page, "/runs")
    shown = parse_month(month) if month else next_month(_today())
    if shown is None:
        return view(page, "error.html", status_code=400, status=400, code="not_a_month")
    return await _runs_page(page, bearer, office, shown)


@post("/runs")
async def start_run(page: Page, bearer: Bearer, office: Office, data: Form) -> Template | Redirect:
    _allow(page, "/runs")
    month, wrong = run_month(data.get("month", ""), _today())
    if wrong is None:
        try:
            run_id = await office.start_run(bearer, month, idempotency_key=str(uuid4()))
        except RemoteError as refused:
            if refused.remote_status not in (400, 422):
                raise
            wrong = refused.code
        else:
            return Redirect(f"/runs/{run_id}", status_code=303)
    listed = parse_month(month) or next_month(_today())
    return await _runs_page(page, bearer, office, listed, errors={"month": wrong}, typed=month)


class UnmatchedSession:
    """A session the run could not place: its request (None once withdrawn), where, why."""

    def __init__(
        self, request: LectureRequestBrief | None, venue: str, index: int, reason: str
    ) -> None:
        self.request = request
        self.venue = venue
        self.number = index + 1
        self.reason = reason_message(reason)


async def _venue_names(catalogue: CatalogueClient, bearer: str, ids: list[str]) -> dict[str, str]:
    """The names of the venues `ids`, asked a hundred at a time (the registry's limit)."""
    chunks = [ids[first : first + 100] for first in range(0, len(ids), 100)]
    found = await asyncio.gather(*(catalogue.venues(bearer, ids=chunk) for chunk in chunks))
    return {venue.id: venue.name for part in found for venue in part}


@get("/runs/{run_id:str}")
async def run(
    run_id: str, page: Page, bearer: Bearer, office: Office, catalogue: Catalogue
) -> Template:
    _allow(page, "/runs")
    found = await office.run(bearer, run_id)
    requests = {item.id: item for item in await office.requests(bearer, found.month)}
    venue_ids = sorted(
        {r.venue_id for r in requests.values()} | {a.venue_id for a in found.assignments}
    )
    venue_names, lecturers = await asyncio.gather(
        _venue_names(catalogue, bearer, venue_ids),
        office.corps_by_id(bearer, {a.lecturer_id for a in found.assignments}),
    )
    unmatched = []
    for item in found.unmatched:
        request = requests.get(item.request_id)
        venue = venue_names.get(request.venue_id, "") if request is not None else ""
        unmatched.append(UnmatchedSession(request, venue, item.session_index, item.reason))
    return view(
        page,
        "run.html",
        run=found,
        status_names=RUN_STATUS_NAMES,
        in_city=in_city,
        failure=failure_message(found.failure) if found.status == "failed" else None,
        unmatched=unmatched,
        requests=requests,
        venue_names=venue_names,
        lecturer_names=lecturers,
    )


async def _nothing() -> list[Any]:
    """Nothing, awaited beside the calls a role does need (the org list is the office's)."""
    return []


# ---------------------------------------------------------------------------------------------
# Members and invitations


class MemberRow:
    """A member of the org, one row per role held there, with whether the viewer may end it."""

    def __init__(self, member: Member, role: str, may_end: bool) -> None:
        self.member = member
        self.role = role
        self.may_end = may_end


def _org_of(page: PageContext, role: str, asked: str) -> str:
    """The org whose members the page lists: any for the office, a manager's own otherwise."""
    assert page.session is not None
    own = page.session.membership.org
    return asked if role == "office" and asked else own


async def _users_page(
    page: PageContext,
    bearer: str,
    office: OfficeClient,
    identity: IdentityClient,
    role: str,
    org: str,
    **context: Any,
) -> Template:
    members, invitations, orgs = await asyncio.gather(
        office.members(bearer, org),
        office.invitations(bearer, org),
        identity.orgs(bearer) if role == "office" else _nothing(),
    )
    rows = [
        MemberRow(member, held.role, may_end_membership(role, held.role))
        for member in sorted(members, key=lambda m: m.name or m.email)
        for held in member.memberships
        if held.org == org
    ]
    errors = context.pop("errors", {})
    return view(
        page,
        "users.html",
        status_code=400 if errors else 200,
        org=org,
        orgs=sorted(orgs, key=lambda o: o.name),
        org_name=next((o.name for o in orgs if o.id == org), org),
        members=rows,
        invitations=sorted(invitations, key=lambda i: i.created_at, reverse=True),
        roles=invitable_roles(role),
        locales=LOCALES,
        viewer_role=role,
        in_city=in_city,
        done_messages=DONE_MESSAGES,
        errors=errors,
        form=context.pop("form", {"locale": page.locale}),
        **{"done": "", **context},
    )


@get("/users")
async def users(
    page: Page,
    bearer: Bearer,
    office: Office,
    web: Web,
    org: Id = "",
    done: Annotated[str, QueryParameter(required=False, max_length=20)] = "",
) -> Template:
    role = _allow(page, "/users")
    org = _org_of(page, role, org)
    return await _users_page(page, bearer, office, web.identity, role, org, done=done)


def _back(org: str, done: str) -> Redirect:
    # To the notice: the browser moves focus to it, so a screen reader reads what was done.
    return Redirect(f"/users?{urlencode({'org': org, 'done': done})}#done", status_code=303)


@post("/users/invitations")
async def invite(
    page: Page, bearer: Bearer, office: Office, web: Web, data: Form
) -> Template | Redirect:
    role = _allow(page, "/users")
    org = _org_of(page, role, data.get("org", ""))
    typed, errors = invite_form(data, invitable_roles(role), LOCALES)
    if not errors:
        try:
            await office.invite(bearer, invitation_body(typed, org), idempotency_key=str(uuid4()))
        except RemoteError as refused:
            if refused.remote_status not in (400, 409, 422):
                raise
            errors = _refused_fields(refused, ("email", "role", "locale", "lecturer_id"), "email")
        else:
            return _back(org, "invited")
    return await _users_page(
        page, bearer, office, web.identity, role, org, errors=errors, form=data
    )


async def _open_invitation(
    office: OfficeClient, bearer: str, org: str, invitation_id: str
) -> OpenInvitation | None:
    return next((i for i in await office.invitations(bearer, org) if i.id == invitation_id), None)


@post("/users/invitations/{invitation_id:str}/withdraw")
async def withdraw(
    invitation_id: str, page: Page, bearer: Bearer, office: Office, data: Form
) -> Redirect:
    role = _allow(page, "/users")
    org = _org_of(page, role, data.get("org", ""))
    try:
        await office.withdraw(bearer, invitation_id)
    except RemoteError as refused:
        if refused.remote_status not in (404, 410):
            raise
        return _back(org, "gone")  # withdrawn, used or expired meanwhile
    return _back(org, "withdrawn")


@post("/users/invitations/{invitation_id:str}/resend")
async def resend(
    invitation_id: str, page: Page, bearer: Bearer, office: Office, data: Form
) -> Redirect:
    """A new invitation for the same address, org and role: identity voids the older one."""
    role = _allow(page, "/users")
    org = _org_of(page, role, data.get("org", ""))
    old = await _open_invitation(office, bearer, org, invitation_id)
    if old is None:
        return _back(org, "gone")
    body = {"email": old.email, "org": old.org, "role": old.role, "locale": old.locale}
    if old.name:
        body["name"] = old.name
    if old.lecturer_id:
        body["lecturer_id"] = old.lecturer_id
    await office.invite(bearer, body, idempotency_key=str(uuid4()))
    return _back(org, "resent")


@post("/users/{user_id:str}/end")
async def end_membership(
    user_id: str, page: Page, bearer: Bearer, office: Office, data: Form
) -> Redirect:
    role = _allow(page, "/users")
    org = _org_of(page, role, data.get("org", ""))
    await office.end_membership(bearer, org, user_id, data.get("role", ""))
    return _back(org, "ended")


ROUTER = Router(
    path="/",
    route_handlers=[
        reports,
        utilisation_csv,
        heatmap_png,
        corps,
        runs,
        start_run,
        run,
        users,
        invite,
        withdraw,
        resend,
        end_membership,
    ],
    dependencies={"office": Provide(provide_office, sync_to_thread=False)},
)
ROUTES: list[ControllerRouterHandler] = [ROUTER]
