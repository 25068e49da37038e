"""Redis stopped for half a minute while bookings are made: the bookings all succeed, and their
events reach every consumer once Redis is back, each applied once."""

from __future__ import annotations

import asyncio

from arq.connections import create_pool
from arq.jobs import Job

from shared.events import consumers_of, queue_name
from shared.worker import deserialize, redis_settings, serialize
from tests.conftest import Tokens
from tests.suite.conftest import created
from tests.suite.faults.conftest import (
    PrivateRedis,
    events_settled,
    fault_suite,
    slot,
    venue_with_rooms,
)

OUTAGE_SECONDS = 30.0
PACE_SECONDS = 0.5  # one booking (and every third a cancel) each half second of the outage


async def test_redis_down_for_30_seconds_delays_booking_events_and_loses_none(
    postgres_server_url: str, private_redis: PrivateRedis, tokens: Tokens
) -> None:
    async with fault_suite(postgres_server_url, private_redis.url, tokens) as suite:
        rooms = (await venue_with_rooms(suite, 2)).rooms
        await events_settled(suite)
        # Redis keeps nothing on disk here: what it held when it stopped is gone for good, so the
        # test starts it from a quiet suite, as the outbox (not Redis) is what must keep events.

        await asyncio.to_thread(private_redis.stop)
        loop = asyncio.get_running_loop()
        back_at = loop.time() + OUTAGE_SECONDS
        booked: list[str] = []
        cancelled: list[str] = []
        n = 0
        while loop.time() < back_at:
            room, day, hour = rooms[n % 2], 1 + n // 28, 8 + (n // 2) % 14
            response = await suite.booking.post(
                "/v1/bookings",
                json={"resource_ids": [room], **slot(day, hour), "purpose": "书法班"},
            )
            booking = created(response)
            assert booking["status"] == "confirmed"
            booked.append(booking["id"])
            if n % 3 == 2:
                cancel = await suite.booking.post(f"/v1/bookings/{booking['id']}/cancel", json={})
                assert cancel.status_code == 200, cancel.text
                cancelled.append(booking["id"])
            n += 1
            await asyncio.sleep(max(0.0, min(PACE_SECONDS, back_at - loop.time())))
        assert len(booked) >= OUTAGE_SECONDS / PACE_SECONDS / 2, "too few bookings to prove much"
        await asyncio.to_thread(private_redis.start)
        # The workers ride the outage out: nobody restarts them.
        assert all(suite.alive().values()), suite.alive()

        events = await suite.sql("booking", "SELECT event_id, type FROM outbox ORDER BY seq")
        assert len(events) == len(booked) + len(cancelled)
        await events_settled(suite)
        assert all(suite.alive().values()), suite.alive()

        # Each event was relayed once per consumer, under its one job id, and applied by it.
        redis = await create_pool(
            redis_settings(private_redis.url),
            job_serializer=serialize,
            job_deserializer=deserialize,
        )
        try:
            for event in events:
                assert consumers_of(event.type)
                for consumer in consumers_of(event.type):
                    job = Job(
                        f"{event.event_id}:{consumer}",
                        redis,
                        _queue_name=queue_name(consumer),
                        _deserializer=deserialize,
                    )
                    result = await job.result_info()
                    assert result is not None, (event, consumer)
                    assert (result.success, result.result, result.job_try) == (True, True, 1)
        finally:
            await redis.aclose()
        unsent = await suite.sql(
            "booking", "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL"
        )
        assert unsent[0].n == 0

        # And its effect once: the registry follows each booking exactly, live or ended.
        rows = await suite.sql("registry", "SELECT booking_id, live FROM live_bookings")
        assert sorted((r.booking_id, r.live) for r in rows) == sorted(
            (b, b not in cancelled) for b in booked
        )
        handled = await suite.sql(
            "lecturers", "SELECT event_id FROM handled_events WHERE type = 'booking.cancelled'"
        )
        assert len(handled) == len(cancelled)
