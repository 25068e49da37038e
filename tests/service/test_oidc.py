"""Sign-in through a city's OpenID Connect provider, end to end: a real provider
(`oidc-provider-mock`) and identity, each in a process of its own on loopback, and the browser's
part (redirects, the provider's form) played with httpx. Identity runs on SQLite and on
PostgreSQL."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import select, update

from services.identity.domain.accounts import Locale, OrgKind
from services.identity.store import accounts, oidc
from services.identity.store import tables as identity_tables
from services.identity.store.rows import (
    AuthorizationCodeRow,
    ExternalAccountRow,
    InvitationRow,
    MembershipRow,
    OidcStateRow,
    UserRow,
)
from services.up import wait_ready
from shared.config import OidcSettings, Settings
from shared.db import connect
from shared.ids import new_id
from shared.processes import spawn as spawn_process
from shared.processes import stop_children
from tests.conftest import TEST_CLIENT_SECRETS, free_port, make_settings, spawn

WEB_URL = "https://web.commonroom.test"
# The web service's own page, with its own state and a query of its own, which must come back
# untouched.
RETURN_TO = f"{WEB_URL}/auth/city?state=web-state-1&next=%2Fbookings%3Fweek%3D2"
OIDC_CLIENT_ID = "commonroom-identity"
ORG = "school-oidc"
PROVIDER_READY_SECONDS = 30.0


@pytest.fixture(scope="session")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real OpenID Connect provider on loopback; its issuer URL. Its users are set per test
    (`PUT /users/{sub}`); any client id and secret, and any redirect URI, are accepted. Its
    output goes to `provider.log` in the test's temporary folder."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-W",
        "ignore",  # authlib's deprecation warnings, inside the provider's own process
        "-m",
        "oidc_provider_mock",
        "--port",
        str(port),
        "--require-nonce",
        "true",
    ]
    log = tmp_path_factory.mktemp("oidc-provider") / "provider.log"
    child = spawn_process(command, os.environ, log)
    try:
        deadline = time.monotonic() + PROVIDER_READY_SECONDS
        while True:
            assert child.poll() is None, f"the provider stopped while starting: see {log}"
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the provider did not start: see {log}"
            time.sleep(0.1)
        yield issuer
    finally:
        stop_children([child])


def oidc_settings(redis_url: str, identity: str, database: str, issuer: str | None) -> Settings:
    settings = (
        make_settings(redis_url, identity_url=identity)
        .with_database("identity", database)
        .with_service_url("web", WEB_URL)
    )
    if issuer is None:
        return settings
    return replace(
        settings,
        oidc=OidcSettings(issuer=issuer, client_id=OIDC_CLIENT_ID, client_secret="city-secret"),
    )


@dataclass
class City:
    """Identity serving OpenID Connect, the provider it trusts, and identity's database."""

    identity: str
    issuer: str
    database: str


@contextmanager
def identity_serving(settings: Settings) -> Iterator[str]:
    """Identity in a process of its own with `settings`; its base URL."""
    port = int(urlsplit(settings.service_url("identity")).port or 0)
    child = spawn(settings, "serve", "identity", "--port", str(port))
    try:
        wait_ready([settings.service_url("identity")], [child])
        yield settings.service_url("identity")
    finally:
        stop_children([child])


@pytest.fixture(scope="session")
def served(identity_db: str, redis_url: str, provider: str) -> Iterator[City]:
    """Identity in its own process, configured with the provider."""
    base = f"http://127.0.0.1:{free_port()}"
    with identity_serving(oidc_settings(redis_url, base, identity_db, provider)):
        yield City(identity=base, issuer=provider, database=identity_db)


@pytest.fixture
async def city(served: City) -> City:
    database = connect(served.database)
    try:
        async with database.write() as session:
            await accounts.ensure_org(
                session, org_id=ORG, name="实验小学", kind=OrgKind.SCHOOL, now=datetime.now(UTC)
            )
    finally:
        await database.dispose()
    return served


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """The browser: it follows no redirect by itself, so each hop can be looked at."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=10) as client:
        yield client


def fresh_address() -> str:
    return f"teacher-{new_id()[-12:]}@school.example.test"


async def at_provider(browser: httpx.AsyncClient, city: City, sub: str, **claims: Any) -> None:
    """The provider knows the person `sub` with these claims."""
    response = await browser.put(f"{city.issuer}/users/{sub}", json=claims)
    assert response.status_code == 204, response.text


async def invite(
    city: City,
    email: str,
    *,
    role: str = "venue_manager",
    expires_in: timedelta = timedelta(days=7),
) -> str:
    """An open invitation, written straight into identity's database."""
    now = datetime.now(UTC)
    invitation = new_id()
    database = connect(city.database)
    try:
        async with database.write() as session:
            session.add(
                InvitationRow(
                    id=invitation,
                    token_hash=new_id(),
                    email=email,
                    name="王老师",
                    org=ORG,
                    role=role,
                    locale="zh-CN",
                    invited_by="office@org-a",
                    created_at=now,
                    expires_at=now + expires_in,
                )
            )
    finally:
        await database.dispose()
    return invitation


