"""Identity's accounts through HTTP: organisations, users, oneself, memberships, invitations and
password resets, on SQLite and PostgreSQL, with the outbox and the revocations they publish."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from arq.connections import ArqRedis, create_pool
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from services.identity.cli import add_user, membership_of
from services.identity.store import tables
from services.identity.store.rows import InvitationRow, PasswordResetRow, RefreshTokenRow, UserRow
from shared.config import Settings
from shared.events import Event, decode
from shared.outbox import relay_pending
from shared.worker import deserialize, redis_settings, serialize
from tests.conftest import Tokens, bearer, database_of
from tests.service.conftest import TEST_WEB_URL
from tests.service.test_openapi_documents import document, operations, undocumented_problems
from tests.service.test_registry import assert_problem, fields_of

Client = AsyncTestClient  # type: ignore[type-arg]
PASSWORD = "a long enough passphrase"
OTHER_PASSWORD = "another long passphrase"


def assert_refused(response: Any, field: str, code: str = "invalid_request") -> None:
    """A clean refusal naming `field`: 400 or 422 (the contract allows either for bad types)."""
    assert response.status_code in (400, 422), response.text
    problem = assert_problem(response, response.status_code, code)
    assert field in fields_of(problem), problem


def settings_of(client: Client) -> Settings:
    settings: Settings = client.app.state["service"].settings
    return settings


async def make_org(
    identity: Client, tokens: Tokens, org_id: str, name: str = "城关第一小学", kind: str = "school"
) -> None:
    response = await identity.post(
        "/v1/orgs", json={"id": org_id, "name": name, "kind": kind}, headers=tokens("office")
    )
    assert response.status_code == 201, response.text


async def add(
    identity: Client,
    email: str,
    role: str = "community_manager",
    org: str = "centre-a",
    *,
    password: str | None = PASSWORD,
    lecturer_id: str | None = None,
) -> str:
    """An account made by the operator's command, in identity's test database."""
    return await add_user(
        settings_of(identity),
        email=email,
        password=password,
        membership=membership_of(role, org, lecturer_id),
    )


async def sign_in(
    identity: Client, email: str, password: str = PASSWORD, **pick: str
) -> dict[str, Any]:
    response = await identity.post(
        "/v1/token",
        json={"grant_type": "password", "username": email, "password": password, **pick},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(identity: Client, refresh_token: str) -> Any:
    return await identity.post(
        "/v1/token", json={"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


async def outbox(identity: Client, event_type: str | None = None) -> list[Event]:
    async with database_of(identity, "identity") as database, database.read() as session:
        query = select(tables.outbox.c.type, tables.outbox.c.payload).order_by(tables.outbox.c.seq)
        rows = (await session.execute(query)).all()
    return [decode(row.payload) for row in rows if event_type in (None, row.type)]


async def invite(identity: Client, headers: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await identity.post("/v1/invitations", json=body, headers=headers)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def link_token(identity: Client, invitation_id: str) -> str:
    """The invitation's token, as only its `user.invited` event holds it before the relay."""
    for event in await outbox(identity, "user.invited"):
        if event.data["invitation_id"] == invitation_id:
            token: str = event.data["token"]
            return token
    raise AssertionError(f"no user.invited event for {invitation_id}")


async def invited(
    identity: Client,
    tokens: Tokens,
    email: str,
    org: str = "centre-a",
    role: str = "community_manager",
    **extra: Any,
) -> str:
    """An invitation made by the office; its token."""
    made = await invite(identity, tokens("office"), email=email, org=org, role=role, **extra)
    return await link_token(identity, made["id"])


async def set_column(identity: Client, row: Any, where: Any, **values: Any) -> None:
    async with database_of(identity, "identity") as database, database.write() as session:
        await session.execute(update(row).where(where).values(**values))


