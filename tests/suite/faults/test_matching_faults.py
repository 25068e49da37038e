"""A matching run cut short: its worker killed in the middle of holding rooms, or the booking
service gone while it holds them. Either way the run is finished by a later attempt, each
session held once, and no booking is left held for nothing.

The lecturer processes reach booking through a `HoldingProxy`, which lets the holds through to
booking but keeps their answers back: the rooms are held there, the worker does not know their
booking ids yet, and it waits. That is the middle of the job, caught every time.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from arq.connections import ArqRedis, create_pool
from arq.jobs import Job

from shared.events import queue_name
from shared.time import next_month
from shared.worker import deserialize, redis_settings, serialize
from tests.conftest import Tokens
from tests.suite.conftest import EVENINGS, created
from tests.suite.faults.conftest import (
    FaultSuite,
    HoldingProxy,
    PrivateRedis,
    events_settled,
    fault_suite,
    until,
    venue_with_rooms,
)

SESSIONS = 2


@asynccontextmanager
async def suite_behind_proxy(
    postgres_server_url: str, redis: PrivateRedis, tokens: Tokens
) -> AsyncIterator[tuple[FaultSuite, HoldingProxy]]:
    proxy = HoldingProxy(upstream_port=0)

    async def through_proxy(booking_port: int) -> str:
        proxy.upstream_port = booking_port
        await proxy.start()
        return proxy.url

    try:
        # A generous client timeout: the held answers must not time out before the fault does.
        async with fault_suite(
            postgres_server_url,
            redis.url,
            tokens,
            booking_for_lecturers=through_proxy,
            http_timeout_seconds=60.0,
        ) as suite:
            yield suite, proxy
    finally:
        await proxy.aclose()


async def month_of_lectures(suite: FaultSuite) -> tuple[str, str, str]:
    """A school with one room, a lecturer, and a request for two lectures next month: the
    request's id, the room's, and the month."""
    place = await venue_with_rooms(suite, 1)
    created(
        await suite.lecturers.post(
            "/v1/lecturers",
            json={
                "name": "王老师",
                "topics": ["law"],
                "area_id": place.area,
                "availability": EVENINGS,
            },
        )
    )
    month = f"{next_month(datetime.now(UTC).date()):%Y-%m}"
    request = created(
        await suite.lecturers.post(
            "/v1/requests",
            json={
                "venue_id": place.venue,
                "topic": "law",
                "programme": "citizen",
                "month": month,
                "sessions": SESSIONS,
                "attendees": 30,
            },
        )
    )["id"]
    await events_settled(suite)
    return request, place.rooms[0], month


async def pending_bookings(suite: FaultSuite, room: str) -> set[str]:
    response = await suite.booking.get(
        "/v1/bookings", params={"resource_id": room, "status": "pending", "limit": 500}
    )
    assert response.status_code == 200, response.text
    return {booking["id"] for booking in response.json()["items"]}


async def start_run_caught_holding(
    suite: FaultSuite, proxy: HoldingProxy, room: str, month: str
) -> str:
    """Start a run and wait until both its rooms are held at booking, the answers kept back."""
    run_id = str(
        created(await suite.lecturers.post("/v1/matching/runs", json={"month": month}))["run_id"]
    )

    async def both_held() -> bool:
        return proxy.held >= SESSIONS and len(await pending_bookings(suite, room)) == SESSIONS

    await until(both_held, "the run holds both rooms at booking", within=30)
    journal = await suite.sql(
        "lecturers", "SELECT status, booking_id FROM offers WHERE run_id = :run", run=run_id
    )
    assert [(row.status, row.booking_id) for row in journal] == [("holding", None)] * SESSIONS
    assert (await run_of(suite, run_id))["status"] == "running"
    return run_id


async def run_of(suite: FaultSuite, run_id: str) -> dict[str, Any]:
    response = await suite.lecturers.get(f"/v1/matching/runs/{run_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def finished(suite: FaultSuite, run_id: str, *, within: float) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def over() -> bool:
        found.update(await run_of(suite, run_id))
        return found["status"] in ("done", "failed")

    await until(over, "the matching run finishes", within=within)
    return found


async def assert_each_session_held_once(
    suite: FaultSuite, run: dict[str, Any], request: str, room: str
) -> None:
    """Done, both sessions offered, each offer's booking held once, and nothing else held."""
    assert run["status"] == "done", run
    assert run["failure"] is None
    assert sorted(a["session_index"] for a in run["assignments"]) == list(range(SESSIONS))
    offers = [
        offer
        for offer in (await suite.lecturers.get("/v1/offers", params={"limit": 500})).json()[
            "items"
        ]
        if offer["request_id"] == request
    ]
    assert [offer["status"] for offer in offers] == ["offered"] * SESSIONS
    assert {offer["booking_id"] for offer in offers} == await pending_bookings(suite, room)
    journal = await suite.sql(
        "lecturers", "SELECT status FROM offers WHERE run_id = :run", run=run["id"]
    )
    assert sorted(row.status for row in journal) == ["offered"] * SESSIONS


