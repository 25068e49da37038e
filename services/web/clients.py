"""The web service's clients of the other services' APIs.

Every call for a signed-in person carries that person's own access token, so each service checks
the rights it always checks; the web service has no rights of its own beyond trading an OpenID
Connect code with its client credentials. Refusals come back as `RemoteError` with the API's
status, code and field errors, which the pages put in words.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import msgspec

from services.web.domain.bookings import Listed
from services.web.domain.offers import WeeklySpan
from services.web.domain.sessions import Membership
from shared.config import ConfigurationError, Settings
from shared.errors import ServiceUnavailable
from shared.http import RemoteError, ServiceClient

T = TypeVar("T")


class Tokens(msgspec.Struct, frozen=True):
    access_token: str
    expires_in: float
    refresh_token: str
    memberships: list[Membership]


class Account(msgspec.Struct, frozen=True):
    id: str
    email: str
    name: str
    locale: str
    memberships: list[Membership]


class Org(msgspec.Struct, frozen=True):
    id: str
    name: str
    kind: str


class InvitationPreview(msgspec.Struct, frozen=True):
    email: str
    org: str
    org_name: str
    role: str
    expires_at: str
    existing_user: bool
    name: str | None = None
    locale: str | None = None


class ResetPreview(msgspec.Struct, frozen=True):
    email: str
    expires_at: str


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class IdentityClient:
    """Identity's token endpoint, accounts, invitations and password resets."""

    def __init__(self, settings: Settings) -> None:
        self._http = ServiceClient(caller=None, target="identity", settings=settings)
        self._client_secret = settings.client_secret
        self._oidc_enabled: bool | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _tokens(self, grant: dict[str, Any]) -> Tokens:
        response = await self._http.request("POST", "/v1/token", body=grant)
        return msgspec.json.decode(response.content, type=Tokens)

    async def password_grant(self, email: str, password: str) -> Tokens:
        return await self._tokens(
            {"grant_type": "password", "username": email, "password": password}
        )

    async def refresh(self, refresh_token: str, membership: Membership | None = None) -> Tokens:
        grant: dict[str, Any] = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if membership is not None:
            grant |= {"org": membership.org, "role": membership.role}
        return await self._tokens(grant)

    async def code_grant(self, code: str) -> Tokens:
        """The tokens for an OpenID Connect login's one-time code, asked with the web service's
        own client credentials (identity takes codes from no other client)."""
        if not self._client_secret:
            raise ConfigurationError("the web service has no COMMONROOM_CLIENT_SECRET")
        return await self._tokens(
            {
                "grant_type": "authorization_code",
                "code": code,
                "client_id": "web",
                "client_secret": self._client_secret,
            }
        )

    async def logout(self, refresh_token: str) -> None:
        await self._http.request("POST", "/v1/logout", body={"refresh_token": refresh_token})

    async def orgs(self, token: str) -> list[Org]:
        """Every organisation, for its name where a page would otherwise show its id."""
        return await every_item(self._http, "/v1/orgs", Org, token)

    async def me(self, token: str) -> Account:
        response = await self._http.request("GET", "/v1/me", headers=_bearer(token))
        return msgspec.json.decode(response.content, type=Account)

    async def update_me(self, token: str, **changes: str) -> Account:
        response = await self._http.request("PATCH", "/v1/me", body=changes, headers=_bearer(token))
        return msgspec.json.decode(response.content, type=Account)

    async def invitation(self, token: str) -> InvitationPreview:
        return await self._http.get(f"/v1/invitations/{token}", InvitationPreview)

    async def accept_invitation(
        self, token: str, *, password: str | None, name: str | None, bearer: str | None
    ) -> None:
        body = {"password": password, "name": name}
        await self._http.request(
            "POST",
            f"/v1/invitations/{token}/accept",
            body={k: v for k, v in body.items() if v is not None},
            headers=_bearer(bearer) if bearer else None,
        )

    async def request_reset(self, email: str) -> None:
        await self._http.request("POST", "/v1/password-reset", body={"email": email})

    async def reset_preview(self, token: str) -> ResetPreview:
        return await self._http.get(f"/v1/password-reset/{token}", ResetPreview)

    async def reset_password(self, token: str, password: str) -> None:
        await self._http.request("POST", f"/v1/password-reset/{token}", body={"password": password})

    async def oidc_enabled(self) -> bool:
        """Whether identity has a city provider configured. Identity's login path says so: 404
        `oidc_not_configured` where none is, and a refusal of the made-up `return_to` where one
        is. Asked once per process: the setting changes only with a restart of identity."""
        if self._oidc_enabled is None:
            try:
                await self._http.request("GET", "/v1/oidc/login", params={"return_to": "-"})
                enabled = True  # pragma: no cover - identity refuses "-" as a return_to
            except RemoteError as refused:
                enabled = refused.code != "oidc_not_configured"
            except ServiceUnavailable:
                return False  # not remembered: asked again once identity answers
            self._oidc_enabled = enabled
        return self._oidc_enabled