async def rows(city: City, query: Any) -> list[Any]:
    """The rows of a query in identity's database."""
    database = connect(city.database)
    try:
        async with database.read() as session:
            return list((await session.execute(query)).all())
    finally:
        await database.dispose()


async def change(city: City, statement: Any) -> None:
    """A change made straight in identity's database (time passing, an office's action)."""
    database = connect(city.database)
    try:
        async with database.write() as session:
            await session.execute(statement)
    finally:
        await database.dispose()


async def start(browser: httpx.AsyncClient, city: City, return_to: str = RETURN_TO) -> str:
    """Identity's login: the provider's authorization URL it sends the browser to."""
    response = await browser.get(f"{city.identity}/v1/oidc/login", params={"return_to": return_to})
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"{city.issuer}/"), location
    return location


async def authorize(browser: httpx.AsyncClient, authorization: str, sub: str) -> str:
    """The person signs in at the provider (its form takes `sub`): the callback URL it sends the
    browser back to."""
    response = await browser.post(authorization, data={"sub": sub})
    assert response.status_code == 302, response.text
    callback = response.headers["location"]
    return str(callback)


async def callback(browser: httpx.AsyncClient, url: str) -> httpx.Response:
    return await browser.get(url)


async def sign_in(
    browser: httpx.AsyncClient, city: City, sub: str, return_to: str = RETURN_TO
) -> httpx.Response:
    """The whole browser side of a login; identity's last answer."""
    authorization = await start(browser, city, return_to)
    return await callback(browser, await authorize(browser, authorization, sub))


def back_at_web(response: httpx.Response) -> dict[str, list[str]]:
    """Where identity sent the browser at the end: the web page asked for, with its own query
    untouched and identity's parameters after it."""
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(RETURN_TO + "&"), location
    return parse_qs(urlsplit(location).query)


def code_of(response: httpx.Response) -> str:
    query = back_at_web(response)
    assert "error" not in query, query
    assert query["state"] == ["web-state-1"]
    assert query["next"] == ["/bookings?week=2"]
    [code] = query["code"]
    return code


def refusal_of(response: httpx.Response) -> str:
    query = back_at_web(response)
    assert "code" not in query, query
    assert query["state"] == ["web-state-1"]
    [error] = query["error"]
    return error


async def exchange(
    browser: httpx.AsyncClient,
    city: City,
    code: str,
    client_id: str = "web",
    secret: str | None = None,
) -> httpx.Response:
    """What the web service does with the code: trade it for tokens with its own credentials."""
    return await browser.post(
        f"{city.identity}/v1/token",
        json={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": client_id,
            "client_secret": secret if secret is not None else TEST_CLIENT_SECRETS[client_id],
        },
    )


def problem_code(response: httpx.Response) -> str:
    code: str = response.json()["code"]
    return code


async def test_an_invited_person_signs_in_through_the_city_provider(
    city: City, browser: httpx.AsyncClient
) -> None:
    email = fresh_address()
    invitation = await invite(city, email)
    sub = f"city-{new_id()}"
    await at_provider(browser, city, sub, email=email.upper(), email_verified=True, name="Wang")

    code = code_of(await sign_in(browser, city, sub))

    tokens = await exchange(browser, city, code)
    assert tokens.status_code == 200, tokens.text
    answer = tokens.json()
    assert answer["refresh_token"]
    assert answer["memberships"] == [{"org": ORG, "role": "venue_manager"}]
    [(user,)] = await rows(city, select(UserRow).where(UserRow.email == email))
    assert user.password_hash is None
    assert user.name == "王老师"  # the invitation's name, before the provider's
    [(link,)] = await rows(
        city, select(ExternalAccountRow).where(ExternalAccountRow.user_id == user.id)
    )
    assert (link.issuer, link.subject) == (city.issuer, sub)
    [(closed,)] = await rows(city, select(InvitationRow).where(InvitationRow.id == invitation))
    assert closed.closed_at is not None
    assert closed.closed_as == "accepted"
    [(membership,)] = await rows(
        city, select(MembershipRow).where(MembershipRow.user_id == user.id)
    )
    assert (membership.org, membership.role) == (ORG, "venue_manager")
    joined = await rows(
        city,
        select(identity_tables.outbox.c.payload).where(
            identity_tables.outbox.c.type == "user.joined"
        ),
    )
    assert [payload for (payload,) in joined if invitation.encode() in payload]

    again = await exchange(browser, city, code)
    assert again.status_code == 401, again.text
    assert problem_code(again) == "invalid_grant"


