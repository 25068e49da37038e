"""The registry down: booking serves what its replica holds, and says `registry_unavailable` for the
rest, until the registry is back."""

from __future__ import annotations

from typing import Any

from tests.conftest import Tokens
from tests.suite.conftest import created
from tests.suite.faults.conftest import (
    PrivateRedis,
    events_settled,
    fault_suite,
    slot,
    venue_with_rooms,
)


def booking(room: str, when: dict[str, str]) -> dict[str, Any]:
    return {"resource_ids": [room], **when, "purpose": "社区合唱排练", "attendees": 20}


async def test_with_the_registry_down_booking_serves_its_replica_and_503s_the_rest(
    postgres_server_url: str, private_redis: PrivateRedis, tokens: Tokens
) -> None:
    async with fault_suite(
        postgres_server_url, private_redis.url, tokens, services=("identity", "registry", "booking")
    ) as suite:
        known, unknown = (await venue_with_rooms(suite, 2)).rooms
        # A catalogue event landing later would rightly make stale what this test relies on.
        await events_settled(suite)
        first = created(await suite.booking.post("/v1/bookings", json=booking(known, slot(1, 9))))
        day = slot(1, 8, minutes=14 * 60)

        await suite.stop("registry", "serve")

        # What booking has asked the registry before still serves: the room, its hours that day.
        second = await suite.booking.post("/v1/bookings", json=booking(known, slot(1, 14)))
        assert second.status_code == 201, second.text
        free = await suite.booking.get(
            f"/v1/resources/{known}/availability", params={"from": day["start"], "to": day["end"]}
        )
        assert free.status_code == 200, free.text
        assert [(i["start"][11:16], i["end"][11:16]) for i in free.json()["items"]] == [
            ("08:00", "09:00"),
            ("10:00", "14:00"),
            ("15:00", "22:00"),
        ]
        clash = await suite.booking.post("/v1/bookings", json=booking(known, slot(1, 14)))
        assert clash.status_code == 409, clash.text  # the rules still hold, from the replica
        assert (await suite.booking.get(f"/v1/bookings/{first['id']}")).status_code == 200

        # What it never asked about is a 503 naming the registry, not a 500 or a wrong answer.
        for response in (
            await suite.booking.post("/v1/bookings", json=booking(unknown, slot(1, 9))),
            await suite.booking.get(
                f"/v1/resources/{unknown}/availability",
                params={"from": day["start"], "to": day["end"]},
            ),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "registry_unavailable"

        await suite.start_and_wait("registry", "serve")
        back = await suite.booking.post("/v1/bookings", json=booking(unknown, slot(1, 9)))
        assert back.status_code == 201, back.text
        assert all(suite.alive()[("booking", role)] for role in ("serve", "worker"))
