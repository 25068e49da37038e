"""Fair use through HTTP: a token's booking rate and an organisation's weekly share of a venue,
both configurable, both 429 with Retry-After and a code; the office is held to neither."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, time, timedelta

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from services.booking import store as booking_store
from services.booking.app import create_app
from services.booking.domain.fair_use import week_of
from shared.ids import new_id
from shared.ratelimit import RateLimit
from tests.conftest import Tokens, as_client, make_settings, wipe
from tests.service.conftest import Town
from tests.service.test_booking import SHANGHAI, assert_problem, booking_body

Client = AsyncTestClient  # type: ignore[type-arg]
RATE = 4
SHARE_HOURS = 3


@pytest.fixture
async def limited(
    booking_db: str, redis_url: str, identity_server: str, registry_server: str
) -> AsyncIterator[Client]:
    await wipe(booking_db, booking_store.Base.metadata)
    settings = replace(
        as_client(
            make_settings(redis_url, identity_url=identity_server, booking=booking_db), "booking"
        ).with_service_url("registry", registry_server),
        booking_rate_per_minute=RATE,
        fair_use_hours_per_week=SHARE_HOURS,
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client


def next_week(day: int, hour: int, minute: int = 0) -> str:
    """A time on a day of next week (0 = Monday), in Shanghai."""
    monday = week_of(datetime.now(SHANGHAI), SHANGHAI).end.date()
    moment = time(hour, minute)
    return datetime.combine(monday + timedelta(days=day), moment, tzinfo=SHANGHAI).isoformat()


async def test_a_token_that_books_too_fast_is_told_to_wait(
    limited: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    # A token of its own: the counter is per token, and other tests share this Redis.
    fast = tokens("community_manager", "org-rate", sub=f"rate-{room}")
    answers = [
        await limited.post(
            "/v1/bookings",
            json=booking_body(room, next_week(n, 8), next_week(n, 8, 30)),
            headers=fast,
        )
        for n in range(RATE + 1)
    ]
    assert [answer.status_code for answer in answers[:RATE]] == [201] * RATE
    refused = assert_problem(answers[RATE], 429, "rate_limited")
    assert 1 <= int(answers[RATE].headers["Retry-After"]) <= 60
    assert "slow down" in refused["detail"]
    # Another token of the same organisation has its own count, and the office has none.
    other = tokens("community_manager", "org-rate", sub=f"other-{room}")
    body = booking_body(room, next_week(6, 20), next_week(6, 21))
    assert (await limited.post("/v1/bookings", json=body, headers=other)).status_code == 201
    office = tokens("office", sub=f"office-{room}")
    for n in range(RATE + 1):
        body = booking_body(room, next_week(5, 8 + n), next_week(5, 9 + n), org="org-rate")
        assert (await limited.post("/v1/bookings", json=body, headers=office)).status_code == 201


async def test_an_organisation_holds_at_most_its_share_of_a_venue_each_week(
    limited: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    manager = tokens("community_manager", "org-share", sub=f"share-{room}")
    first = await limited.post(
        "/v1/bookings", json=booking_body(room, next_week(0, 8), next_week(0, 10)), headers=manager
    )
    assert first.status_code == 201, first.text
    # One more hour fills the share exactly; the next half hour passes it.
    fills = booking_body(room, next_week(2, 8), next_week(2, 9))
    assert (await limited.post("/v1/bookings", json=fills, headers=manager)).status_code == 201
    over = await limited.post(
        "/v1/bookings",
        json=booking_body(room, next_week(4, 8), next_week(4, 8, 30)),
        headers=manager,
    )
    problem = assert_problem(over, 429, "fair_use_exceeded")
    assert int(over.headers["Retry-After"]) > 0
    assert problem["errors"][0]["field"] == "start"
    # A cancelled booking gives its hours back; other organisations have shares of their own.
    cancelled = await limited.post(f"/v1/bookings/{first.json()['id']}/cancel", headers=manager)
    assert cancelled.status_code == 200
    again = booking_body(room, next_week(4, 8), next_week(4, 9))
    assert (await limited.post("/v1/bookings", json=again, headers=manager)).status_code == 201
    neighbour = tokens("community_manager", "org-neighbour", sub=f"neighbour-{room}")
    theirs = booking_body(room, next_week(1, 8), next_week(1, 11))
    assert (await limited.post("/v1/bookings", json=theirs, headers=neighbour)).status_code == 201


async def test_a_series_skips_or_refuses_the_weeks_past_the_share(
    limited: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    manager = tokens("community_manager", "org-series", sub=f"series-{room}")
    held = booking_body(room, next_week(0, 8), next_week(0, 10))
    assert (await limited.post("/v1/bookings", json=held, headers=manager)).status_code == 201
    weekly = booking_body(
        room,
        next_week(1, 18),
        next_week(1, 20),
        series={"rrule": "FREQ=WEEKLY;COUNT=3", "mode": "all_or_nothing"},
    )
    refused = await limited.post("/v1/bookings", json=weekly, headers=manager)
    assert_problem(refused, 429, "fair_use_exceeded")
    weekly["series"]["mode"] = "skip_conflicts"
    made = await limited.post("/v1/bookings", json=weekly, headers=manager)
    assert made.status_code == 201, made.text
    result = made.json()
    assert len(result["bookings"]) == 2  # the first week's share is taken by the 2 h held
    assert [item["code"] for item in result["skipped"]] == ["fair_use_exceeded"]


async def test_replicas_count_a_token_together_and_quiet_callers_never_wait_on_redis(
    redis_url: str,
) -> None:
    redis = Redis.from_url(redis_url)
    try:
        name = f"test-{new_id()}"
        replicas = [RateLimit(redis, name=name, limit=100, per_seconds=60) for _ in range(2)]
        now = 1_800_000_000.0  # the start of a window
        counter = f"commonroom:rate:{name}:token:{int(now // 60)}"
        for _ in range(replicas[0].quiet - 1):
            assert await replicas[0].take("token", now=now) is None
        assert await redis.get(counter) is None  # a tenth of the limit: counted here only
        assert await replicas[0].take("token", now=now) is None
        assert int(await redis.get(counter) or 0) == replicas[0].quiet
        # Both replicas' uses add up; past the limit, the answer says when the window ends.
        answers = [await replicas[n % 2].take("token", now=now + 30) for n in range(2 * 100)]
        refused = [wait for wait in answers if wait is not None]
        assert refused
        assert set(refused) == {30}
        assert answers.index(30) <= 100 - replicas[0].quiet + 2 * replicas[0].quiet
    finally:
        await redis.aclose()


async def test_concurrent_bookings_of_one_organisation_take_its_share_once(
    limited: Client, town: Town, tokens: Tokens
) -> None:
    """Six one-hour bookings of one organisation at one venue, all at once, each from a token of
    its own (so the rate limit stays out of it) and in a room of its own: the database lets
    exactly the share's three hours through, however the requests interleave."""
    venue = await town.venue()
    rooms = [await town.room(venue) for _ in range(6)]

    async def one(n: int, room: str) -> int:
        manager = tokens("community_manager", "org-race", sub=f"race-{n}-{room}")
        body = booking_body(room, next_week(2, 8 + n), next_week(2, 9 + n))
        return (await limited.post("/v1/bookings", json=body, headers=manager)).status_code

    answers = await asyncio.gather(*(one(n, room) for n, room in enumerate(rooms)))
    assert sorted(answers) == [201, 201, 201, 429, 429, 429], answers
