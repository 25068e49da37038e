"""Load the demo city into a running suite through its public HTTP APIs.

Everything goes over HTTP with bearer tokens minted from the settings' secret, as any client's
would: the office makes areas and venues (and, when that service runs, lecturers and requests),
each venue's manager publishes its hours and resources and decides on requests for approval, and
the community managers of the booking organisations book and cancel. Requests run concurrently,
a bounded number at a time. Every create carries an Idempotency-Key made from the item and its
body, so a retry or a second run within the services' 24 hours replays instead of duplicating, and
a city already loaded in full is left alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import msgspec

from services.demo.city import (
    HOLIDAY_CALENDAR,
    LECTURER_CORPS_ORG,
    TIMEZONE,
    AreaPlan,
    BookingPlan,
    City,
    HoursDoc,
    LectureRequestPlan,
    LecturerPlan,
    Org,
    ResourcePlan,
    VenuePlan,
    build_city,
)
from services.identity.domain.accounts import OrgKind
from services.identity.domain.keys import SigningKey
from services.identity.domain.tokens import Membership, access_token
from services.identity.store.keys import read_key_file
from services.identity.store.logins import new_sid
from shared.auth import Principal, Role
from shared.config import SERVICES, ServiceName, Settings
from shared.errors import ServiceUnavailable
from shared.http import RemoteError, ServiceClient

CONCURRENCY = 16
TIMEOUT_SECONDS = 30.0
RETRIES = 2
BACKOFF_SECONDS = 0.2
LIST_LIMIT = 500
SHOWN_PROBLEMS = 5
LOADER_SUB = "demo-loader"
LOADER_TOKEN_TTL = timedelta(hours=1)


class Problem(msgspec.Struct, frozen=True):
    """An item the services refused (or could not be reached for)."""

    item: str
    status: int
    code: str
    detail: str


class LoadReport(msgspec.Struct):
    """What a load made, what it could not, and how long it took."""

    city: str
    created: dict[str, int] = msgspec.field(default_factory=dict)
    problems: list[Problem] = msgspec.field(default_factory=list)
    seconds: float = 0.0
    already_loaded: bool = False
    lecturer_ids: list[str] = msgspec.field(default_factory=list)

    def summary(self) -> str:
        """A few lines for a person: counts, then the first problems if there were any."""
        if self.already_loaded:
            return f"demo city {self.city} is already loaded; nothing sent"
        made = ", ".join(f"{count} {what}" for what, count in self.created.items() if count)
        lines = [f"demo city {self.city} loaded in {self.seconds:.1f}s: {made}"]
        if self.problems:
            lines.append(f"{len(self.problems)} items were refused, for example:")
            lines += [
                f"  {p.item}: {p.status} {p.code} {p.detail}"
                for p in self.problems[:SHOWN_PROBLEMS]
            ]
        return "\n".join(lines)


def principals(city: City, report: LoadReport | None = None) -> list[Principal]:
    """Who `up --demo` hands tokens to: the office, the manager of the demo's busiest school,
    the community manager of a town's community-education centre, and a lecturer of the corps
    where the lecturer service made one."""
    lecturer = report.lecturer_ids[0] if report and report.lecturer_ids else "demo-lecturer"
    return [
        Principal(sub="demo-office", role=Role.OFFICE, org=city.office_org),
        Principal(
            sub=_manager_sub(city.showcase_venue_org),
            role=Role.VENUE_MANAGER,
            org=city.showcase_venue_org,
        ),
        Principal(
            sub=_booker_sub(city.showcase_community_org),
            role=Role.COMMUNITY_MANAGER,
            org=city.showcase_community_org,
        ),
        Principal(
            sub="demo-lecturer", role=Role.LECTURER, org=LECTURER_CORPS_ORG, lecturer_id=lecturer
        ),
    ]


# Every demo address is under a domain reserved for examples, so no mail leaves a demo.
DEMO_MAIL_DOMAIN = "luhu.example.org"


class DemoAccount(msgspec.Struct, frozen=True):
    """A person `up --demo` makes an account for, to sign in with."""

    email: str
    name: str
    principal: Principal


def demo_accounts(city: City, report: LoadReport | None = None) -> list[DemoAccount]:
    """One account per role, for the organisations the demo's tokens are for."""
    names = {org.id: org.name for org in city.orgs}
    local = {
        Role.OFFICE: ("office", "王主任"),
        Role.VENUE_MANAGER: ("school", "李老师"),
        Role.COMMUNITY_MANAGER: ("centre", "张社工"),
        Role.LECTURER: ("lecturer", "陈老师"),
    }
    accounts = []
    for principal in principals(city, report):
        part, name = local[principal.role]
        accounts.append(
            DemoAccount(
                email=f"{part}@{DEMO_MAIL_DOMAIN}",
                name=f"{name}（{names.get(principal.org, principal.org)}）",  # noqa: RUF001
                principal=principal,
            )
        )
    return accounts


