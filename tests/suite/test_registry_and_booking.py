"""Registry and booking as they run: each API and each worker its own process, real Redis between
them, PostgreSQL under both. Events travel outbox → relay → arq → the other service's consumer."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from services.registry.store import LiveBookingRow
from shared.db import connect
from tests.suite.conftest import Suite, eventually

SHANGHAI_OFFSET = "+08:00"


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
        database = connect(suite.database_url("registry"))
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

    # opening_hours.changed reaches booking: the booking is flagged and the hours read again.
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