async def queue(redis: PrivateRedis) -> ArqRedis:
    return await create_pool(
        redis_settings(redis.url), job_serializer=serialize, job_deserializer=deserialize
    )


async def test_a_worker_killed_mid_run_is_finished_by_the_next_holding_each_room_once(
    postgres_server_url: str, private_redis: PrivateRedis, tokens: Tokens
) -> None:
    async with suite_behind_proxy(postgres_server_url, private_redis, tokens) as (suite, proxy):
        request, room, month = await month_of_lectures(suite)
        run_id = await start_run_caught_holding(suite, proxy, room, month)
        held_before = await pending_bookings(suite, room)

        await suite.stop("lecturers", "worker", sig=signal.SIGKILL)

        redis = await queue(private_redis)
        try:
            # arq leaves a killed job's lease, and the run keeps its month's lock, until they
            # time out (LOCK_SECONDS, plus 10 s for the lease): expiring both now stands in for
            # that wait. That both exist shows the job was caught running.
            assert await redis.pexpire(f"arq:in-progress:match:{run_id}", 1)
            assert await redis.pexpire(f"commonroom:lecturers:matching:{month}", 1)
            proxy.holding = False
            await suite.start_and_wait("lecturers", "worker")
            run = await finished(suite, run_id, within=30)
            result = await Job(
                f"match:{run_id}",
                redis,
                _queue_name=queue_name("lecturers"),
                _deserializer=deserialize,
            ).result_info()
        finally:
            await redis.aclose()
        assert result is not None
        assert (result.success, result.job_try) == (True, 2)  # the job ran again, and once more
        await assert_each_session_held_once(suite, run, request, room)
        # The second attempt found the holds the first had made (same Idempotency-Key): no
        # room was held twice, none given back and taken again.
        assert await pending_bookings(suite, room) == held_before


async def test_booking_down_mid_run_the_run_retries_and_leaves_no_hold_behind(
    postgres_server_url: str, private_redis: PrivateRedis, tokens: Tokens
) -> None:
    async with suite_behind_proxy(postgres_server_url, private_redis, tokens) as (suite, proxy):
        request, room, month = await month_of_lectures(suite)
        run_id = await start_run_caught_holding(suite, proxy, room, month)
        held_before = await pending_bookings(suite, room)

        await suite.stop("booking", "serve", sig=signal.SIGKILL)

        redis = await queue(private_redis)
        try:
            lease = f"arq:in-progress:match:{run_id}"
            assert await redis.exists(lease)

            async def attempt_given_up() -> bool:
                return not await redis.exists(lease)

            # The attempt ends (booking_unavailable: a Retry, deferred) and leaves the run
            # running, its two holds journalled, for the next attempt to settle.
            await until(attempt_given_up, "the run's attempt gives up on booking", within=30)
        finally:
            await redis.aclose()
        run = await run_of(suite, run_id)
        assert (run["status"], run["failure"]) == ("running", None)
        journal = await suite.sql(
            "lecturers", "SELECT status FROM offers WHERE run_id = :run", run=run_id
        )
        assert [row.status for row in journal] == ["holding"] * SESSIONS

        proxy.holding = False
        await suite.start_and_wait("booking", "serve")
        run = await finished(suite, run_id, within=40)
        await assert_each_session_held_once(suite, run, request, room)
        assert await pending_bookings(suite, room) == held_before
