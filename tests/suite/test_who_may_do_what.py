"""Who may do what, against the running suite: every endpoint, every role, own or other org.

The office may do everything; a venue manager manages its own organisation's venues (another's
are 403; a booking there it cannot see is 404); a community manager books, sees and cancels its
own organisation's bookings (another's do not exist for it: 404); a lecturer reads and answers its
own offers and record (another lecturer's are 404). A service's own token (the client-credentials
grant) reads what the office reads and writes only what the contract names for the calls between
services (the lecturer service's holds, approvals and cancels): every other write is 403; in
identity it reads users and organisations and changes no account (403). At identity a manager
invites, lists, withdraws and ends memberships in its own org and its own role only; anyone reads
and changes oneself. Notify's delivery log is the office's (and a service's, which reads what the
office reads): nobody else reads it, not even the mail sent to oneself. (Bad tokens:
tests/suite/test_tokens.py.)

The people act with tokens of real accounts, signed in with the password grant, and the service
with the token identity grants booking, so `/v1/me` answers for each as it would in production.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.identity.cli import add_user
from services.identity.domain.tokens import Membership
from shared.auth import Role
from shared.time import next_month
from tests.conftest import TEST_CLIENT_SECRETS, Tokens, bearer
from tests.suite.conftest import EVENINGS, Suite, eventually

OWN_VENUE_ORG, OTHER_VENUE_ORG = "school-own", "school-other"
OWN_ORG, OTHER_ORG = "centre-own", "centre-other"
OFFICE_ORG, CORPS = "office", "corps"
PASSWORD = "who-may-do-what passphrase"
ROLES = (
    "office",
    "venue_manager_own",
    "venue_manager_other",
    "community_manager_own",
    "community_manager_other",
    "lecturer_own",
    "lecturer_other",
    "service",
)
# The membership each person of the table holds: (org, role); lecturers name their record too.
PEOPLE = {
    "office": (OFFICE_ORG, Role.OFFICE),
    "venue_manager_own": (OWN_VENUE_ORG, Role.VENUE_MANAGER),
    "venue_manager_other": (OTHER_VENUE_ORG, Role.VENUE_MANAGER),
    "community_manager_own": (OWN_ORG, Role.COMMUNITY_MANAGER),
    "community_manager_other": (OTHER_ORG, Role.COMMUNITY_MANAGER),
    "lecturer_own": (CORPS, Role.LECTURER),
    "lecturer_other": (CORPS, Role.LECTURER),
}
EVERYONE = dict.fromkeys(ROLES, 200)
OPEN = {
    "periods": [
        {
            "name": "all year",
            "start_date": "2026-01-01",
            "spans": [{"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "07:00", "end": "23:00"}],
        }
    ],
    "public_holidays": "open",
}


def only(allowed: dict[str, int], otherwise: int = 403) -> dict[str, int]:
    return {role: allowed.get(role, otherwise) for role in ROLES}


@dataclass
class World:
    """What the table's paths name: made once by the office, as the schools and centres would."""

    area: str = ""
    venue: str = ""
    room: str = ""
    approval_room: str = ""
    lecturer: str = ""
    other_lecturer: str = ""
    other_feed_token: str = ""
    booking: str = ""
    request: str = ""
    offer: str = ""
    month: str = ""
    # At identity: a member of OWN_ORG (a community manager) whom the table reads.
    member: str = ""
    slots: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    serials: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


@dataclass(frozen=True)
class Case:
    """One endpoint; `target` makes what it acts on (fresh for each role where it changes it)."""

    service: str
    method: str
    path: Callable[[World], Awaitable[str]] | str
    expect: dict[str, int]
    body: Callable[[World], dict[str, Any]] | None = None
    # A write the contract names for a service's own token (the lecturer service's calls).
    between_services: bool = False