class Area(msgspec.Struct, frozen=True):
    id: str
    name: str
    parent_id: str | None = None


class Venue(msgspec.Struct, frozen=True):
    id: str
    name: str
    kind: str
    area_id: str
    owner_org: str
    address: str | None = None
    timezone: str = "Asia/Shanghai"


class Resource(msgspec.Struct, frozen=True):
    id: str
    venue_id: str
    name: str
    type: str
    capacity: int | None = None
    features: list[str] = msgspec.field(default_factory=list)
    requires_approval: bool = False


class Interval(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime


class Availability(msgspec.Struct, frozen=True):
    resource_id: str
    name: str
    venue_id: str
    type: str
    capacity: int | None
    free: list[Interval]


class _Page(msgspec.Struct, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class CatalogueClient:
    """The registry's catalogue and booking's free time, read with the visitor's token. Each
    page asks in batches: one call for many venues, never one per row."""

    def __init__(self, settings: Settings) -> None:
        self.registry = ServiceClient(caller=None, target="registry", settings=settings)
        self.booking = ServiceClient(caller=None, target="booking", settings=settings)

    async def aclose(self) -> None:
        await self.registry.aclose()
        await self.booking.aclose()

    @staticmethod
    async def _page(
        http: ServiceClient, path: str, item: type[T], token: str, params: dict[str, Any]
    ) -> list[T]:
        response = await http.request("GET", path, params=params, headers=_bearer(token))
        return msgspec.json.decode(response.content, type=_Page[item]).items  # type: ignore[valid-type]

    async def areas(self, token: str) -> list[Area]:
        return await self._page(self.registry, "/v1/areas", Area, token, {"limit": 500})

    async def venues(
        self, token: str, *, ids: list[str] | None = None, q: str | None = None
    ) -> list[Venue]:
        params: dict[str, Any] = {"limit": 100}
        if ids:
            params["id"] = ids[:100]
        if q:
            params["q"] = q
        return await self._page(self.registry, "/v1/venues", Venue, token, params)

    async def resources(
        self, token: str, *, venue_ids: list[str] | None = None, **filters: object
    ) -> list[Resource]:
        params: dict[str, Any] = {"limit": 50, **filters}
        if venue_ids:
            params["venue_id"] = venue_ids[:100]
        return await self._page(self.registry, "/v1/resources", Resource, token, params)

    async def free_resources(
        self,
        token: str,
        *,
        start: datetime,
        end: datetime,
        minutes: int,
        venue_ids: list[str] | None = None,
        **filters: object,
    ) -> list[Availability]:
        params: dict[str, Any] = {
            "from": start.isoformat(),
            "to": end.isoformat(),
            "minutes": minutes,
            "limit": 50,
            **filters,
        }
        if venue_ids:
            params["venue_id"] = venue_ids[:100]
        return await self._page(self.booking, "/v1/availability", Availability, token, params)


class Rules(msgspec.Struct, frozen=True):
    min_minutes: int = 30
    max_minutes: int = 240
    lead_minutes: int = 0
    horizon_days: int = 90
    buffer_minutes: int = 0
    slot_minutes: int = 15


class ResourceDetail(msgspec.Struct, frozen=True):
    id: str
    venue_id: str
    name: str
    type: str
    capacity: int | None = None
    features: list[str] = msgspec.field(default_factory=list)
    requires_approval: bool = False
    rules: Rules = msgspec.field(default_factory=Rules)
    description: str | None = None
    part_of: str | None = None


class _Intervals(msgspec.Struct):
    items: list[Interval]


async def _one(http: ServiceClient, path: str, shape: type[T], token: str, **params: Any) -> T:
    response = await http.request("GET", path, params=params or None, headers=_bearer(token))
    return msgspec.json.decode(response.content, type=shape)


async def every_item(
    http: ServiceClient, path: str, item: type[T], token: str, **params: str
) -> list[T]:
    """Every item of a list, page after page (a city has a few hundred of each at most)."""
    found: list[T] = []
    cursor: str | None = None
    while True:
        more = {"cursor": cursor} if cursor else {}
        page = await _one(http, path, _Page[item], token, limit=500, **params, **more)  # type: ignore[valid-type]
        found += page.items
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


class ResourceWeek(msgspec.Struct, frozen=True):
    resource: ResourceDetail
    venue: Venue
    open: list[Interval]
    free: list[Interval]


async def resource_week(
    catalogue: CatalogueClient, token: str, resource_id: str, start: datetime, end: datetime
) -> ResourceWeek:
    """A resource, its venue, and its open and free time in [start, end): four calls, the last
    three at once."""
    resource = await _one(catalogue.registry, f"/v1/resources/{resource_id}", ResourceDetail, token)
    window = {"from": start.isoformat(), "to": end.isoformat()}
    venue, opened, free = await asyncio.gather(
        _one(catalogue.registry, f"/v1/venues/{resource.venue_id}", Venue, token),
        _one(
            catalogue.registry,
            f"/v1/resources/{resource_id}/open-intervals",
            _Intervals,
            token,
            **window,
        ),
        _one(
            catalogue.booking,
            f"/v1/resources/{resource_id}/availability",
            _Intervals,
            token,
            **window,
        ),
    )
    return ResourceWeek(resource=resource, venue=venue, open=opened.items, free=free.items)


# ---------------------------------------------------------------------------------------------
# The lecturer's own pages: its offers, its record, its feed, and the one-click links.


class Offer(msgspec.Struct, frozen=True):
    """An offer as the lecturer service shows it; instants in the venue's zone."""

    id: str
    venue_id: str
    start: datetime
    end: datetime
    status: str
    expires_at: datetime
    topic: str
    reason: str | None = None


class LecturerRecord(msgspec.Struct, frozen=True):
    id: str
    name: str
    availability: list[WeeklySpan]
    blackout_dates: list[date]
    feed_url: str | None = None


class OfferLink(msgspec.Struct, frozen=True):
    """What a one-click link does: the offer, its answer, whether it was given just now, and
    the venue (the link's page is opened without a login, so nothing else can be asked)."""

    offer: Offer
    action: str
    done: bool
    venue_name: str | None = None
    venue_address: str | None = None
    timezone: str | None = None


_JSON = {"Accept": "application/json"}


class OffersClient:
    """The lecturer service, for the lecturer's own pages (with its token) and for the
    one-click links (with none: the signed link is the credential)."""

    def __init__(self, settings: Settings) -> None:
        self._http = ServiceClient(caller=None, target="lecturers", settings=settings)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def offers(self, token: str, lecturer_id: str, status: str) -> list[Offer]:
        params = {"lecturer_id": lecturer_id, "status": status, "limit": 500}
        response = await self._http.request(
            "GET", "/v1/offers", params=params, headers=_bearer(token)
        )
        return msgspec.json.decode(response.content, type=_Page[Offer]).items

    async def answer(self, token: str, offer_id: str, answer: str, reason: str | None) -> Offer:
        body = {"reason": reason} if answer == "decline" and reason else None
        response = await self._http.request(
            "POST", f"/v1/offers/{offer_id}/{answer}", body=body, headers=_bearer(token)
        )
        return msgspec.json.decode(response.content, type=Offer)

    async def lecturer(self, token: str, lecturer_id: str) -> LecturerRecord:
        return await _one(self._http, f"/v1/lecturers/{lecturer_id}", LecturerRecord, token)

    async def update_lecturer(
        self, token: str, lecturer_id: str, changes: dict[str, Any]
    ) -> LecturerRecord:
        response = await self._http.request(
            "PATCH", f"/v1/lecturers/{lecturer_id}", body=changes, headers=_bearer(token)
        )
        return msgspec.json.decode(response.content, type=LecturerRecord)

    async def new_feed(self, token: str, lecturer_id: str) -> LecturerRecord:
        response = await self._http.request(
            "POST", f"/v1/lecturers/{lecturer_id}/feed-token", headers=_bearer(token)
        )
        return msgspec.json.decode(response.content, type=LecturerRecord)

    async def link(self, token: str) -> OfferLink:
        response = await self._http.request("GET", _link_path(token), headers=_JSON)
        return msgspec.json.decode(response.content, type=OfferLink)

    async def follow_link(self, token: str) -> OfferLink:
        response = await self._http.request("POST", _link_path(token), headers=_JSON)
        return msgspec.json.decode(response.content, type=OfferLink)


def _link_path(token: str) -> str:
    return f"/v1/offer-links/{quote(token, safe='')}"


# Bookings, made, listed and changed with the visitor's own token (booking checks every right).


class Skipped(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime
    code: str


class BookingMade(msgspec.Struct, frozen=True):
    """What `POST /v1/bookings` answers: one booking, or a series with the dates it skipped."""

    id: str | None = None
    status: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    series_id: str | None = None
    bookings: list[Listed] = msgspec.field(default_factory=list)
    skipped: list[Skipped] = msgspec.field(default_factory=list)


async def make_booking(
    catalogue: CatalogueClient, token: str, body: dict[str, Any], idempotency_key: str
) -> BookingMade:
    """One booking or a series; the same key and body made twice make one (the form's key)."""
    response = await catalogue.booking.request(
        "POST", "/v1/bookings", body=body, headers=_bearer(token), idempotency_key=idempotency_key
    )
    return msgspec.json.decode(response.content, type=BookingMade)


# At most this many pages of 500 for one list: a year of a venue's bookings.
MOST_BOOKING_PAGES = 10


async def bookings_between(
    catalogue: CatalogueClient, token: str, start: datetime, end: datetime
) -> list[Listed]:
    """The bookings the visitor may see that touch [start, end), in pages of 500."""
    found: list[Listed] = []
    params: dict[str, Any] = {"from": start.isoformat(), "to": end.isoformat(), "limit": 500}
    for _ in range(MOST_BOOKING_PAGES):
        response = await catalogue.booking.request(
            "GET", "/v1/bookings", params=params, headers=_bearer(token)
        )
        page = msgspec.json.decode(response.content, type=_Page[Listed])
        found += page.items
        if page.next_cursor is None:
            break
        params["cursor"] = page.next_cursor
    return found


async def booking_of(catalogue: CatalogueClient, token: str, booking_id: str) -> Listed:
    return await _one(catalogue.booking, f"/v1/bookings/{booking_id}", Listed, token)


async def change_booking(
    catalogue: CatalogueClient, token: str, booking_id: str, action: str, body: dict[str, Any]
) -> Listed:
    """`cancel` (with an optional reason) or `attendance` (the head count that came)."""
    response = await catalogue.booking.request(
        "POST", f"/v1/bookings/{booking_id}/{action}", body=body, headers=_bearer(token)
    )
    return msgspec.json.decode(response.content, type=Listed)


async def cancel_series(catalogue: CatalogueClient, token: str, series_id: str) -> int:
    """Cancel the occurrences of a series that have not started; how many were cancelled."""
    response = await catalogue.booking.request(
        "DELETE", f"/v1/series/{series_id}", headers=_bearer(token)
    )
    return len(msgspec.json.decode(response.content, type=_Cancelled).cancelled)


class _Cancelled(msgspec.Struct):
    cancelled: list[Listed]


class RoomToBook(msgspec.Struct, frozen=True):
    """The resource a booking form books, its venue, and the venue's equipment to add."""

    resource: ResourceDetail
    venue: Venue
    equipment: list[Resource]


async def room_to_book(catalogue: CatalogueClient, token: str, resource_id: str) -> RoomToBook:
    """Three calls, the last two at once."""
    resource = await _one(catalogue.registry, f"/v1/resources/{resource_id}", ResourceDetail, token)
    venue, items = await asyncio.gather(
        _one(catalogue.registry, f"/v1/venues/{resource.venue_id}", Venue, token),
        catalogue.resources(token, venue_ids=[resource.venue_id], type="equipment", limit=500),
    )
    return RoomToBook(resource, venue, [item for item in items if item.id != resource.id])


# The office's pages (and the managers' share of reports and members): utilisation reports at
# booking, the corps and matching runs at the lecturer service, members and invitations at
# identity, each read with the visitor's own token.


class UtilisationRow(msgspec.Struct, frozen=True):
    key: str | None
    label: str
    open_hours: float
    booked_hours: float
    utilisation: float
    bookings: int
    attendees: int
    attended: int


class _Heatmap(msgspec.Struct, frozen=True):
    matrix: list[list[float]]


class Download(msgspec.Struct, frozen=True):
    """A file an API answered, passed on to the browser as it came."""

    content: bytes
    media_type: str
    disposition: str | None


class CorpsMember(msgspec.Struct, frozen=True):
    id: str
    name: str
    topics: list[str]
    area_id: str
    max_per_month: int
    languages: list[str] = msgspec.field(default_factory=list)
    email: str | None = None
    phone: str | None = None


class CorpsPage(msgspec.Struct, frozen=True):
    items: list[CorpsMember]
    next_cursor: str | None = None


class RunUnmatched(msgspec.Struct, frozen=True):
    request_id: str
    session_index: int
    reason: str


class RunAssignment(msgspec.Struct, frozen=True):
    request_id: str
    session_index: int
    lecturer_id: str
    venue_id: str
    start: datetime
    end: datetime


class MatchingRun(msgspec.Struct, frozen=True):
    id: str
    month: str
    status: str
    created_at: datetime
    assignments: list[RunAssignment] = msgspec.field(default_factory=list)
    unmatched: list[RunUnmatched] = msgspec.field(default_factory=list)
    request_ids: list[str] | None = None
    failure: str | None = None
    finished_at: datetime | None = None


class LectureRequestBrief(msgspec.Struct, frozen=True):
    id: str
    venue_id: str
    topic: str
    programme: str
    month: str
    sessions: int


class Member(msgspec.Struct, frozen=True):
    id: str
    email: str
    name: str
    memberships: list[Membership]
    disabled: bool = False


class OpenInvitation(msgspec.Struct, frozen=True):
    id: str
    email: str
    org: str
    role: str
    locale: str
    created_at: datetime
    expires_at: datetime
    name: str | None = None
    lecturer_id: str | None = None


class OfficeClient:
    """Reports, the corps, matching runs, members and invitations, for the office's pages."""

    def __init__(self, settings: Settings) -> None:
        self.booking = ServiceClient(caller=None, target="booking", settings=settings)
        self.lecturers = ServiceClient(caller=None, target="lecturers", settings=settings)
        self.identity = ServiceClient(caller=None, target="identity", settings=settings)

    async def aclose(self) -> None:
        await self.booking.aclose()
        await self.lecturers.aclose()
        await self.identity.aclose()

    async def utilisation(self, token: str, params: dict[str, str]) -> list[UtilisationRow]:
        return (
            await _one(
                self.booking, "/v1/reports/utilisation", _Page[UtilisationRow], token, **params
            )
        ).items

    async def heatmap(self, token: str, params: dict[str, str]) -> list[list[float]]:
        return (await _one(self.booking, "/v1/reports/heatmap", _Heatmap, token, **params)).matrix

    async def _download(self, path: str, token: str, params: dict[str, str]) -> Download:
        response = await self.booking.request("GET", path, params=params, headers=_bearer(token))
        return Download(
            content=response.content,
            media_type=response.headers.get("content-type", "application/octet-stream"),
            disposition=response.headers.get("content-disposition"),
        )

    async def utilisation_csv(self, token: str, params: dict[str, str]) -> Download:
        return await self._download("/v1/reports/utilisation", token, {**params, "format": "csv"})

    async def heatmap_png(self, token: str, params: dict[str, str]) -> Download:
        return await self._download("/v1/reports/heatmap", token, {**params, "format": "png"})

    async def corps(self, token: str, **params: str) -> CorpsPage:
        return await _one(self.lecturers, "/v1/lecturers", CorpsPage, token, **params)

    async def corps_by_id(self, token: str, ids: set[str]) -> dict[str, str]:
        """The names of the lecturers `ids` (the corps is read whole: the API has no id filter,
        and a city's corps is a few dozen to a few hundred)."""
        if not ids:
            return {}
        everyone = await every_item(self.lecturers, "/v1/lecturers", CorpsMember, token)
        return {lecturer.id: lecturer.name for lecturer in everyone if lecturer.id in ids}

    async def runs(self, token: str, month: str) -> list[MatchingRun]:
        return await every_item(
            self.lecturers, "/v1/matching/runs", MatchingRun, token, month=month
        )

    async def run(self, token: str, run_id: str) -> MatchingRun:
        return await _one(self.lecturers, f"/v1/matching/runs/{run_id}", MatchingRun, token)

    async def start_run(self, token: str, month: str, idempotency_key: str) -> str:
        response = await self.lecturers.request(
            "POST",
            "/v1/matching/runs",
            body={"month": month},
            headers=_bearer(token),
            idempotency_key=idempotency_key,
        )
        run_id: str = msgspec.json.decode(response.content)["run_id"]
        return run_id

    async def requests(self, token: str, month: str) -> list[LectureRequestBrief]:
        return await every_item(
            self.lecturers, "/v1/requests", LectureRequestBrief, token, month=month
        )

    async def members(self, token: str, org: str) -> list[Member]:
        return await every_item(self.identity, "/v1/users", Member, token, org=org)

    async def invitations(self, token: str, org: str) -> list[OpenInvitation]:
        return await every_item(self.identity, "/v1/invitations", OpenInvitation, token, org=org)

    async def invite(self, token: str, body: dict[str, str], idempotency_key: str) -> None:
        await self.identity.request(
            "POST",
            "/v1/invitations",
            body=body,
            headers=_bearer(token),
            idempotency_key=idempotency_key,
        )

    async def withdraw(self, token: str, invitation_id: str) -> None:
        await self.identity.request(
            "DELETE", f"/v1/invitations/{invitation_id}", headers=_bearer(token)
        )

    async def end_membership(self, token: str, org: str, user_id: str, role: str) -> None:
        await self.identity.request(
            "DELETE",
            f"/v1/orgs/{org}/members/{user_id}",
            params={"role": role},
            headers=_bearer(token),
        )


# The venue manager's desk: its venues, their resources and opening hours, the bookings waiting
# for its approval, and its venues' lecture requests.


class ManagedVenue(msgspec.Struct, frozen=True):
    id: str
    name: str
    kind: str
    owner_org: str
    address: str | None = None
    timezone: str = "Asia/Shanghai"
    holiday_calendar: str = "CN"


class Booking(msgspec.Struct, frozen=True):
    id: str
    resource_ids: list[str]
    venue_id: str
    org: str
    booked_by: str
    start: datetime
    end: datetime
    status: str
    purpose: str
    hold: bool = False
    programme: str | None = None
    attendees: int | None = None
    reason: str | None = None


class SpanDoc(msgspec.Struct, frozen=True):
    weekdays: list[int]
    start: str
    end: str


class PeriodDoc(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    start_date: str
    end_date: str | None = None
    spans: list[SpanDoc] = msgspec.field(default_factory=list)
    closed: bool = False


class HoursDoc(msgspec.Struct, frozen=True):
    periods: list[PeriodDoc] = msgspec.field(default_factory=list)
    public_holidays: str = "closed"


class LectureRequest(msgspec.Struct, frozen=True):
    id: str
    venue_id: str
    org: str
    topic: str
    programme: str
    month: str
    sessions: int
    minutes: int
    status: str
    audience: str | None = None


class VenueDeskClient:
    """The registry, booking and lecturer calls of the venue manager's pages, each with the
    visitor's own token: the services check who may change what."""

    def __init__(self, settings: Settings) -> None:
        self.registry = ServiceClient(caller=None, target="registry", settings=settings)
        self.booking = ServiceClient(caller=None, target="booking", settings=settings)
        self.lecturers = ServiceClient(caller=None, target="lecturers", settings=settings)
        self.identity = ServiceClient(caller=None, target="identity", settings=settings)

    async def aclose(self) -> None:
        for http in (self.registry, self.booking, self.lecturers, self.identity):
            await http.aclose()

    async def venues(self, token: str) -> list[ManagedVenue]:
        """Every venue of the catalogue in one call (a city has a few hundred at most)."""
        return await CatalogueClient._page(
            self.registry, "/v1/venues", ManagedVenue, token, {"limit": 500}
        )

    async def venue(self, token: str, venue_id: str) -> ManagedVenue:
        return await _one(self.registry, f"/v1/venues/{venue_id}", ManagedVenue, token)

    async def resources(self, token: str, venue_ids: list[str]) -> list[ResourceDetail]:
        params = {"limit": 500, "venue_id": venue_ids[:100]}
        return await CatalogueClient._page(
            self.registry, "/v1/resources", ResourceDetail, token, params
        )

    async def resource(self, token: str, resource_id: str) -> ResourceDetail:
        return await _one(self.registry, f"/v1/resources/{resource_id}", ResourceDetail, token)

    async def add_resource(self, token: str, venue_id: str, body: dict[str, Any]) -> ResourceDetail:
        response = await self.registry.request(
            "POST", f"/v1/venues/{venue_id}/resources", body=body, headers=_bearer(token)
        )
        return msgspec.json.decode(response.content, type=ResourceDetail)

    async def change_resource(
        self, token: str, resource_id: str, body: dict[str, Any]
    ) -> ResourceDetail:
        response = await self.registry.request(
            "PATCH", f"/v1/resources/{resource_id}", body=body, headers=_bearer(token)
        )
        return msgspec.json.decode(response.content, type=ResourceDetail)

    async def hours(self, token: str, venue_id: str) -> HoursDoc:
        return await _one(self.registry, f"/v1/venues/{venue_id}/opening-hours", HoursDoc, token)

    async def publish_hours(self, token: str, venue_id: str, hours: HoursDoc) -> None:
        await self.registry.request(
            "PUT", f"/v1/venues/{venue_id}/opening-hours", body=hours, headers=_bearer(token)
        )

    async def open_intervals(
        self, token: str, venue_id: str, start: datetime, end: datetime
    ) -> list[Interval]:
        window = {"from": start.isoformat(), "to": end.isoformat()}
        found = await _one(
            self.registry, f"/v1/venues/{venue_id}/open-intervals", _Intervals, token, **window
        )
        return found.items

    async def pending(
        self, token: str, *, hold: bool, venue_id: str | None = None
    ) -> list[Booking]:
        params: dict[str, Any] = {"status": "pending", "hold": str(hold).lower(), "limit": 500}
        if venue_id is not None:
            params["venue_id"] = venue_id
        return await CatalogueClient._page(self.booking, "/v1/bookings", Booking, token, params)

    async def decide(self, token: str, booking_id: str, action: str, reason: str | None) -> Booking:
        """`approve` or `reject` a pending booking."""
        response = await self.booking.request(
            "POST",
            f"/v1/bookings/{booking_id}/{action}",
            body={"reason": reason} if reason else {},
            headers=_bearer(token),
        )
        return msgspec.json.decode(response.content, type=Booking)

    async def lecture_requests(self, token: str) -> list[LectureRequest]:
        return await CatalogueClient._page(
            self.lecturers, "/v1/requests", LectureRequest, token, {"limit": 500}
        )