async def refused_within(identity: Client, token: str, seconds: float) -> float:
    """Seconds until identity's own verifier refuses `token` (it reads revocations every few
    seconds, as every service does)."""
    started = time.monotonic()
    while (await identity.get("/v1/me", headers=bearer(token))).status_code != 401:
        if time.monotonic() - started > seconds:
            pytest.fail(f"the token was still accepted after {seconds} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


# Organisations


async def test_the_office_registers_organisations_that_every_token_reads(
    identity: Client, tokens: Tokens
) -> None:
    office = tokens("office")
    made = await identity.post(
        "/v1/orgs",
        json={"id": "school-1", "name": "城关第一小学", "kind": "school"},
        headers=office,
    )
    assert made.status_code == 201, made.text
    assert made.json() == {"id": "school-1", "name": "城关第一小学", "kind": "school"}
    await make_org(identity, tokens, "centre-2", "社区服务中心", "centre")
    await make_org(identity, tokens, "corps", "讲师团", "lecturer_corps")

    reader = tokens("lecturer", "corps", lecturer_id="l-1")
    first = (await identity.get("/v1/orgs?limit=2", headers=reader)).json()
    assert [org["id"] for org in first["items"]] == ["centre-2", "corps"]
    rest = await identity.get(f"/v1/orgs?limit=2&cursor={first['next_cursor']}", headers=reader)
    assert rest.json() == {
        "items": [{"id": "school-1", "name": "城关第一小学", "kind": "school"}],
        "next_cursor": None,
    }
    assert (await identity.get("/v1/orgs/school-1", headers=reader)).json()[
        "name"
    ] == "城关第一小学"
    assert_problem(await identity.get("/v1/orgs/nowhere", headers=reader), 404, "not_found")
    assert_problem(await identity.get("/v1/orgs"), 401, "unauthenticated")


async def test_an_organisation_id_is_taken_once(identity: Client, tokens: Tokens) -> None:
    await make_org(identity, tokens, "school-1")
    again = await identity.post(
        "/v1/orgs",
        json={"id": "school-1", "name": "别的学校", "kind": "school"},
        headers=tokens("office"),
    )
    assert_problem(again, 409, "org_exists")


async def test_the_same_idempotency_key_makes_one_organisation(
    identity: Client, tokens: Tokens
) -> None:
    headers = {**tokens("office", sub="office-1"), "Idempotency-Key": "k-1"}
    body = {"id": "school-1", "name": "一小", "kind": "school"}
    first = await identity.post("/v1/orgs", json=body, headers=headers)
    second = await identity.post("/v1/orgs", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json()
    reused = await identity.post("/v1/orgs", json={**body, "name": "二小"}, headers=headers)
    assert_problem(reused, 422, "idempotency_key_reused")


async def test_only_the_office_itself_registers_organisations(
    identity: Client, tokens: Tokens
) -> None:
    body = {"id": "school-9", "name": "九小", "kind": "school"}
    for role in ("service", "venue_manager", "community_manager"):
        answer = await identity.post("/v1/orgs", json=body, headers=tokens(role, "school-9"))
        assert_problem(answer, 403, "forbidden")
    lecturer = tokens("lecturer", lecturer_id="l-1")
    assert_problem(await identity.post("/v1/orgs", json=body, headers=lecturer), 403, "forbidden")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"id": "school-1", "name": "一小\r\nBcc: all@example.org", "kind": "school"}, "name"),
        ({"id": "school-1", "name": "一小\n", "kind": "school"}, "name"),
        ({"id": "school-1", "name": "x" * 10_000, "kind": "school"}, "name"),
        ({"id": "school-1", "name": "   ", "kind": "school"}, "name"),
        ({"id": "school-1\n", "name": "一小", "kind": "school"}, "id"),
        ({"id": "school 1", "name": "一小", "kind": "school"}, "id"),
        ({"id": "school-1", "name": "一小", "kind": "castle"}, "kind"),
        ({"id": "school-1", "name": "一小", "kind": "school", "extra": 1}, "extra"),
        ({"name": "一小", "kind": "school"}, "id"),
    ],
)
async def test_a_bad_organisation_is_refused_naming_the_field(
    identity: Client, tokens: Tokens, body: dict[str, Any], field: str
) -> None:
    answer = await identity.post("/v1/orgs", json=body, headers=tokens("office"))
    assert_refused(answer, field)


async def test_malformed_json_and_cursors_are_problems_not_errors(
    identity: Client, tokens: Tokens
) -> None:
    office = tokens("office")
    broken = await identity.post(
        "/v1/orgs", content=b'{"id": "x",', headers={**office, "content-type": "application/json"}
    )
    assert_problem(broken, 400, "invalid_request")
    for path in ("/v1/orgs?cursor=%%%", "/v1/users?cursor=bm90LWEtdXVpZA", "/v1/orgs?limit=0"):
        answer = await identity.get(path, headers=office)
        assert answer.status_code in (400, 422), (path, answer.text)
        assert answer.json()["code"] == "invalid_request"


# Invitations


