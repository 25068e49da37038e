"""Divisible halls at the registry: `part_of` on create and PATCH, what it refuses, its events."""

from __future__ import annotations

from tests.conftest import Tokens
from tests.service.test_registry import (
    Client,
    assert_problem,
    deliver,
    fields_of,
    make_area,
    make_resource,
    make_venue,
    outbox_events,
    tomorrows_booking,
)


async def _hall_with_halves(registry: Client, tokens: Tokens) -> tuple[str, str, str, str]:
    """A venue's hall and its east and west halves: (venue, hall, east, west)."""
    venue = (await make_venue(registry, tokens, await make_area(registry, tokens)))["id"]
    hall = (await make_resource(registry, tokens, venue, name="礼堂"))["id"]
    east = (await make_resource(registry, tokens, venue, name="礼堂东", part_of=hall))["id"]
    west = (await make_resource(registry, tokens, venue, name="礼堂西", part_of=hall))["id"]
    return venue, hall, east, west


async def test_a_part_names_its_whole_in_its_read_shape_lists_and_events(
    registry: Client, tokens: Tokens
) -> None:
    venue, hall, east, west = await _hall_with_halves(registry, tokens)
    read = await registry.get(f"/v1/resources/{east}", headers=tokens("office"))
    assert read.json()["part_of"] == hall
    listed = await registry.get(f"/v1/resources?venue_id={venue}", headers=tokens("office"))
    assert {item["id"]: item["part_of"] for item in listed.json()["items"]} == {
        hall: None,
        east: hall,
        west: hall,
    }
    whole = await registry.get(f"/v1/resources/{hall}", headers=tokens("office"))
    assert sorted(whole.json()["parts"]) == sorted([east, west])
    assert {item["id"]: sorted(item["parts"]) for item in listed.json()["items"]} == {
        hall: sorted([east, west]),
        east: [],
        west: [],
    }
    created = [event for event in await outbox_events(registry) if event.type == "resource.created"]
    assert [event.data["part_of"] for event in created] == [None, hall, hall]


async def test_part_of_must_name_a_room_of_the_same_venue(registry: Client, tokens: Tokens) -> None:
    area = await make_area(registry, tokens)
    venue = (await make_venue(registry, tokens, area))["id"]
    elsewhere = (await make_venue(registry, tokens, area))["id"]
    other_venues_hall = (await make_resource(registry, tokens, elsewhere))["id"]
    projector = (await make_resource(registry, tokens, venue, type="equipment"))["id"]
    room = (await make_resource(registry, tokens, venue))["id"]
    office = tokens("office")
    for body in (
        {"name": "A", "type": "room", "part_of": other_venues_hall},
        {"name": "A", "type": "room", "part_of": projector},
        {"name": "A", "type": "room", "part_of": "00000000-0000-4000-8000-000000000000"},
        {"name": "A", "type": "equipment", "part_of": room},
    ):
        problem = assert_problem(
            await registry.post(f"/v1/venues/{venue}/resources", json=body, headers=office),
            422,
            "invalid_hierarchy",
        )
        assert fields_of(problem) & {"part_of", "type"}
    # A room with parts cannot become equipment.
    await make_resource(registry, tokens, venue, part_of=room)
    assert_problem(
        await registry.patch(f"/v1/resources/{room}", json={"type": "equipment"}, headers=office),
        422,
        "invalid_hierarchy",
    )


async def test_three_levels_at_most_and_no_cycles(registry: Client, tokens: Tokens) -> None:
    venue, hall, east, _ = await _hall_with_halves(registry, tokens)
    office = tokens("office")
    quarter = (await make_resource(registry, tokens, venue, part_of=east))["id"]
    assert_problem(
        await registry.post(
            f"/v1/venues/{venue}/resources",
            json={"name": "eighth", "type": "room", "part_of": quarter},
            headers=office,
        ),
        422,
        "invalid_hierarchy",
    )
    for resource, whole in ((hall, quarter), (hall, hall), (east, quarter)):
        assert_problem(
            await registry.patch(
                f"/v1/resources/{resource}", json={"part_of": whole}, headers=office
            ),
            422,
            "invalid_hierarchy",
        )
    # A separate hall may not take the whole three-level hall under it: four levels.
    top = (await make_resource(registry, tokens, venue, name="体育馆"))["id"]
    assert_problem(
        await registry.patch(f"/v1/resources/{hall}", json={"part_of": top}, headers=office),
        422,
        "invalid_hierarchy",
    )
    # Nothing was changed by the refusals.
    read = await registry.get(f"/v1/resources/{hall}", headers=office)
    assert read.json()["part_of"] is None


async def test_part_of_moves_freely_without_bookings_and_a_deleted_whole_frees_its_parts(
    registry: Client, tokens: Tokens
) -> None:
    _, hall, east, west = await _hall_with_halves(registry, tokens)
    office = tokens("office")
    moved = await registry.patch(f"/v1/resources/{west}", json={"part_of": None}, headers=office)
    assert moved.status_code == 200, moved.text
    assert moved.json()["part_of"] is None
    updated = (await outbox_events(registry))[-1]
    assert (updated.type, updated.data["id"], updated.data["part_of"]) == (
        "resource.updated",
        west,
        None,
    )
    assert (await registry.delete(f"/v1/resources/{hall}", headers=office)).status_code == 204
    read = await registry.get(f"/v1/resources/{east}", headers=office)
    assert read.json()["part_of"] is None
    assert [event.type for event in await outbox_events(registry)][-2:] == [
        "resource.updated",
        "resource.deleted",
    ]


async def test_part_of_cannot_change_under_bookings_of_the_room_or_its_parts(
    registry: Client, tokens: Tokens
) -> None:
    venue, hall, east, west = await _hall_with_halves(registry, tokens)
    office = tokens("office")
    other = (await make_resource(registry, tokens, venue, name="体育馆"))["id"]
    booking = tomorrows_booking("22222222-2222-2222-2222-222222222222", venue, east, "confirmed")
    await deliver(registry, "booking.created", booking)

    # The booked half itself, and the hall it is part of, are fixed.
    assert_problem(
        await registry.patch(f"/v1/resources/{east}", json={"part_of": None}, headers=office),
        409,
        "resource_in_use",
    )
    assert_problem(
        await registry.patch(f"/v1/resources/{hall}", json={"part_of": other}, headers=office),
        409,
        "resource_in_use",
    )
    # The other half has no bookings of its own or of parts: it may go.
    assert (
        await registry.patch(f"/v1/resources/{west}", json={"part_of": None}, headers=office)
    ).status_code == 200
    # Sending the same whole again is no change, and other fields still change.
    same = await registry.patch(
        f"/v1/resources/{east}", json={"part_of": hall, "name": "东厅"}, headers=office
    )
    assert same.status_code == 200, same.text

    await deliver(registry, "booking.cancelled", booking)
    assert (
        await registry.patch(f"/v1/resources/{east}", json={"part_of": None}, headers=office)
    ).status_code == 200