async def test_the_same_provider_account_signs_in_again_without_an_invitation(
    city: City, browser: httpx.AsyncClient
) -> None:
    email = fresh_address()
    await invite(city, email)
    sub = f"city-{new_id()}"
    await at_provider(browser, city, sub, email=email, email_verified=True)
    first = await exchange(browser, city, code_of(await sign_in(browser, city, sub)))
    assert first.status_code == 200, first.text
    # Linked by issuer and subject, not by address: it may change at the provider meanwhile.
    await at_provider(browser, city, sub, email="moved@elsewhere.test", email_verified=False)

    second = await exchange(browser, city, code_of(await sign_in(browser, city, sub)))

    assert second.status_code == 200, second.text
    assert second.json()["memberships"] == [{"org": ORG, "role": "venue_manager"}]
    users = await rows(city, select(UserRow.id).where(UserRow.email == email))
    assert len(users) == 1


async def test_a_first_login_accepts_every_open_invitation_for_the_address(
    city: City, browser: httpx.AsyncClient
) -> None:
    email = fresh_address()
    await invite(city, email, role="venue_manager")
    await invite(city, email, role="community_manager")
    sub = f"city-{new_id()}"
    await at_provider(browser, city, sub, email=email, email_verified=True)

    tokens = await exchange(browser, city, code_of(await sign_in(browser, city, sub)))

    assert tokens.status_code == 200, tokens.text
    held = {(m["org"], m["role"]) for m in tokens.json()["memberships"]}
    assert held == {(ORG, "venue_manager"), (ORG, "community_manager")}


async def test_a_code_does_not_work_after_60_seconds(
    city: City, browser: httpx.AsyncClient
) -> None:
    email = fresh_address()
    await invite(city, email)
    sub = f"city-{new_id()}"
    await at_provider(browser, city, sub, email=email, email_verified=True)
    code = code_of(await sign_in(browser, city, sub))
    [(user_id,)] = await rows(city, select(UserRow.id).where(UserRow.email == email))
    # The code was issued 61 seconds ago.
    await change(
        city,
        update(AuthorizationCodeRow)
        .where(AuthorizationCodeRow.user_id == user_id)
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)),
    )

    late = await exchange(browser, city, code)

    assert late.status_code == 401, late.text
    assert problem_code(late) == "invalid_grant"


async def test_a_code_is_redeemed_once_and_only_within_60_seconds(served: City) -> None:
    database = connect(served.database)
    now = datetime.now(UTC)
    try:
        async with database.write() as session:
            user = await accounts.create_user(
                session,
                email=fresh_address(),
                name="",
                locale=Locale.ZH_CN,
                password_hash=None,
                now=now,
            )
            on_time = await oidc.issue_code(session, user_id=user.id, now=now)
            late = await oidc.issue_code(session, user_id=user.id, now=now)
        async with database.write() as session:
            at_59 = await oidc.redeem_code(session, on_time, now=now + timedelta(seconds=59))
            twice = await oidc.redeem_code(session, on_time, now=now + timedelta(seconds=59))
            at_60 = await oidc.redeem_code(session, late, now=now + timedelta(seconds=60))
            unknown = await oidc.redeem_code(session, "no-such-code", now=now)
    finally:
        await database.dispose()
    assert (at_59, twice, at_60, unknown) == (user.id, None, None, None)


async def test_a_code_with_another_clients_credentials_is_refused(
    city: City, browser: httpx.AsyncClient
) -> None:
    email = fresh_address()
    await invite(city, email)
    sub = f"city-{new_id()}"
    await at_provider(browser, city, sub, email=email, email_verified=True)
    code = code_of(await sign_in(browser, city, sub))

    as_booking = await exchange(browser, city, code, client_id="booking")
    wrong_secret = await exchange(browser, city, code, secret="not-the-web-secret")

    for refused in (as_booking, wrong_secret):
        assert refused.status_code == 401, refused.text
        assert problem_code(refused) == "invalid_client"
    # Refused before it was looked at: the web service's own exchange still works.
    assert (await exchange(browser, city, code)).status_code == 200