async def test_an_invitation_makes_an_account_that_signs_in(
    identity: Client, tokens: Tokens
) -> None:
    await make_org(identity, tokens, "centre-a", "社区教育中心", "centre")
    made = await invite(
        identity,
        tokens("office", "city", sub="office-user"),
        email="  Wang.Fang@Example.ORG ",
        name="王芳",
        org="centre-a",
        role="community_manager",
        locale="zh-CN",
    )
    assert made["email"] == "wang.fang@example.org"
    assert (made["org"], made["role"]) == ("centre-a", "community_manager")
    expires = datetime.fromisoformat(made["expires_at"])
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)

    [event] = await outbox(identity, "user.invited")
    token = event.data["token"]
    assert event.data["link"] == f"{TEST_WEB_URL}/invite/{token}"
    assert event.data | {"token": "", "link": ""} == {
        "invitation_id": made["id"],
        "email": "wang.fang@example.org",
        "name": "王芳",
        "org": "centre-a",
        "org_name": "社区教育中心",
        "role": "community_manager",
        "lecturer_id": None,
        "locale": "zh-CN",
        "invited_by": "office-user",
        "expires_at": event.data["expires_at"],
        "token": "",
        "link": "",
    }
    async with database_of(identity, "identity") as database, database.read() as session:
        stored = await session.scalar(select(InvitationRow.token_hash))
    assert stored is not None
    assert token not in stored

    page = await identity.get(f"/v1/invitations/{token}")  # no login: the link is the key
    assert page.status_code == 200, page.text
    assert page.json() | {"expires_at": None} == {
        "email": "wang.fang@example.org",
        "org": "centre-a",
        "org_name": "社区教育中心",
        "role": "community_manager",
        "expires_at": None,
        "existing_user": False,
        "name": "王芳",
        "locale": "zh-CN",
    }

    accepted = await identity.post(f"/v1/invitations/{token}/accept", json={"password": PASSWORD})
    assert accepted.status_code == 201, accepted.text
    user = accepted.json()
    assert (user["email"], user["name"], user["locale"]) == (
        "wang.fang@example.org",
        "王芳",
        "zh-CN",
    )
    assert user["memberships"] == [{"org": "centre-a", "role": "community_manager"}]
    async with database_of(identity, "identity") as database, database.read() as session:
        hashed = await session.scalar(select(UserRow.password_hash))
    assert hashed is not None
    assert hashed.startswith("$argon2id$")

    signed_in = await sign_in(identity, "wang.fang@example.org")
    claims = jwt.decode(signed_in["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["org"], claims["role"]) == (
        user["id"],
        "centre-a",
        "community_manager",
    )
    me = await identity.get("/v1/me", headers=bearer(signed_in["access_token"]))
    assert me.json()["name"] == "王芳"
    [joined] = await outbox(identity, "user.joined")
    assert joined.data["user_id"] == user["id"]
    assert joined.data["new_account"] is True
    assert joined.data["invitation_id"] == made["id"]


async def test_an_invitation_link_works_once(identity: Client, tokens: Tokens) -> None:
    await make_org(identity, tokens, "centre-a")
    token = await invited(identity, tokens, "li@example.org")
    first = await identity.post(f"/v1/invitations/{token}/accept", json={"password": PASSWORD})
    assert first.status_code == 201, first.text
    again = await identity.post(
        f"/v1/invitations/{token}/accept", json={"password": OTHER_PASSWORD}
    )
    assert_problem(again, 410, "invitation_expired")
    assert_problem(await identity.get(f"/v1/invitations/{token}"), 410, "invitation_expired")
    await sign_in(identity, "li@example.org", PASSWORD)


async def test_two_accepts_at_once_make_one_account(identity: Client, tokens: Tokens) -> None:
    await make_org(identity, tokens, "centre-a")
    token = await invited(identity, tokens, "race@example.org")
    answers = await asyncio.gather(
        *(
            identity.post(f"/v1/invitations/{token}/accept", json={"password": PASSWORD})
            for _ in range(3)
        )
    )
    assert sorted(answer.status_code for answer in answers) == [201, 410, 410], [
        answer.text for answer in answers
    ]
    assert len(await outbox(identity, "user.joined")) == 1


async def test_withdrawn_and_replaced_invitations_are_gone(
    identity: Client, tokens: Tokens
) -> None:
    await make_org(identity, tokens, "centre-a")
    office = tokens("office")
    older = await invited(identity, tokens, "zhao@example.org")
    newer = await invited(identity, tokens, "zhao@example.org")
    assert_problem(
        await identity.post(f"/v1/invitations/{older}/accept", json={"password": PASSWORD}),
        410,
        "invitation_expired",
    )
    listed = (await identity.get("/v1/invitations", headers=office)).json()["items"]
    assert [item["email"] for item in listed] == ["zhao@example.org"]
    withdrawn = listed[0]["id"]

    assert (
        await identity.delete(f"/v1/invitations/{withdrawn}", headers=office)
    ).status_code == 204
    assert_problem(await identity.get(f"/v1/invitations/{newer}"), 410, "invitation_expired")
    assert_problem(
        await identity.post(f"/v1/invitations/{newer}/accept", json={"password": PASSWORD}),
        410,
        "invitation_expired",
    )
    # Withdrawing again changes nothing; the list no longer shows it.
    assert (
        await identity.delete(f"/v1/invitations/{withdrawn}", headers=office)
    ).status_code == 204
    assert (await identity.get("/v1/invitations", headers=office)).json()["items"] == []


async def test_an_accepted_invitation_cannot_be_withdrawn(identity: Client, tokens: Tokens) -> None:
    await make_org(identity, tokens, "centre-a")
    made = await invite(
        identity, tokens("office"), email="q@example.org", org="centre-a", role="community_manager"
    )
    token = await link_token(identity, made["id"])
    accepted = await identity.post(f"/v1/invitations/{token}/accept", json={"password": PASSWORD})
    assert accepted.status_code == 201
    gone = await identity.delete(f"/v1/invitations/{made['id']}", headers=tokens("office"))
    assert_problem(gone, 410, "invitation_expired")


async def test_an_expired_invitation_is_gone(identity: Client, tokens: Tokens) -> None:
    await make_org(identity, tokens, "centre-a")
    token = await invited(identity, tokens, "late@example.org")
    await set_column(
        identity,
        InvitationRow,
        InvitationRow.email == "late@example.org",
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    assert_problem(await identity.get(f"/v1/invitations/{token}"), 410, "invitation_expired")
    assert_problem(
        await identity.post(f"/v1/invitations/{token}/accept", json={"password": PASSWORD}),
        410,
        "invitation_expired",
    )
    assert (await identity.get("/v1/invitations", headers=tokens("office"))).json()["items"] == []


async def test_invitations_are_found_by_token_and_withdrawn_by_id(
    identity: Client, tokens: Tokens
) -> None:
    await make_org(identity, tokens, "centre-a")
    made = await invite(
        identity, tokens("office"), email="p@example.org", org="centre-a", role="community_manager"
    )
    token = await link_token(identity, made["id"])
    office = tokens("office")
    assert_problem(await identity.get("/v1/invitations/no-such-token"), 404, "not_found")
    assert_problem(
        await identity.post("/v1/invitations/no-such-token/accept", json={"password": PASSWORD}),
        404,
        "not_found",
    )
    # The id is no token, and the token no id.
    assert_problem(await identity.get(f"/v1/invitations/{made['id']}"), 404, "not_found")
    assert_problem(
        await identity.delete(f"/v1/invitations/{token}", headers=office), 404, "not_found"
    )
    unknown = "0190b8f8-0000-7000-8000-000000000000"
    assert_problem(
        await identity.delete(f"/v1/invitations/{unknown}", headers=office), 404, "not_found"
    )
    assert (await identity.get(f"/v1/invitations/{token}")).status_code == 200


async def test_an_existing_account_accepts_signed_in_and_keeps_its_password(
    identity: Client, tokens: Tokens
) -> None:
    teacher = await add(identity, "teacher@example.org", "community_manager", "centre-a")
    await add(identity, "someone@example.org", "community_manager", "centre-a")
    await make_org(identity, tokens, "corps", "讲师团", "lecturer_corps")
    token = await invited(
        identity,
        tokens,
        "Teacher@example.org",
        org="corps",
        role="lecturer",
        lecturer_id="0190b8f8-0000-7000-8000-00000000000a",
    )
    page = (await identity.get(f"/v1/invitations/{token}")).json()
    assert page["existing_user"] is True

    accept = f"/v1/invitations/{token}/accept"
    body = {"password": OTHER_PASSWORD}
    assert_problem(await identity.post(accept, json=body), 401, "unauthenticated")
    stranger = await sign_in(identity, "someone@example.org")
    assert_problem(
        await identity.post(accept, json=body, headers=bearer(stranger["access_token"])),
        403,
        "forbidden",
    )
    assert_problem(
        await identity.post(accept, json=body, headers={"Authorization": "Bearer forged"}),
        401,
        "unauthenticated",
    )
    own = await sign_in(identity, "teacher@example.org")
    accepted = await identity.post(accept, json=body, headers=bearer(own["access_token"]))
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["id"] == teacher
    assert accepted.json()["memberships"] == [
        {"org": "centre-a", "role": "community_manager"},
        {"org": "corps", "role": "lecturer", "lecturer_id": "0190b8f8-0000-7000-8000-00000000000a"},
    ]
    # The password is the one it had; the new membership is there to pick.
    lecturing = await sign_in(
        identity, "teacher@example.org", PASSWORD, org="corps", role="lecturer"
    )
    claims = jwt.decode(lecturing["access_token"], options={"verify_signature": False})
    assert claims["lecturer_id"] == "0190b8f8-0000-7000-8000-00000000000a"
    wrong = await identity.post(
        "/v1/token",
        json={
            "grant_type": "password",
            "username": "teacher@example.org",
            "password": OTHER_PASSWORD,
        },
    )
    assert_problem(wrong, 401, "invalid_credentials")
    [joined] = await outbox(identity, "user.joined")
    assert joined.data["new_account"] is False


async def test_a_manager_invites_to_its_own_org_in_its_own_role_only(
    identity: Client, tokens: Tokens
) -> None:
    await make_org(identity, tokens, "school-a")
    await make_org(identity, tokens, "school-b")
    manager = tokens("venue_manager", "school-a")
    own = {"email": "new@example.org", "org": "school-a", "role": "venue_manager"}
    await invite(identity, manager, **own)
    for body in (
        {**own, "org": "school-b"},
        {**own, "role": "community_manager"},
        {**own, "role": "office"},
        {**own, "role": "lecturer", "lecturer_id": "0190b8f8-0000-7000-8000-00000000000a"},
    ):
        answer = await identity.post("/v1/invitations", json=body, headers=manager)
        assert_problem(answer, 403, "forbidden")
    for role in ("service", "lecturer"):
        answer = await identity.post(
            "/v1/invitations", json=own, headers=tokens(role, "school-a", lecturer_id="l-1")
        )
        assert_problem(answer, 403, "forbidden")


async def test_open_invitations_are_listed_for_the_inviters_org(
    identity: Client, tokens: Tokens
) -> None:
    await make_org(identity, tokens, "school-a")
    await make_org(identity, tokens, "school-b")
    for org in ("school-a", "school-b"):
        await invite(
            identity, tokens("office"), email=f"x@{org}.example.org", org=org, role="venue_manager"
        )
    manager = tokens("venue_manager", "school-a")
    mine = (await identity.get("/v1/invitations", headers=manager)).json()["items"]
    assert [item["org"] for item in mine] == ["school-a"]
    assert_problem(
        await identity.get("/v1/invitations?org=school-b", headers=manager), 403, "forbidden"
    )
    everyone = (await identity.get("/v1/invitations", headers=tokens("office"))).json()["items"]
    assert {item["org"] for item in everyone} == {"school-a", "school-b"}
    assert (await identity.get("/v1/invitations", headers=tokens("service"))).status_code == 200
    lecturer = tokens("lecturer", lecturer_id="l-1")
    assert_problem(await identity.get("/v1/invitations", headers=lecturer), 403, "forbidden")
    other = (
        await identity.get("/v1/invitations", headers=tokens("venue_manager", "school-b"))
    ).json()
    assert_problem(
        await identity.delete(
            f"/v1/invitations/{mine[0]['id']}", headers=tokens("venue_manager", "school-b")
        ),
        403,
        "forbidden",
    )
    assert len(other["items"]) == 1


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"email": "not an address"}, "email", "invalid_request"),
        ({"email": "a@b.example\r\nBcc: x@y.example"}, "email", "invalid_request"),
        ({"name": "王\r\n芳"}, "name", "invalid_request"),
        ({"name": "名" * 5_000}, "name", "invalid_request"),
        ({"role": "service"}, "role", "invalid_request"),
        ({"role": "lecturer"}, "lecturer_id", "invalid_request"),
        ({"lecturer_id": "0190b8f8-0000-7000-8000-00000000000a"}, "lecturer_id", "invalid_request"),
        ({"locale": "fr"}, "locale", "invalid_request"),
        ({"org": "nowhere"}, "org", "unknown_org"),
    ],
)
async def test_a_bad_invitation_is_refused_naming_the_field(
    identity: Client, tokens: Tokens, body: dict[str, Any], field: str, code: str
) -> None:
    await make_org(identity, tokens, "centre-a")
    base = {"email": "ok@example.org", "org": "centre-a", "role": "community_manager"}
    answer = await identity.post("/v1/invitations", json=base | body, headers=tokens("office"))
    assert_refused(answer, field, code)


