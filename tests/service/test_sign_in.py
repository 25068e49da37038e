"""Signing in at identity: the token endpoint's grants, its refusals, and the published keys."""

from __future__ import annotations

import statistics
import time
from typing import Any

import jwt
from redis.asyncio import Redis
from sqlalchemy import update

from services.identity.domain.keys import file_key, private_key_from_pem
from services.identity.store.rows import UserRow
from tests.conftest import TEST_CLIENT_SECRETS, TEST_KEY_FILE, bearer, database_of
from tests.service.test_identity import PASSWORD, Client, add, sign_in
from tests.service.test_registry import assert_problem


async def password_grant(identity: Client, username: str, password: str, **more: Any) -> Any:
    return await identity.post(
        "/v1/token",
        json={"grant_type": "password", "username": username, "password": password, **more},
    )


async def forget_failures(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        keys = await redis.keys("commonroom:identity:failures:*")
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def test_a_sign_in_answers_a_short_lived_token_a_refresh_token_and_the_memberships(
    identity: Client, redis_url: str
) -> None:
    await forget_failures(redis_url)
    user = await add(identity, "teacher@example.org", "venue_manager", "school-a")
    await add(identity, "teacher@example.org", "lecturer", "corps", lecturer_id="l-1")
    answer = await sign_in(identity, "  Teacher@Example.org ")
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 15 * 60
    assert answer["refresh_token"]
    assert {(m["org"], m["role"]) for m in answer["memberships"]} == {
        ("school-a", "venue_manager"),
        ("corps", "lecturer"),
    }
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["role"], claims["org"]) == (user, "venue_manager", "school-a")
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert claims["sid"]
    assert claims["jti"]
    # The other membership, picked at sign-in; one the user does not hold is 403.
    lecturing = await sign_in(identity, "teacher@example.org", role="lecturer")
    claims = jwt.decode(lecturing["access_token"], options={"verify_signature": False})
    assert (claims["role"], claims["lecturer_id"]) == ("lecturer", "l-1")
    held_not = await password_grant(identity, "teacher@example.org", PASSWORD, org="school-b")
    assert_problem(held_not, 403, "forbidden")


async def test_a_refresh_may_switch_to_another_membership_the_user_holds(
    identity: Client, redis_url: str
) -> None:
    await forget_failures(redis_url)
    await add(identity, "both@example.org", "venue_manager", "school-a")
    await add(identity, "both@example.org", "lecturer", "corps", lecturer_id="l-2")
    first = await sign_in(identity, "both@example.org")
    switched = await identity.post(
        "/v1/token",
        json={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "role": "lecturer",
        },
    )
    assert switched.status_code == 200, switched.text
    claims = jwt.decode(switched.json()["access_token"], options={"verify_signature": False})
    assert claims["role"] == "lecturer"
    assert (
        claims["sid"]
        == jwt.decode(first["access_token"], options={"verify_signature": False})["sid"]
    )


async def test_unknown_wrong_disabled_and_city_only_accounts_are_refused_alike(
    identity: Client, redis_url: str
) -> None:
    await forget_failures(redis_url)
    await add(identity, "known@example.org")
    await add(identity, "city-only@example.org", password=None)
    gone = await add(identity, "disabled@example.org")
    async with database_of(identity, "identity") as database, database.write() as session:
        await session.execute(
            update(UserRow).where(UserRow.id == gone).values(disabled_at=UserRow.created_at)
        )
    attempts = {
        "unknown user": ("nobody@example.org", PASSWORD),
        "wrong password": ("known@example.org", "not the password at all"),
        "disabled user": ("disabled@example.org", PASSWORD),
        "city login only": ("city-only@example.org", PASSWORD),
    }
    timings: dict[str, list[float]] = {what: [] for what in attempts}
    answers = set()
    for _ in range(3):
        for what, (username, password) in attempts.items():
            started = time.perf_counter()
            refused = await password_grant(identity, username, password)
            timings[what].append(time.perf_counter() - started)
            assert_problem(refused, 401, "invalid_credentials")
            answers.add(refused.json()["detail"])
    assert len(answers) == 1, answers
    # Each refusal hashed a password: none answers markedly faster than the others.
    medians = [statistics.median(times) for times in timings.values()]
    assert min(medians) > 0.4 * max(medians), timings


async def test_ten_failures_lock_an_account_name_for_a_while_whether_it_exists_or_not(
    identity: Client, redis_url: str
) -> None:
    await forget_failures(redis_url)
    await add(identity, "target@example.org")
    for username in ("target@example.org", "ghost@example.org"):
        for _ in range(10):
            refused = await password_grant(identity, username, "wrong guess number x")
            assert_problem(refused, 401, "invalid_credentials")
        locked = await password_grant(identity, username, PASSWORD)
        assert_problem(locked, 429, "too_many_attempts")
        assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
    # Another account is not locked by them.
    await add(identity, "bystander@example.org")
    assert (await password_grant(identity, "bystander@example.org", PASSWORD)).status_code == 200
    await forget_failures(redis_url)


async def test_the_token_endpoint_takes_a_form_as_oauth_clients_send_it(
    identity: Client, redis_url: str
) -> None:
    await forget_failures(redis_url)
    await add(identity, "form@example.org")
    answer = await identity.post(
        "/v1/token",
        content="grant_type=password&username=form%40example.org&password=a+long+enough+passphrase",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200, answer.text


async def test_bad_grants_are_clean_refusals(identity: Client) -> None:
    for body in (
        {"grant_type": "magic"},
        {"grant_type": "password", "username": "x@example.org"},
        {"username": "x@example.org", "password": "y"},
        [],
        {"grant_type": "password", "username": "x@example.org", "password": "p" * 10_000},
    ):
        refused = await identity.post("/v1/token", json=body)
        assert refused.status_code in (400, 422), (body, refused.text)
        assert refused.json()["code"] == "invalid_request"
    junk = await identity.post(
        "/v1/token", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert junk.status_code in (400, 422)


async def test_a_service_gets_a_narrow_token_with_its_own_secret_only(identity: Client) -> None:
    def grant(client_id: str, secret: str) -> dict[str, str]:
        return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}

    answer = await identity.post("/v1/token", json=grant("booking", TEST_CLIENT_SECRETS["booking"]))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "refresh_token" not in body
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert (claims["sub"], claims["role"]) == ("booking", "service")
    # Another service's secret, a wrong one, an unknown client: the same refusal.
    for client_id, secret in (
        ("booking", TEST_CLIENT_SECRETS["registry"]),
        ("booking", "x" * 48),
        ("mallory", TEST_CLIENT_SECRETS["booking"]),
    ):
        refused = await identity.post("/v1/token", json=grant(client_id, secret))
        assert_problem(refused, 401, "invalid_client")
    # The service token reads, but makes no account.
    service = bearer(body["access_token"])
    assert (await identity.get("/v1/users", headers=service)).status_code == 200
    made = await identity.post(
        "/v1/orgs", json={"id": "evil", "name": "evil", "kind": "office"}, headers=service
    )
    assert_problem(made, 403, "forbidden")


async def test_the_published_keys_name_the_signing_key_by_its_thumbprint(
    identity: Client,
) -> None:
    published = await identity.get("/.well-known/jwks.json")
    assert published.status_code == 200
    (key,) = published.json()["keys"]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert key["kid"] == file_key(private_key_from_pem(TEST_KEY_FILE.read_bytes())).kid
    assert "d" not in key  # the private part never leaves identity