async def test_an_unverified_address_is_not_invited(city: City, browser: httpx.AsyncClient) -> None:
    email = fresh_address()
    invitation = await invite(city, email)
    sub = f"city-{new_id()}"
    await at_provider(browser, city, sub, email=email, email_verified=False)

    assert refusal_of(await sign_in(browser, city, sub)) == "not_invited"

    assert await rows(city, select(UserRow.id).where(UserRow.email == email)) == []
    [(still,)] = await rows(
        city, select(InvitationRow.closed_at).where(InvitationRow.id == invitation)
    )
    assert still is None


async def test_a_verified_address_without_an_invitation_is_not_invited(
    city: City, browser: httpx.AsyncClient
) -> None:
    email = fresh_address()
    await invite(city, email, expires_in=timedelta(seconds=-1))  # expired: not open
    sub = f"city-{new_id()}"
    await at_provider(browser, city, sub, email=email, email_verified=True)

    assert refusal_of(await sign_in(browser, city, sub)) == "not_invited"
    assert await rows(city, select(UserRow.id).where(UserRow.email == email)) == []


async def test_an_existing_account_is_not_taken_over_by_the_address_alone(
    city: City, browser: httpx.AsyncClient
) -> None:
    email = fresh_address()
    database = connect(city.database)
    try:
        async with database.write() as session:
            await accounts.create_user(
                session,
                email=email,
                name="",
                locale=Locale.EN,
                password_hash="argon2-of-something",
                now=datetime.now(UTC),
            )
    finally:
        await database.dispose()
    await invite(city, email)
    sub = f"city-{new_id()}"
    await at_provider(browser, city, sub, email=email, email_verified=True)

    assert refusal_of(await sign_in(browser, city, sub)) == "account_exists"
    links = await rows(
        city, select(ExternalAccountRow.user_id).where(ExternalAccountRow.subject == sub)
    )
    assert links == []


async def test_a_disabled_user_is_refused(city: City, browser: httpx.AsyncClient) -> None:
    email = fresh_address()
    await invite(city, email)
    sub = f"city-{new_id()}"
    await at_provider(browser, city, sub, email=email, email_verified=True)
    code_of(await sign_in(browser, city, sub))
    await change(
        city, update(UserRow).where(UserRow.email == email).values(disabled_at=datetime.now(UTC))
    )

    assert refusal_of(await sign_in(browser, city, sub)) == "account_disabled"


async def test_a_tampered_or_replayed_state_is_refused(
    city: City, browser: httpx.AsyncClient
) -> None:
    email = fresh_address()
    await invite(city, email)
    sub = f"city-{new_id()}"
    await at_provider(browser, city, sub, email=email, email_verified=True)
    genuine = await authorize(browser, await start(browser, city), sub)
    parts = urlsplit(genuine)
    query = parse_qs(parts.query)
    tampered = urlunsplit(
        parts._replace(query=urlencode({"code": query["code"][0], "state": "made-up"}))
    )
    without = urlunsplit(parts._replace(query=urlencode({"code": query["code"][0]})))

    for refused in (await callback(browser, tampered), await callback(browser, without)):
        assert refused.status_code == 400, refused.text
        assert problem_code(refused) == "invalid_state"
    code_of(await callback(browser, genuine))
    replayed = await callback(browser, genuine)
    assert replayed.status_code == 400, replayed.text
    assert problem_code(replayed) == "invalid_state"


async def test_a_state_older_than_ten_minutes_is_refused(
    city: City, browser: httpx.AsyncClient
) -> None:
    email = fresh_address()
    await invite(city, email)
    sub = f"city-{new_id()}"
    await at_provider(browser, city, sub, email=email, email_verified=True)
    back = await authorize(browser, await start(browser, city), sub)
    # Every login still out began 10 minutes ago (other tests' are done by now).
    await change(
        city,
        update(OidcStateRow).values(created_at=datetime.now(UTC) - timedelta(minutes=10)),
    )

    late = await callback(browser, back)

    assert late.status_code == 400, late.text
    assert problem_code(late) == "invalid_state"