async def test_an_invitation_needs_a_good_password_and_a_clean_name(
    identity: Client, tokens: Tokens
) -> None:
    await make_org(identity, tokens, "centre-a")
    token = await invited(identity, tokens, "pw@example.org")
    accept = f"/v1/invitations/{token}/accept"
    for body, code, field in (
        ({}, "invalid_request", "password"),
        ({"password": "short"}, "weak_password", "password"),
        ({"password": "PW@example.org"}, "weak_password", "password"),
        ({"password": PASSWORD, "name": "a\nb"}, "invalid_request", "name"),
        ({"password": "p" * 1000}, "invalid_request", "password"),
    ):
        assert_refused(await identity.post(accept, json=body), field, code)
    # None of those used the link up.
    done = await identity.post(accept, json={"password": PASSWORD, "name": "林小雨"})
    assert done.status_code == 201, done.text
    assert done.json()["name"] == "林小雨"


async def test_an_address_that_holds_the_membership_is_not_invited_again(
    identity: Client, tokens: Tokens
) -> None:
    await add(identity, "held@example.org", "community_manager", "centre-a")
    answer = await identity.post(
        "/v1/invitations",
        json={"email": "held@example.org", "org": "centre-a", "role": "community_manager"},
        headers=tokens("office"),
    )
    assert_problem(answer, 409, "already_member")


