"""Tokens across the running suite: only identity's verify, revocation reaches every service
within a minute without a call per request, and a key rotation costs no valid token a 401."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.identity.cli import add_user, membership_of, rotate_keys
from services.identity.domain.keys import file_key
from tests.conftest import TEST_CLIENT_SECRETS, TEST_ISSUER, Tokens, bearer
from tests.suite.conftest import Suite, running_suite

PASSWORD = "a long enough passphrase"
# Where each service answers any valid token (so 401 can only mean the token).
PROBES = {
    "identity": "/v1/me",
    "registry": "/v1/areas",
    "booking": "/v1/bookings",
    "lecturers": "/v1/offers",
}
REVOCATION_REACHES_EVERYONE = 60.0


def _unsigned(claims: dict[str, Any]) -> str:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode())
    return f"{header.decode().rstrip('=')}.{payload.decode().rstrip('=')}."


async def _probe(suite: Suite, service: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=suite.settings.service_url(service)) as client:  # type: ignore[arg-type]
        return await client.get(PROBES[service], headers=bearer(token))


async def test_a_forged_unsigned_expired_or_foreign_token_is_401_on_every_service(
    suite: Suite, tokens: Tokens
) -> None:
    now = datetime.now(UTC)
    good = jwt.decode(tokens.token("office", "city"), options={"verify_signature": False})
    stranger = file_key(Ed25519PrivateKey.generate())
    async with httpx.AsyncClient(base_url=suite.settings.service_url("identity")) as identity:
        jwks = (await identity.get("/.well-known/jwks.json")).json()
    published = jwks["keys"][0]
    bad = {
        "alg none": _unsigned(good),
        "HS256 with a guessed secret": jwt.encode(good, "s" * 48, algorithm="HS256"),
        "HS256 with the public key": jwt.encode(
            good, published["x"], algorithm="HS256", headers={"kid": published["kid"]}
        ),
        "another key, unknown kid": tokens.__class__(stranger, TEST_ISSUER).token("office"),
        "another key, identity's kid": jwt.encode(
            good, stranger.private, algorithm="EdDSA", headers={"kid": published["kid"]}
        ),
        "expired": tokens.token("office", now=now - timedelta(hours=2)),
        "wrong issuer": Tokens(tokens.key, "https://elsewhere.example").token("office"),
        "garbage": "not.a.token",
    }
    for service in PROBES:
        for what, token in bad.items():
            answer = await _probe(suite, service, token)
            assert answer.status_code == 401, (service, what, answer.text)
            assert answer.json()["code"] == "unauthenticated", (service, what)


async def _sign_in(suite: Suite, email: str) -> dict[str, Any]:
    await add_user(
        suite.settings,
        email=email,
        password=PASSWORD,
        membership=membership_of("community_manager", "centre-a", None),
    )
    async with httpx.AsyncClient(base_url=suite.settings.service_url("identity")) as identity:
        answer = await identity.post(
            "/v1/token", json={"grant_type": "password", "username": email, "password": PASSWORD}
        )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _refused_everywhere(suite: Suite, token: str) -> float:
    """Seconds until every service refuses `token`."""
    started = time.monotonic()
    waiting = set(PROBES)
    while waiting:
        for service in list(waiting):
            if (await _probe(suite, service, token)).status_code == 401:
                waiting.discard(service)
        if time.monotonic() - started > REVOCATION_REACHES_EVERYONE:
            pytest.fail(f"still accepted after a minute by {sorted(waiting)}")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def test_a_logout_ends_the_login_on_every_service_within_a_minute(suite: Suite) -> None:
    signed_in = await _sign_in(suite, "teacher@example.org")
    access = signed_in["access_token"]
    for service in PROBES:
        # Accepted (a community manager may still be refused a lecturer's list: 403, not 401).
        assert (await _probe(suite, service, access)).status_code in (200, 403), service
    async with httpx.AsyncClient(base_url=suite.settings.service_url("identity")) as identity:
        out = await identity.post("/v1/logout", json={"refresh_token": signed_in["refresh_token"]})
        assert out.status_code == 204, out.text
        again = await identity.post(
            "/v1/token",
            json={"grant_type": "refresh_token", "refresh_token": signed_in["refresh_token"]},
        )
    assert again.status_code == 401
    assert await _refused_everywhere(suite, access) < REVOCATION_REACHES_EVERYONE


async def test_a_replayed_refresh_token_ends_the_whole_login(suite: Suite) -> None:
    signed_in = await _sign_in(suite, "replay@example.org")
    identity_url = suite.settings.service_url("identity")
    async with httpx.AsyncClient(base_url=identity_url) as identity:

        async def refresh(token: str) -> httpx.Response:
            return await identity.post(
                "/v1/token", json={"grant_type": "refresh_token", "refresh_token": token}
            )

        first = signed_in["refresh_token"]
        # Two tabs at once: the same successor, no revocation.
        tab_one, tab_two = await asyncio.gather(refresh(first), refresh(first))
        assert tab_one.status_code == tab_two.status_code == 200, (tab_one.text, tab_two.text)
        successor = tab_one.json()["refresh_token"]
        assert tab_two.json()["refresh_token"] == successor
        assert (await refresh(successor)).status_code == 200
    # (A replay after the 30 s grace revokes the login: tests/service/test_identity.py.)


@pytest.fixture
async def quick_rotation_suite(
    postgres_server_url: str, redis_url: str, tokens: Tokens
) -> AsyncIterator[Suite]:
    """The suite with verifiers that keep identity's key set 2 s, so a rotation takes seconds."""
    async with running_suite(postgres_server_url, redis_url, tokens, jwks_max_age_seconds=2.0) as s:
        yield s


async def test_a_key_rotation_under_load_costs_no_valid_token_a_401(
    quick_rotation_suite: Suite,
) -> None:
    suite = quick_rotation_suite
    identity_url = suite.settings.service_url("identity")
    statuses: Counter[int] = Counter()
    kids: set[str] = set()
    tokens_seen: list[str] = []

    async def service_token(http: httpx.AsyncClient) -> str:
        answer = await http.post(
            "/v1/token",
            json={
                "grant_type": "client_credentials",
                "client_id": "booking",
                "client_secret": TEST_CLIENT_SECRETS["booking"],
            },
        )
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        kids.add(jwt.get_unverified_header(token)["kid"])
        return token

    async def load(until: float) -> None:
        async with httpx.AsyncClient(base_url=identity_url, timeout=30) as http:
            while time.monotonic() < until:
                fresh = await service_token(http)
                tokens_seen.append(fresh)
                # A fresh token and one from the start (signed by the old key) both work.
                for token in (fresh, tokens_seen[0]):
                    for service in ("registry", "booking", "lecturers"):
                        statuses[(await _probe(suite, service, token)).status_code] += 1

    until = time.monotonic() + 25
    loaders = [asyncio.create_task(load(until)) for _ in range(4)]
    await asyncio.sleep(2)
    new_key = await asyncio.to_thread(rotate_keys, suite.settings)
    await asyncio.gather(*loaders)
    assert statuses[401] == 0, statuses
    assert set(statuses) == {200}, statuses
    assert new_key.kid in kids, "the new key never signed: the run was too short"
    assert len(kids) == 2
