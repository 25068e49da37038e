"""PostgreSQL restarted under load: the services ride it out without a restart of their own;
clients see at most 503 `database_unavailable` meanwhile, never a 500, and every booking
confirmed to a client is there afterwards."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
from arq.connections import create_pool
from arq.jobs import Job

from shared.events import queue_name
from shared.worker import deserialize, redis_settings, serialize
from tests.conftest import Tokens
from tests.suite.conftest import created
from tests.suite.faults.conftest import (
    PrivatePostgres,
    PrivateRedis,
    events_settled,
    fault_suite,
    slot,
    until,
    venue_with_rooms,
)

CLIENTS = 6
OUTAGE_SECONDS = 3.0  # the server down, between an immediate stop (a crash) and its start
AFTER = 3  # bookings each client must have confirmed after the restart


async def test_postgres_restart_under_load_costs_503s_at_most_and_loses_no_booking(
    private_postgres: PrivatePostgres, private_redis: PrivateRedis, tokens: Tokens
) -> None:
    async with fault_suite(private_postgres.url, private_redis.url, tokens) as suite:
        place = await venue_with_rooms(suite, CLIENTS)
        await events_settled(suite)
        pids = {key: process.pid for key, process in suite.processes.items()}
        answers: Counter[tuple[str, int, str]] = Counter()
        confirmed: dict[str, dict[str, Any]] = {}
        per_client = [0] * CLIENTS
        restarted = asyncio.Event()
        after = [0] * CLIENTS
        stop = asyncio.Event()

        def record(service: str, response: httpx.Response) -> bool:
            """Count the answer; True when it is the outage's one allowed refusal."""
            code = response.json().get("code", "") if response.status_code >= 400 else ""
            answers[(service, response.status_code, code)] += 1
            return (response.status_code, code) == (503, "database_unavailable")

        async def client(n: int) -> None:
            room, k = place.rooms[n], 0
            while not stop.is_set():
                body = {"resource_ids": [room], **slot(1 + k // 14, 8 + k % 14), "purpose": "太极"}
                # One Idempotency-Key per booking, sent again after a 503 until answered: the
                # booking is made once whichever attempt the database took.
                key = f"load-{n}-{k}"
                while True:
                    response = await suite.booking.post(
                        "/v1/bookings", json=body, headers={"Idempotency-Key": key}
                    )
                    if not record("booking", response):
                        break
                    await asyncio.sleep(0.1)
                if response.status_code == 201:
                    confirmed[response.json()["id"]] = response.json()
                    per_client[n] += 1
                    after[n] += restarted.is_set()
                record("registry", await suite.registry.get(f"/v1/venues/{place.venue}"))
                record("lecturers", await suite.lecturers.get("/v1/lecturers"))
                k += 1

        async def each(counts: list[int], at_least: int) -> bool:
            return min(counts) >= at_least

        load = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
        try:
            await until(lambda: each(per_client, 2), "every client books under load", within=30)
            await asyncio.to_thread(private_postgres.stop, "immediate")
            await asyncio.sleep(OUTAGE_SECONDS)  # the fault itself: requests keep coming
            await asyncio.to_thread(private_postgres.start)
            restarted.set()
            await until(lambda: each(after, AFTER), "every client books again", within=40)
        finally:
            stop.set()
            await asyncio.gather(*load)

        allowed = {(200, ""), (201, ""), (503, "database_unavailable")}
        unexpected = {k: v for k, v in answers.items() if (k[1], k[2]) not in allowed}
        assert unexpected == {}, answers
        assert answers[("booking", 503, "database_unavailable")] > 0, "the outage was not felt"
        # Nobody restarted the services: the same processes answer, all of them.
        assert {key: process.pid for key, process in suite.processes.items()} == pids
        assert all(suite.alive().values()), suite.alive()
        for service in suite.services:
            ready = await getattr(suite, service).get("/health/ready")
            assert ready.status_code == 200, ready.text
        # Every booking confirmed to a client is there, confirmed, as it was told.
        for booking_id, told in confirmed.items():
            found = await suite.booking.get(f"/v1/bookings/{booking_id}")
            assert found.status_code == 200, found.text
            assert (found.json()["status"], found.json()["start"]) == ("confirmed", told["start"])
        rows = await suite.sql("booking", "SELECT id FROM bookings")
        assert {row.id for row in rows} == set(confirmed)


async def test_events_queued_while_postgres_is_down_are_handled_once_it_is_back(
    private_postgres: PrivatePostgres, private_redis: PrivateRedis, tokens: Tokens
) -> None:
    async with fault_suite(
        private_postgres.url,
        private_redis.url,
        tokens,
        services=("identity", "registry", "booking"),
    ) as suite:
        room = (await venue_with_rooms(suite, 1)).rooms[0]
        await events_settled(suite)
        # Bookings whose events wait on the registry's queue, its worker stopped for now.
        await suite.stop("registry", "worker")
        for hour in (9, 11, 13):
            body = {"resource_ids": [room], **slot(1, hour), "purpose": "合唱"}
            created(await suite.booking.post("/v1/bookings", json=body))

        async def relayed() -> bool:
            rows = await suite.sql(
                "booking", "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL"
            )
            return bool(rows[0].n == 0)

        await until(relayed, "booking relays its events", within=20)
        events = await suite.sql("booking", "SELECT event_id FROM outbox")
        jobs = [f"{row.event_id}:registry" for row in events]

        # The database goes down; the registry's worker comes back and meets it down.
        await asyncio.to_thread(private_postgres.stop, "fast")
        suite.start("registry", "worker")
        redis = await create_pool(
            redis_settings(private_redis.url),
            job_serializer=serialize,
            job_deserializer=deserialize,
        )
        try:

            async def all_tried() -> bool:
                # A job started keeps a try count while it may run again, a result once it won't.
                return all(
                    [await redis.exists(f"arq:retry:{job}", f"arq:result:{job}") for job in jobs]
                )

            await until(all_tried, "the registry's worker tries every queued event", within=20)
            await asyncio.to_thread(private_postgres.start)

            async def handled_or_lost() -> bool:
                rows = await suite.sql("registry", "SELECT event_id FROM handled_events")
                handled = {f"{row.event_id}:registry" for row in rows}
                for job in jobs:
                    info = await Job(
                        job, redis, _queue_name=queue_name("registry"), _deserializer=deserialize
                    ).result_info()
                    if info is not None and not info.success:
                        return True  # given up for good: it will never be handled now
                return handled >= set(jobs)

            await until(handled_or_lost, "the queued events are handled, or given up", within=30)
            results = [
                await Job(
                    job, redis, _queue_name=queue_name("registry"), _deserializer=deserialize
                ).result_info()
                for job in jobs
            ]
        finally:
            await redis.aclose()
        assert [(r.success, r.result) if r else None for r in results] == [(True, True)] * len(jobs)
        tracked = await suite.sql("registry", "SELECT booking_id FROM live_bookings WHERE live")
        assert len(tracked) == len(jobs)
        assert all(suite.alive().values()), suite.alive()