@pytest.mark.parametrize(
    "return_to",
    [
        "https://elsewhere.test/auth/city",
        "http://web.commonroom.test/auth/city",  # another scheme
        "https://web.commonroom.test:8443/auth/city",  # another port
        "https://web.commonroom.test.elsewhere.test/",
        "https://elsewhere.test\\@web.commonroom.test/",  # a browser goes to elsewhere.test
        "https://someone@web.commonroom.test/",
        "//elsewhere.test/auth/city",
        "/auth/city",
        "javascript:alert(1)",
        f"{WEB_URL}/auth/city?code=planted",
    ],
)
async def test_return_to_on_another_origin_is_refused(
    city: City, browser: httpx.AsyncClient, return_to: str
) -> None:
    response = await browser.get(f"{city.identity}/v1/oidc/login", params={"return_to": return_to})

    assert response.status_code == 400, response.text
    assert problem_code(response) == "invalid_return_to"


async def test_the_web_origin_with_its_default_port_is_accepted(
    city: City, browser: httpx.AsyncClient
) -> None:
    await start(browser, city, "https://WEB.commonroom.test:443/auth/city")


async def test_an_id_token_for_another_login_is_refused(
    city: City, browser: httpx.AsyncClient
) -> None:
    email = fresh_address()
    invitation = await invite(city, email)
    sub = f"city-{new_id()}"
    await at_provider(browser, city, sub, email=email, email_verified=True)
    authorization = urlsplit(await start(browser, city))
    query = {key: values[0] for key, values in parse_qs(authorization.query).items()}
    # The provider is asked with another nonce than the one identity keeps for this login.
    query["nonce"] = "someone-elses-nonce"
    swapped = urlunsplit(authorization._replace(query=urlencode(query)))

    refused = await callback(browser, await authorize(browser, swapped, sub))

    assert refusal_of(refused) == "invalid_id_token"
    assert await rows(city, select(UserRow.id).where(UserRow.email == email)) == []
    [(still,)] = await rows(
        city, select(InvitationRow.closed_at).where(InvitationRow.id == invitation)
    )
    assert still is None


async def test_a_login_declined_at_the_provider_goes_back_to_the_page(
    city: City, browser: httpx.AsyncClient
) -> None:
    authorization = await start(browser, city)
    declined = await browser.post(authorization, data={"action": "deny"})
    assert declined.status_code == 302, declined.text
    [state] = parse_qs(urlsplit(authorization).query)["state"]
    # This provider leaves `state` out of a refusal (RFC 6749 4.1.2.1 asks for it): as it
    # comes, the callback cannot know where to go; with it, as a faithful provider sends it,
    # the page hears why.
    as_sent = declined.headers["location"]
    with_state = f"{as_sent}&{urlencode({'state': state})}"

    lost = await callback(browser, as_sent)
    assert lost.status_code == 400, lost.text
    assert problem_code(lost) == "invalid_state"
    assert refusal_of(await callback(browser, with_state)) == "access_denied"


async def test_the_login_asks_for_the_code_flow_with_pkce_state_and_nonce(
    city: City, browser: httpx.AsyncClient
) -> None:
    query = parse_qs(urlsplit(await start(browser, city)).query)

    assert query["response_type"] == ["code"]
    assert query["client_id"] == [OIDC_CLIENT_ID]
    assert query["redirect_uri"] == [f"{city.identity}/v1/oidc/callback"]
    assert query["code_challenge_method"] == ["S256"]
    assert set(query["scope"][0].split()) >= {"openid", "email"}
    assert all(len(query[name][0]) >= 43 for name in ("state", "nonce", "code_challenge"))


async def test_without_a_provider_the_routes_say_so(
    identity_db: str, redis_url: str, browser: httpx.AsyncClient
) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    with identity_serving(oidc_settings(redis_url, base, identity_db, issuer=None)):
        login = await browser.get(f"{base}/v1/oidc/login", params={"return_to": RETURN_TO})
        back = await browser.get(f"{base}/v1/oidc/callback", params={"code": "c", "state": "s"})

    for response in (login, back):
        assert response.status_code == 404, response.text
        assert problem_code(response) == "oidc_not_configured"


async def test_a_provider_that_does_not_answer_sends_the_page_back_an_error(
    identity_db: str, redis_url: str, browser: httpx.AsyncClient
) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    gone = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    with identity_serving(oidc_settings(redis_url, base, identity_db, issuer=gone)):
        login = await browser.get(f"{base}/v1/oidc/login", params={"return_to": RETURN_TO})

    assert refusal_of(login) == "oidc_unavailable"