# Oneself


async def test_me_reads_and_changes_name_and_language(identity: Client, tokens: Tokens) -> None:
    user = await add(identity, "me@example.org")
    signed_in = await sign_in(identity, "me@example.org")
    headers = bearer(signed_in["access_token"])
    me = (await identity.get("/v1/me", headers=headers)).json()
    assert (me["id"], me["email"], me["locale"]) == (user, "me@example.org", "zh-CN")
    assert me["memberships"] == [{"org": "centre-a", "role": "community_manager"}]

    changed = await identity.patch(
        "/v1/me", json={"name": "陈静 Chen", "locale": "en"}, headers=headers
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["locale"]) == ("陈静 Chen", "en")
    assert (await identity.get("/v1/me", headers=headers)).json()["name"] == "陈静 Chen"
    for body, field in (
        ({"locale": "fr"}, "locale"),
        ({"name": "陈\r\n静"}, "name"),
        ({"name": "x" * 10_240}, "name"),
        ({"email": "other@example.org"}, "email"),
    ):
        assert_refused(await identity.patch("/v1/me", json=body, headers=headers), field)
    # A token that names no account (a service's) has no "me".
    assert_problem(await identity.get("/v1/me", headers=tokens("service")), 404, "not_found")


async def test_a_service_token_may_not_change_an_account_through_me(
    identity: Client, tokens: Tokens
) -> None:
    """Was 404 (no such user): a service changes no account, so it is 403, as for every account
    write of a service; even where its `sub` is some user's id."""
    user = await add(identity, "svc@example.org")
    for sub in (None, user):
        headers = tokens("service", "commonroom", sub=sub)
        refused = await identity.patch("/v1/me", json={"locale": "en"}, headers=headers)
        assert_problem(refused, 403, "forbidden")