def slot(world: World) -> tuple[str, str]:
    """A fresh hour at the venue, days ahead, that no other booking of the table uses."""
    n = next(world.slots)
    day = datetime.now(UTC).date() + timedelta(days=2 + n // 14)
    hour = 7 + n % 14
    start = datetime.fromisoformat(f"{day}T{hour:02d}:00:00+08:00")
    return start.isoformat(), (start + timedelta(hours=1)).isoformat()


class Table:
    def __init__(self, suite: Suite, tokens: Tokens, world: World) -> None:
        self.suite = suite
        self.world = world
        self.tokens = tokens
        # The operator's office token (`commonroom token`), which builds the world.
        self.office = tokens("office")
        self.headers: dict[str, dict[str, str]] = {}
        # Accounts that the calls refused so far left as they were, by what they are for: made
        # anew only once a call has changed one (a new account costs a password hasher).
        self.spares: dict[str, str] = {}

    async def act_as_everyone(self) -> None:
        """Each person's account at identity (the lecturers' once the world has their records),
        signed in with its password; and booking's own service token."""
        world = self.world
        lecturer_ids = {"lecturer_own": world.lecturer, "lecturer_other": world.other_lecturer}
        for person, (org, role) in PEOPLE.items():
            await add_user(
                self.suite.settings,
                email=f"{person}@example.org",
                password=PASSWORD,
                membership=Membership(org=org, role=role, lecturer_id=lecturer_ids.get(person)),
            )
            self.headers[person] = await self.signed_in(
                {
                    "grant_type": "password",
                    "username": f"{person}@example.org",
                    "password": PASSWORD,
                }
            )
        self.headers["service"] = await self.signed_in(
            {
                "grant_type": "client_credentials",
                "client_id": "booking",
                "client_secret": TEST_CLIENT_SECRETS["booking"],
            }
        )
        world.member = await self.fresh_member(OWN_ORG, Role.COMMUNITY_MANAGER)

    async def signed_in(self, grant: dict[str, str]) -> dict[str, str]:
        answer = await self.suite.identity.post("/v1/token", json=grant)
        assert answer.status_code == 200, answer.text
        return bearer(answer.json()["access_token"])

    def client(self, service: str) -> httpx.AsyncClient:
        return {
            "registry": self.suite.registry,
            "booking": self.suite.booking,
            "lecturers": self.suite.lecturers,
            "identity": self.suite.identity,
            "notify": self.suite.notify,
        }[service]

    async def call(
        self, service: str, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> httpx.Response:
        return await self.client(service).request(method, path, json=body, headers=headers)

    async def made(self, service: str, path: str, body: dict[str, Any]) -> str:
        response = await self.call(service, "POST", path, self.office, body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    # Fresh targets for the cases that change what they act on.

    async def fresh_venue(self, world: World) -> str:
        body = {
            "name": "临时场馆",
            "kind": "citizen_school",
            "area_id": world.area,
            "owner_org": OWN_VENUE_ORG,
        }
        return f"/v1/venues/{await self.made('registry', '/v1/venues', body)}"

    async def fresh_booking(self, world: World, room: str | None = None) -> str:
        start, end = slot(world)
        body = {
            "resource_ids": [room or world.room],
            "start": start,
            "end": end,
            "purpose": "合唱排练",
            "org": OWN_ORG,
        }
        return f"/v1/bookings/{await self.made('booking', '/v1/bookings', body)}"

    async def fresh_pending(self, world: World) -> str:
        return await self.fresh_booking(world, world.approval_room)

    async def fresh_member(self, org: str, role: Role) -> str:
        """A new account holding one membership (no password: it never signs in here)."""
        return await add_user(
            self.suite.settings,
            email=f"member-{next(self.world.serials)}@example.org",
            password=None,
            membership=Membership(org=org, role=role),
        )

    async def spare_member(self, org: str, role: Role) -> str:
        """A member of `org` in `role` that no call of the table has changed yet."""
        key = f"{org}:{role}"
        if key not in self.spares:
            self.spares[key] = await self.fresh_member(org, role)
        return self.spares[key]

    def changed(self, path: str) -> None:
        """A call on `path` succeeded: the spare account it names is spent."""
        self.spares = {key: user for key, user in self.spares.items() if user not in path}

    async def spare_membership(self, org: str, role: Role) -> str:
        return f"/v1/orgs/{org}/members/{await self.spare_member(org, role)}"

    async def spare_user(self, _: World) -> str:
        return f"/v1/users/{await self.spare_member(OWN_ORG, Role.COMMUNITY_MANAGER)}"

    async def fresh_invitation(self, world: World) -> str:
        made = await self.made("identity", "/v1/invitations", invitation(world, OWN_ORG))
        return f"/v1/invitations/{made}"


def invitation(world: World, org: str, role: Role = Role.COMMUNITY_MANAGER) -> dict[str, Any]:
    """An invitation of a new address (each its own) into `org` in `role`."""
    return {"email": f"invitee-{next(world.serials)}@example.org", "org": org, "role": role}


async def build(table: Table) -> None:
    world, suite = table.world, table.suite
    world.area = await table.made("registry", "/v1/areas", {"name": "城关镇"})
    for org in (OWN_VENUE_ORG, OTHER_VENUE_ORG):
        venue = await table.made(
            "registry",
            "/v1/venues",
            {"name": "市民学校", "kind": "citizen_school", "area_id": world.area, "owner_org": org},
        )
        if org == OWN_VENUE_ORG:
            world.venue = venue
    put = await suite.registry.put(f"/v1/venues/{world.venue}/opening-hours", json=OPEN)
    assert put.status_code == 200, put.text
    world.room = await table.made(
        "registry", f"/v1/venues/{world.venue}/resources", {"name": "教室", "type": "room"}
    )
    world.approval_room = await table.made(
        "registry",
        f"/v1/venues/{world.venue}/resources",
        {"name": "琴房", "type": "room", "requires_approval": True},
    )
    world.booking = (await table.fresh_booking(world)).rsplit("/", 1)[1]
    lecturers = []
    for name, topic in (("王老师", "law"), ("李医生", "health")):
        response = await suite.lecturers.post(
            "/v1/lecturers",
            json={"name": name, "topics": [topic], "area_id": world.area, "availability": EVENINGS},
        )
        assert response.status_code == 201, response.text
        lecturers.append(response.json())
    world.lecturer, world.other_lecturer = (lecturer["id"] for lecturer in lecturers)
    world.other_feed_token = lecturers[1]["feed_url"].rsplit("token=", 1)[1]
    world.month = f"{next_month(datetime.now(UTC).date()):%Y-%m}"
    world.request = await table.made(
        "lecturers",
        "/v1/requests",
        {"venue_id": world.venue, "topic": "law", "programme": "citizen", "month": world.month},
    )
    run = await suite.lecturers.post("/v1/matching/runs", json={"month": world.month})
    run_id = run.json()["run_id"]

    async def offered() -> bool:
        found = (await suite.lecturers.get(f"/v1/matching/runs/{run_id}")).json()
        if found["status"] == "done" and found["assignments"]:
            world.offer = found["assignments"][0]["offer_id"]
        return bool(world.offer)

    await eventually(offered, "the run offers the law lecture")


def cases(table: Table) -> list[Case]:
    # Outside identity a service's own token reads as the office does, and writes only where the
    # contract names the call.
    return (
        [
            replace(case, expect={**case.expect, "service": _as_a_service(case)})
            for case in catalogue_booking_and_lectures(table)
        ]
        + accounts(table)
        + delivery_log()
    )


def _as_a_service(case: Case) -> int:
    return case.expect["office"] if case.method == "GET" or case.between_services else 403


def catalogue_booking_and_lectures(table: Table) -> list[Case]:
    venue_admin = only({"office": 200, "venue_manager_own": 200})
    w = table.world
    return [
        # registry
        Case("registry", "GET", "/v1/areas", EVERYONE),
        Case("registry", "POST", "/v1/areas", only({"office": 201}), lambda _: {"name": "新区"}),
        Case("registry", "GET", f"/v1/venues/{w.venue}", EVERYONE),
        Case(
            "registry",
            "POST",
            "/v1/venues",
            only({"office": 201, "venue_manager_own": 201}),
            lambda w: {
                "name": "新校区",
                "kind": "school",
                "area_id": w.area,
                "owner_org": OWN_VENUE_ORG,
            },
        ),
        Case(
            "registry", "PATCH", f"/v1/venues/{w.venue}", venue_admin, lambda _: {"address": "1号"}
        ),
        Case(
            "registry",
            "DELETE",
            table.fresh_venue,
            only({"office": 204, "venue_manager_own": 204}),
        ),
        Case(
            "registry",
            "POST",
            f"/v1/venues/{w.venue}/resources",
            only({"office": 201, "venue_manager_own": 201}),
            lambda _: {"name": "投影仪", "type": "equipment"},
        ),
        Case(
            "registry",
            "PATCH",
            f"/v1/resources/{w.room}",
            venue_admin,
            lambda _: {"capacity": 30},
        ),
        Case("registry", "PUT", f"/v1/venues/{w.venue}/opening-hours", venue_admin, lambda _: OPEN),
        Case("registry", "GET", f"/v1/resources/{w.room}", EVERYONE),
        # booking
        Case(
            "booking",
            "POST",
            "/v1/bookings",
            only(dict.fromkeys(ROLES[:5], 201)),
            lambda w: dict(
                zip(("start", "end"), slot(w), strict=True),
                resource_ids=[w.room],
                purpose="书法",
            ),
            between_services=True,
        ),
        Case(
            "booking",
            "GET",
            f"/v1/bookings/{w.booking}",
            only(
                {"office": 200, "venue_manager_own": 200, "community_manager_own": 200},
                otherwise=404,
            ),
        ),
        Case(
            "booking",
            "GET",
            "/v1/bookings",
            only(dict.fromkeys(ROLES[:5], 200)),
        ),
        Case(
            "booking",
            "POST",
            lambda w: _suffix(table.fresh_booking(w), "/cancel"),
            only(
                {"office": 200, "venue_manager_own": 200, "community_manager_own": 200},
                otherwise=404,
            ),
            between_services=True,
        ),
        Case(
            "booking",
            "POST",
            lambda w: _suffix(table.fresh_pending(w), "/approve"),
            only(
                {"office": 200, "venue_manager_own": 200, "community_manager_own": 403},
                otherwise=404,
            ),
            between_services=True,
        ),
        Case(
            "booking",
            "POST",
            lambda w: _suffix(table.fresh_pending(w), "/reject"),
            only(
                {"office": 200, "venue_manager_own": 200, "community_manager_own": 403},
                otherwise=404,
            ),
        ),
        Case(
            "booking",
            "GET",
            f"/v1/resources/{w.room}/availability?from={_day(2)}&to={_day(9)}",
            EVERYONE,
        ),
        Case("booking", "GET", f"/v1/resources/{w.room}/calendar.ics", EVERYONE),
        # lecturers
        Case(
            "lecturers",
            "POST",
            "/v1/lecturers",
            only({"office": 201}),
            lambda w: {"name": "赵律师", "topics": ["law"], "area_id": w.area, "availability": []},
        ),
        Case(
            "lecturers",
            "GET",
            f"/v1/lecturers/{w.lecturer}",
            {**EVERYONE, "lecturer_other": 404},
        ),
        Case(
            "lecturers",
            "PATCH",
            f"/v1/lecturers/{w.lecturer}",
            only({"office": 200, "lecturer_own": 200, "lecturer_other": 404}),
            lambda _: {"phone": "0592 1234567"},
        ),
        Case(
            "lecturers",
            "POST",
            "/v1/requests",
            only({"office": 201, "venue_manager_own": 201}),
            lambda w: {
                "venue_id": w.venue,
                "topic": "health",
                "programme": "elderly",
                "month": w.month,
            },
        ),
        Case(
            "lecturers",
            "GET",
            f"/v1/requests/{w.request}",
            {
                **only({"office": 200, "venue_manager_own": 200}, otherwise=404),
                "lecturer_own": 403,
                "lecturer_other": 403,
            },
        ),
        Case(
            "lecturers",
            "POST",
            "/v1/matching/runs",
            only({"office": 202}),
            lambda w: {"month": w.month},
        ),
        Case(
            "lecturers",
            "GET",
            "/v1/matching/runs",
            only({"office": 200, "service": 200}),
        ),
        Case(
            "lecturers",
            "GET",
            f"/v1/offers/{w.offer}",
            only({"office": 200, "venue_manager_own": 200, "lecturer_own": 200}, otherwise=404),
        ),
        Case(
            "lecturers",
            "GET",
            "/v1/offers",
            {**EVERYONE, "community_manager_own": 403, "community_manager_other": 403},
        ),
        # Answers that change nothing for those who may not give them; the lecturer's own is
        # checked last, below.
        Case(
            "lecturers",
            "POST",
            f"/v1/offers/{w.offer}/decline",
            {
                **only({}, otherwise=403),
                "office": 0,  # would answer: left out
                "lecturer_own": 0,
                "lecturer_other": 404,
            },
        ),
    ]


def accounts(table: Table) -> list[Case]:
    """Identity: a service reads and changes nothing; a manager its own org in its own role."""
    w = table.world
    no_lecturers = {"lecturer_own": 403, "lecturer_other": 403}
    own_centre = only({"office": 200, "community_manager_own": 200, "service": 200})
    return [
        Case("identity", "GET", "/v1/orgs", EVERYONE),
        Case("identity", "GET", f"/v1/orgs/{OWN_ORG}", EVERYONE),
        Case(
            "identity",
            "POST",
            "/v1/orgs",
            only({"office": 201}),
            lambda w: {"id": f"centre-{next(w.serials)}", "name": "新中心", "kind": "centre"},
        ),
        # Oneself: a service's token has no account to read (404) and may change none (403).
        Case("identity", "GET", "/v1/me", {**EVERYONE, "service": 404}),
        Case(
            "identity", "PATCH", "/v1/me", {**EVERYONE, "service": 403}, lambda _: {"locale": "en"}
        ),
        Case("identity", "GET", "/v1/users", {**EVERYONE, **no_lecturers}),
        Case("identity", "GET", f"/v1/users?org={OWN_ORG}", own_centre),
        # Another org's member does not exist for a manager, nor anyone for a lecturer.
        Case(
            "identity",
            "GET",
            f"/v1/users/{w.member}",
            only({"office": 200, "community_manager_own": 200, "service": 200}, otherwise=404),
        ),
        Case(
            "identity",
            "POST",
            lambda w: _suffix(table.spare_user(w), "/disable"),
            only({"office": 200}),
        ),
        Case(
            "identity",
            "DELETE",
            lambda _: table.spare_membership(OWN_ORG, Role.COMMUNITY_MANAGER),
            only({"office": 204, "community_manager_own": 204}),
        ),
        Case(
            "identity",
            "DELETE",
            lambda _: table.spare_membership(OWN_VENUE_ORG, Role.VENUE_MANAGER),
            only({"office": 204, "venue_manager_own": 204}),
        ),
        # Its own org, another role: the office's to end, not the community manager's.
        Case(
            "identity",
            "DELETE",
            lambda _: _suffix(
                table.spare_membership(OWN_ORG, Role.VENUE_MANAGER), "?role=venue_manager"
            ),
            only({"office": 204}),
        ),
        Case(
            "identity",
            "POST",
            "/v1/invitations",
            only({"office": 201, "community_manager_own": 201}),
            lambda w: invitation(w, OWN_ORG),
        ),
        Case(
            "identity",
            "POST",
            "/v1/invitations",
            only({"office": 201, "venue_manager_own": 201}),
            lambda w: invitation(w, OWN_VENUE_ORG, Role.VENUE_MANAGER),
        ),
        Case(
            "identity",
            "POST",
            "/v1/invitations",
            only({"office": 201}),
            lambda w: invitation(w, OWN_ORG, Role.VENUE_MANAGER),
        ),
        Case("identity", "GET", "/v1/invitations", {**EVERYONE, **no_lecturers}),
        Case("identity", "GET", f"/v1/invitations?org={OWN_ORG}", own_centre),
        Case(
            "identity",
            "DELETE",
            table.fresh_invitation,
            only({"office": 204, "community_manager_own": 204}),
        ),
    ]


def delivery_log() -> list[Case]:
    """Notify: what went to whom is the office's to read, whatever the filter."""
    office = only({"office": 200, "service": 200})
    return [
        Case("notify", "GET", "/v1/messages", office),
        Case("notify", "GET", "/v1/messages?status=failed", office),
        Case("notify", "GET", "/v1/messages?recipient=lecturer_own@example.org", office),
    ]


async def _suffix(path: Awaitable[str], suffix: str) -> str:
    return f"{await path}{suffix}"


def _day(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT00:00:00%%2B08:00")


async def test_every_endpoint_answers_each_role_as_the_contract_says(
    suite: Suite, tokens: Tokens
) -> None:
    table = Table(suite, tokens, World())
    await build(table)
    await table.act_as_everyone()
    await check_every_case(table)
    await check_what_lists_show(table)


async def check_every_case(table: Table) -> None:
    wrong: list[str] = []
    for case in cases(table):
        for role, expected in case.expect.items():
            if expected == 0:
                continue
            path = case.path if isinstance(case.path, str) else await case.path(table.world)
            body = case.body(table.world) if case.body else None
            answer = await table.call(case.service, case.method, path, table.headers[role], body)
            if answer.is_success:
                table.changed(path)
            if answer.status_code != expected:
                wrong.append(
                    f"{case.service} {case.method} {path} as {role}: "
                    f"{answer.status_code}, expected {expected} ({answer.text[:120]})"
                )
            elif expected >= 400:
                code = answer.json()["code"]
                if code != {403: "forbidden", 404: "not_found"}[expected]:
                    wrong.append(f"{case.method} {path} as {role}: code {code}")
    assert not wrong, "\n".join(wrong)


async def check_what_lists_show(table: Table) -> None:
    suite = table.suite
    # What a list shows is scoped too: another organisation's booking is not in it.
    listed = await suite.booking.get(
        "/v1/bookings", headers=table.headers["community_manager_other"]
    )
    assert table.world.booking not in {item["id"] for item in listed.json()["items"]}
    offers = await suite.lecturers.get("/v1/offers", headers=table.headers["lecturer_other"])
    assert table.world.offer not in {item["id"] for item in offers.json()["items"]}
    # A lecturer's feed opens with its own token only.
    async with httpx.AsyncClient(base_url=suite.settings.service_url("lecturers")) as anyone:
        theirs = await anyone.get(
            f"/v1/lecturers/{table.world.lecturer}/feed.ics",
            params={"token": table.world.other_feed_token},
        )
    assert theirs.status_code == 404
    # A manager's lists of members and invitations are its own org's; a service reads users in
    # bulk, as notify does.
    members = await suite.identity.get(
        "/v1/users", headers=table.headers["community_manager_other"]
    )
    assert table.world.member not in {user["id"] for user in members.json()["items"]}
    invitations = await suite.identity.get(
        "/v1/invitations", headers=table.headers["venue_manager_own"]
    )
    assert {item["org"] for item in invitations.json()["items"]} == {OWN_VENUE_ORG}
    bulk = await suite.identity.get(
        "/v1/users", params={"id": [table.world.member]}, headers=table.headers["service"]
    )
    assert [user["id"] for user in bulk.json()["items"]] == [table.world.member]
    # The offered lecturer answers last, once.
    mine = await suite.lecturers.post(
        f"/v1/offers/{table.world.offer}/accept", headers=table.headers["lecturer_own"]
    )
    assert mine.status_code == 200, mine.text