def org_kind(org_id: str, city: City) -> OrgKind:
    """What kind of organisation a demo org is, by how the city names them."""
    if org_id == city.office_org:
        return OrgKind.OFFICE
    if org_id == LECTURER_CORPS_ORG:
        return OrgKind.LECTURER_CORPS
    if org_id.startswith("school-"):
        return OrgKind.SCHOOL
    if org_id.startswith("sq-"):
        return OrgKind.COMMUNITY
    return OrgKind.CENTRE


def _manager_sub(org: str) -> str:
    return f"manager@{org}"


def _booker_sub(org: str) -> str:
    return f"booker@{org}"


class _Client:
    """Bounded HTTP to the suite, retried where that is safe; refusals are collected, not raised."""

    def __init__(
        self, settings: Settings, city: City, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.city = city
        self.gate = asyncio.Semaphore(CONCURRENCY)
        self.problems: list[Problem] = []
        self._tokens: dict[tuple[Role, str], str] = {}
        # The loader acts as the city's people, with tokens signed by identity's key file, as
        # the operator's `commonroom token` signs them: it runs where identity's secrets are.
        self._key: SigningKey = read_key_file(settings.signing_key_file)
        patient = replace(settings, http_timeout_seconds=TIMEOUT_SECONDS)
        self._services = {
            service: ServiceClient(
                caller=None,
                target=service,
                settings=patient,
                retries=RETRIES,
                backoff_seconds=BACKOFF_SECONDS,
                transport=transport,
            )
            for service in SERVICES
        }

    async def aclose(self) -> None:
        for service in self._services.values():
            await service.aclose()

    def token(self, role: Role, org: str) -> str:
        if (role, org) not in self._tokens:
            sub = {
                Role.OFFICE: LOADER_SUB,
                Role.VENUE_MANAGER: _manager_sub(org),
                Role.COMMUNITY_MANAGER: _booker_sub(org),
            }[role]
            self._tokens[role, org] = access_token(
                self._key,
                issuer=self.settings.issuer,
                sub=sub,
                membership=Membership(org=org, role=role),
                sid=new_sid(),
                now=datetime.now(UTC),
                ttl=LOADER_TOKEN_TTL,
            )
        return self._tokens[role, org]

    def office(self) -> str:
        return self.token(Role.OFFICE, self.city.office_org)

    async def send(
        self,
        method: Literal["GET", "POST", "PUT"],
        service: ServiceName,
        path: str,
        *,
        token: str,
        item: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        create: bool = False,
        accept: Iterable[str] = (),
    ) -> Any:
        """The decoded answer, or None where it was refused (recorded as a problem, unless its
        code is one of `accept`: an answer that means it is done already)."""
        key = None
        if create:
            digest = hashlib.sha256(msgspec.json.encode(body)).hexdigest()[:20]
            key = f"demo-{self.city.seed}-{item}-{digest}"
        try:
            async with self.gate:
                response = await self._services[service].request(
                    method,
                    path,
                    params=params,
                    body=body,
                    idempotency_key=key,
                    headers={"Authorization": f"Bearer {token}"},
                )
        except RemoteError as refused:
            if refused.code not in set(accept):
                self.problems.append(
                    Problem(item, refused.remote_status, refused.code, refused.detail)
                )
            return None
        except ServiceUnavailable as unreachable:
            self.problems.append(Problem(item, 503, unreachable.code, unreachable.detail))
            return None
        return msgspec.json.decode(response.content) if response.content else {}

    async def everything(
        self, service: ServiceName, path: str, **params: Any
    ) -> list[dict[str, Any]]:
        """Every item of a list endpoint, page by page."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, "limit": LIST_LIMIT, **({"cursor": cursor} if cursor else {})}
            page = await self.send(
                "GET", service, path, token=self.office(), item=path, params=query
            )
            if page is None:
                return items
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items


async def _all(tasks: Iterable[Awaitable[Any]]) -> list[Any]:
    return list(await asyncio.gather(*tasks))


class _Loader:
    def __init__(self, client: _Client, city: City, services: Sequence[ServiceName]) -> None:
        self.client = client
        self.city = city
        self.services = services
        self.areas: dict[str, str] = {}
        self.venues: dict[str, str] = {}
        self.resources: dict[str, str] = {}
        self.bookings: dict[str, list[str]] = {}  # plan key: ids of the bookings it made
        self.created: Counter[str] = Counter()
        self.lecturer_ids: list[str] = []

    async def already_loaded(self) -> bool:
        """Whether the registry holds this city with all its venues (a load finished before)."""
        roots = [
            area
            for area in await self.client.everything("registry", "/v1/areas")
            if area["name"] == self.city.name and area.get("parent_id") is None
        ]
        for root in roots:
            venues = await self.client.everything("registry", "/v1/venues", area_id=root["id"])
            if len(venues) >= len(self.city.venues):
                return True
        return False

    async def run(self) -> None:
        if "identity" in self.services:
            await _all(self.org(org) for org in self.city.orgs)
        # Phase by phase: the catalogue whole, then the bookings. Interleaving them (a venue's
        # bookings while the registry still takes later venues) costs more than it saves, since
        # every catalogue event drops what the booking service has cached of that venue.
        for level in ("city", "town", "community"):
            await _all(self.area(a) for a in self.city.areas if a.level == level)
        await _all(self.venue(v) for v in self.city.venues)
        await _all(
            [
                *(
                    self.hours(f"/v1/venues/{self.venues[v.key]}", v, v.hours)
                    for v in self.city.venues
                    if v.key in self.venues
                ),
                *(self.resource(r) for r in self.city.resources),
            ]
        )
        await _all(
            self.hours(f"/v1/resources/{self.resources[r.key]}", self.city.venue(r.venue), r.hours)
            for r in self.city.resources
            if r.hours is not None and r.key in self.resources
        )
        await _all(self.book(plan) for plan in self.city.bookings)
        await _all(self.decide(plan) for plan in self.city.bookings if plan.then != "keep")
        if "lecturers" in self.services:
            await _all(self.lecturer(lecturer) for lecturer in self.city.lecturers)
            await _all(self.request(request) for request in self.city.requests)
            # The month's matching starts at once, so offers reach the lecturers' feeds.
            await _all(self.match(month) for month in sorted({r.month for r in self.city.requests}))

    async def org(self, org: Org) -> None:
        """The organisation at identity, so pages can name it (石岩小学, not its id)."""
        made = await self.client.send(
            "POST",
            "identity",
            "/v1/orgs",
            token=self.client.office(),
            item=f"organisation {org.id}",
            body={"id": org.id, "name": org.name, "kind": org_kind(org.id, self.city).value},
            accept=("org_exists",),
        )
        if made is not None:
            self.created["organisations"] += 1

    async def area(self, area: AreaPlan) -> None:
        body: dict[str, Any] = {"name": area.name, "population": area.population}
        if area.parent is not None:
            if area.parent not in self.areas:
                return
            body["parent_id"] = self.areas[area.parent]
        made = await self.client.send(
            "POST",
            "registry",
            "/v1/areas",
            token=self.client.office(),
            item=f"area:{area.key}",
            body=body,
            create=True,
        )
        if made is not None:
            self.areas[area.key] = made["id"]
            self.created["areas"] += 1

    async def venue(self, venue: VenuePlan) -> None:
        if venue.area not in self.areas:
            return
        made = await self.client.send(
            "POST",
            "registry",
            "/v1/venues",
            token=self.client.office(),
            item=f"venue:{venue.key}",
            body={
                "name": venue.name,
                "kind": venue.kind,
                "area_id": self.areas[venue.area],
                "owner_org": venue.owner_org,
                "address": venue.address,
                "timezone": TIMEZONE,
                "holiday_calendar": HOLIDAY_CALENDAR,
                "location": msgspec.to_builtins(venue.location),
                "description": venue.description,
            },
            create=True,
        )
        if made is not None:
            self.venues[venue.key] = made["id"]
            self.created["venues"] += 1

    async def hours(self, path: str, venue: VenuePlan, hours: HoursDoc) -> None:
        done = await self.client.send(
            "PUT",
            "registry",
            f"{path}/opening-hours",
            token=self.client.token(Role.VENUE_MANAGER, venue.owner_org),
            item=f"hours:{path}",
            body=msgspec.to_builtins(hours),
        )
        if done is not None:
            self.created["opening hours"] += 1

    async def resource(self, resource: ResourcePlan) -> None:
        venue = self.city.venue(resource.venue)
        if venue.key not in self.venues:
            return
        body = {
            "name": resource.name,
            "type": resource.type,
            "capacity": resource.capacity,
            "features": list(resource.features),
            "requires_approval": resource.requires_approval,
            "rules": msgspec.to_builtins(resource.rules),
            "description": resource.description,
        }
        made = await self.client.send(
            "POST",
            "registry",
            f"/v1/venues/{self.venues[venue.key]}/resources",
            token=self.client.token(Role.VENUE_MANAGER, venue.owner_org),
            item=f"resource:{resource.key}",
            body=body,
            create=True,
        )
        if made is not None:
            self.resources[resource.key] = made["id"]
            self.created["resources"] += 1

    async def book(self, plan: BookingPlan) -> None:
        if any(key not in self.resources for key in plan.resources):
            return
        body: dict[str, Any] = {
            "resource_ids": [self.resources[key] for key in plan.resources],
            "start": plan.start.isoformat(),
            "end": plan.end.isoformat(),
            "purpose": plan.purpose,
            "programme": plan.programme,
            "attendees": plan.attendees,
        }
        if plan.rrule is not None:
            body["series"] = {"rrule": plan.rrule, "mode": "skip_conflicts"}
        made = await self.client.send(
            "POST",
            "booking",
            "/v1/bookings",
            token=self.client.token(Role.COMMUNITY_MANAGER, plan.org),
            item=f"booking:{plan.key}",
            body=body,
            create=True,
        )
        if made is None:
            return
        bookings = made["bookings"] if plan.rrule is not None else [made]
        for skipped in made.get("skipped", []):
            self.client.problems.append(
                Problem(f"booking:{plan.key}@{skipped['start']}", 409, skipped["code"], "skipped")
            )
        self.bookings[plan.key] = [booking["id"] for booking in bookings]
        self.created["bookings"] += len(bookings)
        if plan.rrule is not None:
            self.created["weekly series"] += 1
        self.created["pending"] += sum(1 for b in bookings if b["status"] == "pending")

    async def decide(self, plan: BookingPlan) -> None:
        venue = self.city.venue(plan.venue)
        if plan.then == "cancel":
            token = self.client.token(Role.COMMUNITY_MANAGER, plan.org)
        else:
            token = self.client.token(Role.VENUE_MANAGER, venue.owner_org)
        for booking_id in self.bookings.get(plan.key, []):
            done = await self.client.send(
                "POST",
                "booking",
                f"/v1/bookings/{booking_id}/{plan.then}",
                token=token,
                item=f"{plan.then}:{plan.key}",
                body={"reason": plan.reason},
                accept=("invalid_transition",),  # decided by an earlier run
            )
            if done is not None:
                self.created[
                    {"approve": "approved", "reject": "rejected"}.get(plan.then, "cancelled")
                ] += 1
                if plan.then in ("approve", "reject"):
                    self.created["pending"] -= 1

    async def lecturer(self, lecturer: LecturerPlan) -> None:
        if lecturer.area not in self.areas:
            return
        made = await self.client.send(
            "POST",
            "lecturers",
            "/v1/lecturers",
            token=self.client.office(),
            item=f"lecturer:{lecturer.key}",
            body={
                "name": lecturer.name,
                "topics": list(lecturer.topics),
                "languages": list(lecturer.languages),
                "area_id": self.areas[lecturer.area],
                "location": msgspec.to_builtins(lecturer.location),
                "max_per_month": lecturer.max_per_month,
                "availability": msgspec.to_builtins(lecturer.availability),
                "blackout_dates": [day.isoformat() for day in lecturer.blackout_dates],
                "email": lecturer.email,
                "phone": lecturer.phone,
            },
            create=True,
        )
        if made is not None:
            self.lecturer_ids.append(made["id"])
            self.created["lecturers"] += 1

    async def request(self, request: LectureRequestPlan) -> None:
        if request.venue not in self.venues:
            return
        made = await self.client.send(
            "POST",
            "lecturers",
            "/v1/requests",
            token=self.client.office(),
            item=f"request:{request.key}",
            body={
                "venue_id": self.venues[request.venue],
                "topic": request.topic,
                "programme": request.programme,
                "month": request.month,
                "sessions": request.sessions,
                "minutes": request.minutes,
                "audience": request.audience,
                "preferred": msgspec.to_builtins(request.preferred),
            },
            create=True,
        )
        if made is not None:
            self.created["lecture requests"] += 1

    async def match(self, month: str) -> None:
        made = await self.client.send(
            "POST",
            "lecturers",
            "/v1/matching/runs",
            token=self.client.office(),
            item=f"matching:{month}",
            body={"month": month},
            create=True,
        )
        if made is not None:
            self.created["matching runs"] += 1


async def load_city(
    city: City,
    settings: Settings,
    services: Sequence[ServiceName],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> LoadReport:
    """Send `city` to the suite at `settings`' URLs; lecturers only where that service runs."""
    started = time.monotonic()
    client = _Client(settings, city, transport)
    loader = _Loader(client, city, services)
    try:
        if await loader.already_loaded():
            return LoadReport(city=city.name, already_loaded=True, problems=client.problems)
        await loader.run()
    finally:
        await client.aclose()
    created = loader.created
    order = (
        "organisations", "areas", "venues", "resources", "opening hours", "bookings",
        "weekly series", "pending", "approved", "rejected", "cancelled", "lecturers",
        "lecture requests", "matching runs",
    )  # fmt: skip
    return LoadReport(
        city=city.name,
        created={what: created[what] for what in order if what in created},
        problems=client.problems,
        seconds=time.monotonic() - started,
        lecturer_ids=loader.lecturer_ids,
    )


def load_demo(
    settings: Settings, services: Sequence[ServiceName], *, now: datetime
) -> tuple[City, LoadReport]:
    """Build the city for the venues' local date at `now` and load it: what `up --demo` runs."""
    from zoneinfo import ZoneInfo

    city = build_city(now.astimezone(ZoneInfo(TIMEZONE)).date())
    return city, asyncio.run(load_city(city, settings, services))