async def test_a_new_password_needs_the_current_one_and_ends_every_other_login(
    identity: Client,
) -> None:
    await add(identity, "pw-change@example.org")
    here = await sign_in(identity, "pw-change@example.org")
    elsewhere = await sign_in(identity, "pw-change@example.org")
    headers = bearer(here["access_token"])

    missing = await identity.patch("/v1/me", json={"password": OTHER_PASSWORD}, headers=headers)
    assert_problem(missing, 422, "current_password_required")
    wrong = await identity.patch(
        "/v1/me",
        json={"password": OTHER_PASSWORD, "current_password": "not the password"},
        headers=headers,
    )
    assert_problem(wrong, 422, "wrong_password")
    weak = await identity.patch(
        "/v1/me", json={"password": "short", "current_password": PASSWORD}, headers=headers
    )
    assert_problem(weak, 422, "weak_password")

    done = await identity.patch(
        "/v1/me", json={"password": OTHER_PASSWORD, "current_password": PASSWORD}, headers=headers
    )
    assert done.status_code == 200, done.text
    assert_problem(await refresh(identity, elsewhere["refresh_token"]), 401, "invalid_grant")
    assert (await refresh(identity, here["refresh_token"])).status_code == 200
    await refused_within(identity, elsewhere["access_token"], 15)
    assert (await identity.get("/v1/me", headers=headers)).status_code == 200
    await sign_in(identity, "pw-change@example.org", OTHER_PASSWORD)


# Users


async def test_users_are_listed_for_office_services_and_a_managers_own_org(
    identity: Client, tokens: Tokens
) -> None:
    a1 = await add(identity, "a1@example.org", "venue_manager", "school-a")
    a2 = await add(identity, "a2@example.org", "venue_manager", "school-a")
    b1 = await add(identity, "b1@example.org", "venue_manager", "school-b")
    lecturer = await add(
        identity, "l1@example.org", "lecturer", "corps", lecturer_id="lect-1", password=None
    )
    # a1 also lectures: a manager of school-a sees only its school-a membership.
    await add(identity, "a1@example.org", "lecturer", "corps", lecturer_id="lect-2")

    office = tokens("office")
    every = (await identity.get("/v1/users", headers=office)).json()["items"]
    assert sorted(user["id"] for user in every) == sorted([a1, a2, b1, lecturer])
    in_a = await identity.get("/v1/users?org=school-a&role=venue_manager", headers=office)
    assert sorted(user["id"] for user in in_a.json()["items"]) == sorted([a1, a2])
    bulk = await identity.get(f"/v1/users?id={a1}&id={b1}&id=nobody", headers=tokens("service"))
    assert sorted(user["id"] for user in bulk.json()["items"]) == sorted([a1, b1])
    by_lecturer = await identity.get(
        "/v1/users?lecturer_id=lect-1&lecturer_id=lect-2", headers=tokens("service")
    )
    assert sorted(user["id"] for user in by_lecturer.json()["items"]) == sorted([a1, lecturer])
    paged = (await identity.get("/v1/users?limit=3", headers=office)).json()
    assert len(paged["items"]) == 3
    rest = await identity.get(f"/v1/users?limit=3&cursor={paged['next_cursor']}", headers=office)
    assert len(rest.json()["items"]) == 1
    assert rest.json()["next_cursor"] is None

    manager = tokens("venue_manager", "school-a")
    seen = (await identity.get("/v1/users", headers=manager)).json()["items"]
    assert sorted(user["id"] for user in seen) == sorted([a1, a2])
    assert all(
        user["memberships"] == [{"org": "school-a", "role": "venue_manager"}] for user in seen
    )
    assert_problem(await identity.get("/v1/users?org=school-b", headers=manager), 403, "forbidden")
    assert_problem(await identity.get(f"/v1/users/{b1}", headers=manager), 404, "not_found")
    assert (await identity.get(f"/v1/users/{a2}", headers=manager)).status_code == 200
    assert_problem(
        await identity.get("/v1/users", headers=tokens("lecturer", lecturer_id="l")),
        403,
        "forbidden",
    )
    # Oneself is always visible.
    own = tokens("lecturer", "corps", lecturer_id="lect-1", sub=lecturer)
    assert (await identity.get(f"/v1/users/{lecturer}", headers=own)).status_code == 200
    too_many = "&".join(f"id=u{n}" for n in range(101))
    answer = await identity.get(f"/v1/users?{too_many}", headers=office)
    assert answer.status_code in (400, 422)
    assert answer.json()["code"] == "invalid_request"


