"""Registry and booking as they run: each API and each worker its own process, real Redis between
them, PostgreSQL under both. Events travel outbox → relay → arq → the other service's consumer."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, time, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import select

from services.registry.store import LiveBookingRow
from services.up import stop_children, wait_ready
from shared.db import connect
from shared.migrations import upgrade
from tests.conftest import (
    Tokens,
    create_postgres_database,
    drop_postgres_database,
    free_port,
    make_settings,
    spawn,
)
from tests.service.conftest import BOOKING, REGISTRY

SHANGHAI_OFFSET = "+08:00"
EVENTUALLY = 20.0  # seconds for an event to cross from one service to the other


class Suite:
    def __init__(self, registry: str, booking: str, tokens: Tokens, registry_db: str) -> None:
        office = tokens("office")
        self.registry_db = registry_db
        self.registry = httpx.AsyncClient(base_url=registry, headers=office, timeout=10)
        self.booking = httpx.AsyncClient(base_url=booking, headers=office, timeout=10)

    async def aclose(self) -> None:
        await self.registry.aclose()
        await self.booking.aclose()


@pytest.fixture
async def suite(postgres_server_url: str, redis_url: str, tokens: Tokens) -> AsyncIterator[Suite]:
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    urls = {
        "registry": await create_postgres_database(postgres_server_url, "suite_registry"),
        "booking": await create_postgres_database(postgres_server_url, "suite_booking"),
    }
    await asyncio.to_thread(upgrade, REGISTRY, urls["registry"])
    await asyncio.to_thread(upgrade, BOOKING, urls["booking"])
    ports = {"registry": free_port(), "booking": free_port()}
    bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    settings = (
        make_settings(redis_url, **urls)
        .with_service_url("registry", bases["registry"])
        .with_service_url("booking", bases["booking"])
    )
    children: list[subprocess.Popen[bytes]] = []
    try:
        for name, port in ports.items():
            children.append(spawn(settings, "serve", name, "--port", str(port)))
            children.append(spawn(settings, "worker", name))
        await asyncio.to_thread(wait_ready, list(bases.values()), children)
        made = Suite(bases["registry"], bases["booking"], tokens, urls["registry"])
        try:
            yield made
        finally:
            await made.aclose()
    finally:
        stop_children(children)
        for url in urls.values():
            await drop_postgres_database(postgres_server_url, url)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + EVENTUALLY
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not within {EVENTUALLY:.0f}s: {what}")
        await asyncio.sleep(0.2)


def hours(until: str) -> dict[str, Any]:
    return {
        "periods": [
            {
                "name": "all year",
                "start_date": "2026-01-01",
                "spans": [{"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "08:00", "end": until}],
            }
        ],
        "public_holidays": "open",
    }


async def test_events_carry_bookings_to_the_registry_and_hours_to_booking(suite: Suite) -> None:
    area = (await suite.registry.post("/v1/areas", json={"name": "城关镇"})).json()["id"]
    venue = (
        await suite.registry.post(
            "/v1/venues",
            json={
                "name": "城关市民学校",
                "kind": "citizen_school",
                "area_id": area,
                "owner_org": "v",
            },
        )
    ).json()["id"]
    await suite.registry.put(f"/v1/venues/{venue}/opening-hours", json=hours("22:00"))
    room = (
        await suite.registry.post(
            f"/v1/venues/{venue}/resources", json={"name": "多功能教室", "type": "room"}
        )
    ).json()["id"]
    day = (datetime.now() + timedelta(days=4)).date()  # noqa: DTZ005 - a local calendar day

    def at(hour: int) -> str:
        return datetime.combine(day, time(hour)).isoformat() + SHANGHAI_OFFSET

    made = await suite.booking.post(
        "/v1/bookings",
        json={
            "resource_ids": [room],
            "start": at(19),
            "end": at(21),
            "purpose": "太极拳",
            "org": "a",
        },
    )
    assert made.status_code == 201, made.text
    booking_id = made.json()["id"]

    # booking.created reaches the registry's worker (watched in its database, since a probe by
    # DELETE would succeed, and delete the room, before the event arrives) ...
    async def tracked() -> bool:
        database = connect(suite.registry_db)
        try:
            async with database.read() as session:
                live = await session.scalar(
                    select(LiveBookingRow.live).where(LiveBookingRow.booking_id == booking_id)
                )
        finally:
            await database.dispose()
        return bool(live)

    await eventually(tracked, "the registry learns of the booking")
    # ... and so the room is in use and cannot be deleted.
    in_use = await suite.registry.delete(f"/v1/resources/{room}")
    assert in_use.status_code == 409
    assert in_use.json()["code"] == "resource_in_use"

    # opening_hours.changed reaches booking: the booking is flagged and the cache dropped.
    await suite.registry.put(f"/v1/venues/{venue}/opening-hours", json=hours("20:00"))

    async def flagged() -> bool:
        response = await suite.booking.get(f"/v1/bookings/{booking_id}")
        return bool(response.json()["outside_opening_hours"])

    await eventually(flagged, "the booking service learns the hours shrank")
    refused = await suite.booking.post(
        "/v1/bookings",
        json={"resource_ids": [room], "start": at(20), "end": at(21), "purpose": "x", "org": "a"},
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "outside_opening_hours"

    # booking.cancelled reaches the registry: the room may go.
    cancelled = await suite.booking.post(f"/v1/bookings/{booking_id}/cancel")
    assert cancelled.json()["status"] == "cancelled"

    async def free_to_delete() -> bool:
        response = await suite.registry.delete(f"/v1/resources/{room}")
        return response.status_code == 204

    await eventually(free_to_delete, "the registry learns of the cancellation")