async def test_a_disabled_user_is_refused_at_once_and_everywhere_within_seconds(
    identity: Client, tokens: Tokens
) -> None:
    user = await add(identity, "leaving@example.org")
    signed_in = await sign_in(identity, "leaving@example.org")
    for role in ("service", "venue_manager", "community_manager"):
        answer = await identity.post(f"/v1/users/{user}/disable", headers=tokens(role, "centre-a"))
        assert_problem(answer, 403, "forbidden")

    disabled = await identity.post(f"/v1/users/{user}/disable", headers=tokens("office"))
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled"] is True
    # The refresh token stops at once, and no new sign-in works.
    assert_problem(await refresh(identity, signed_in["refresh_token"]), 401, "invalid_grant")
    wrong = await identity.post(
        "/v1/token",
        json={"grant_type": "password", "username": "leaving@example.org", "password": PASSWORD},
    )
    assert_problem(wrong, 401, "invalid_credentials")
    # The access token as soon as the verifier has re-read the revocations.
    poll = settings_of(identity).revocation_poll_seconds
    assert await refused_within(identity, signed_in["access_token"], 2 * poll + 2) <= 2 * poll + 2
    [event] = await outbox(identity, "user.disabled")
    assert event.data == {
        "user_id": user,
        "email": "leaving@example.org",
        "disabled_by": "office@org-a",
    }
    # Disabling again changes nothing.
    again = await identity.post(f"/v1/users/{user}/disable", headers=tokens("office"))
    assert again.status_code == 200
    assert len(await outbox(identity, "user.disabled")) == 1
    assert_problem(
        await identity.post("/v1/users/nobody/disable", headers=tokens("office")), 404, "not_found"
    )


async def test_ending_a_membership_ends_the_logins_acting_in_it(
    identity: Client, tokens: Tokens
) -> None:
    member = await add(identity, "member@example.org", "venue_manager", "school-a")
    await add(identity, "member@example.org", "community_manager", "school-a")
    as_venue = await sign_in(identity, "member@example.org", role="venue_manager")
    as_community = await sign_in(identity, "member@example.org", role="community_manager")

    path = f"/v1/orgs/school-a/members/{member}"
    other_org = tokens("venue_manager", "school-b")
    assert_problem(await identity.delete(path, headers=other_org), 403, "forbidden")
    assert_problem(
        await identity.delete(
            f"{path}?role=community_manager", headers=tokens("venue_manager", "school-a")
        ),
        403,
        "forbidden",
    )
    assert_problem(await identity.delete(path, headers=tokens("service")), 403, "forbidden")

    ended = await identity.delete(path, headers=tokens("venue_manager", "school-a"))
    assert ended.status_code == 204, ended.text
    assert_problem(await refresh(identity, as_venue["refresh_token"]), 401, "invalid_grant")
    assert (await refresh(identity, as_community["refresh_token"])).status_code == 200
    me = await identity.get("/v1/me", headers=bearer(as_community["access_token"]))
    assert me.json()["memberships"] == [{"org": "school-a", "role": "community_manager"}]
    assert_problem(
        await identity.delete(path, headers=tokens("venue_manager", "school-a")), 404, "not_found"
    )
    # The office ends the rest, whatever the role.
    assert (await identity.delete(path, headers=tokens("office"))).status_code == 204
    assert (await identity.get(f"/v1/users/{member}", headers=tokens("office"))).json()[
        "memberships"
    ] == []


# Password resets


async def test_a_password_reset_end_to_end_and_its_token_scrubbed_once_relayed(
    identity: Client, tokens: Tokens, redis_url: str
) -> None:
    user = await add(identity, "forgot@example.org")
    await identity.patch(
        "/v1/me", json={"locale": "en"}, headers=tokens("community_manager", "centre-a", sub=user)
    )
    old_login = await sign_in(identity, "forgot@example.org")
    for email in ("Forgot@Example.org", "nobody@example.org", "not an address"):
        answer = await identity.post("/v1/password-reset", json={"email": email})
        assert answer.status_code == 202, answer.text
    [event] = await outbox(identity, "password.reset_requested")
    token = event.data["token"]
    assert event.data == {
        "user_id": user,
        "email": "forgot@example.org",
        "name": "forgot",
        "locale": "en",
        "expires_at": event.data["expires_at"],
        "token": token,
        "link": f"{TEST_WEB_URL}/reset/{token}",
    }
    expires = datetime.fromisoformat(event.data["expires_at"])
    assert timedelta(minutes=29) < expires - datetime.now(UTC) <= timedelta(minutes=30)

    page = await identity.get(f"/v1/password-reset/{token}")
    assert page.json()["email"] == "forgot@example.org"
    weak = await identity.post(f"/v1/password-reset/{token}", json={"password": "short"})
    assert_problem(weak, 422, "weak_password")
    done = await identity.post(f"/v1/password-reset/{token}", json={"password": OTHER_PASSWORD})
    assert done.status_code == 204, done.text
    assert_problem(await refresh(identity, old_login["refresh_token"]), 401, "invalid_grant")
    await sign_in(identity, "forgot@example.org", OTHER_PASSWORD)
    again = await identity.post(f"/v1/password-reset/{token}", json={"password": PASSWORD})
    assert_problem(again, 410, "reset_expired")
    assert_problem(
        await identity.post("/v1/password-reset/unknown", json={"password": PASSWORD}),
        404,
        "not_found",
    )

    # The relay sends events nobody subscribes to yet (notify is still to come) and, marking them
    # sent, removes the link from the stored payload.
    await invite(
        identity,
        tokens("office"),
        email="new@example.org",
        org="centre-a",
        role="community_manager",
    )
    redis: ArqRedis = await create_pool(
        redis_settings(redis_url), job_serializer=serialize, job_deserializer=deserialize
    )
    async with database_of(identity, "identity") as database:
        try:
            while await relay_pending(database, tables, redis):
                pass
        finally:
            await redis.aclose()
        async with database.read() as session:
            rows = (await session.execute(select(tables.outbox))).all()
    assert all(row.sent_at is not None for row in rows)
    stored = {row.type: decode(row.payload).data for row in rows}
    assert "token" not in stored["password.reset_requested"]
    assert "link" not in stored["password.reset_requested"]
    assert stored["password.reset_requested"]["user_id"] == user
    assert "token" not in stored["user.invited"]
    assert "link" not in stored["user.invited"]
    assert stored["user.invited"]["email"] == "new@example.org"
    assert all(token not in row.payload.decode("latin-1") for row in rows)


async def test_an_expired_reset_link_is_gone_and_a_disabled_user_gets_none(
    identity: Client, tokens: Tokens
) -> None:
    user = await add(identity, "slow@example.org")
    await identity.post("/v1/password-reset", json={"email": "slow@example.org"})
    [event] = await outbox(identity, "password.reset_requested")
    await set_column(
        identity,
        PasswordResetRow,
        PasswordResetRow.user_id == user,
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    late = await identity.post(
        f"/v1/password-reset/{event.data['token']}", json={"password": OTHER_PASSWORD}
    )
    assert_problem(late, 410, "reset_expired")
    assert_problem(
        await identity.get(f"/v1/password-reset/{event.data['token']}"), 410, "reset_expired"
    )

    await identity.post(f"/v1/users/{user}/disable", headers=tokens("office"))
    answer = await identity.post("/v1/password-reset", json={"email": "slow@example.org"})
    assert answer.status_code == 202
    assert len(await outbox(identity, "password.reset_requested")) == 1


async def test_reset_mails_to_one_account_are_few(identity: Client) -> None:
    await add(identity, "flooded@example.org")
    for _ in range(8):
        answer = await identity.post("/v1/password-reset", json={"email": "flooded@example.org"})
        assert answer.status_code == 202
    assert len(await outbox(identity, "password.reset_requested")) == 5


# Tokens


async def test_a_refresh_token_replayed_after_the_grace_ends_the_whole_login(
    identity: Client,
) -> None:
    await add(identity, "replay@example.org")
    signed_in = await sign_in(identity, "replay@example.org")
    first = signed_in["refresh_token"]
    successor = (await refresh(identity, first)).json()["refresh_token"]
    await set_column(
        identity,
        RefreshTokenRow,
        RefreshTokenRow.used_at.is_not(None),
        used_at=datetime.now(UTC) - timedelta(seconds=31),
    )
    assert_problem(await refresh(identity, first), 401, "invalid_grant")
    assert_problem(await refresh(identity, successor), 401, "invalid_grant")


async def test_identity_documents_its_problems_and_which_routes_need_no_token(
    identity: Client,
) -> None:
    doc = await document(identity)
    assert undocumented_problems(doc) == {}
    found = operations(doc)
    for label in (
        "GET /v1/invitations/{token}",
        "POST /v1/invitations/{token}/accept",
        "POST /v1/password-reset",
        "POST /v1/password-reset/{token}",
    ):
        assert found[label].get("security") == [{}], label
    for label in ("POST /v1/invitations", "GET /v1/users", "PATCH /v1/me"):
        assert found[label].get("security") != [{}], label
    gone = found["POST /v1/invitations/{token}/accept"]["responses"]["410"]
    assert "application/problem+json" in gone["content"]
