"""Divisible halls at the booking service, on SQLite and PostgreSQL, with a real registry: a hall
and its halves exclude each other under any concurrency, with the largest buffer on the path;
availability shows what the other takes; the reports count a hall's booking once."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from services.booking import store
from services.booking.domain.halls import Reach
from tests.conftest import Tokens, database_of
from tests.service.conftest import Town, registry_event_handled
from tests.service.test_booking import Client, assert_problem, at, book, booking_body
from tests.service.test_reports import EVE, City, report, rows_by_key
from tests.service.test_reports import at as on
from tests.service.test_reports import book as book_confirmed


async def _hall(town: Town, **buffers: int) -> dict[str, str]:
    """A venue's hall with an east and a west half, and a quarter of the east half; `buffers`
    by those names (minutes, 0 unless given)."""
    venue = await town.venue()

    async def room(name: str, part_of: str | None = None) -> str:
        rules = {"buffer_minutes": buffers.get(name, 0)}
        return await town.room(venue, name=name, rules=rules, part_of=part_of)

    hall = await room("hall")
    east = await room("east", hall)
    west = await room("west", hall)
    quarter = await room("quarter", east)
    return {"venue": venue, "hall": hall, "east": east, "west": west, "quarter": quarter}


async def must_book(booking: Client, tokens: Tokens, room: str, start: str, end: str) -> None:
    answer = await book(booking, tokens, booking_body(room, start, end))
    assert answer.status_code == 201, answer.text


async def test_a_hall_and_its_parts_exclude_each_other_and_siblings_do_not(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    rooms = await _hall(town)
    east = await book(booking, tokens, booking_body(rooms["east"], at(10), at(12)))
    assert east.status_code == 201, east.text
    # The whole, and a part of the booked half, are taken; the other half is not.
    for taken in ("hall", "quarter"):
        problem = assert_problem(
            await book(booking, tokens, booking_body(rooms[taken], at(11), at(13))), 409, "conflict"
        )
        assert east.json()["id"] in str(problem["errors"])
    west = await book(booking, tokens, booking_body(rooms["west"], at(10), at(12)))
    assert west.status_code == 201, west.text
    # Free again once both halves are cancelled: the whole hall, then not its quarter.
    for made in (east, west):
        cancelled = await booking.post(
            f"/v1/bookings/{made.json()['id']}/cancel", headers=tokens("community_manager")
        )
        assert cancelled.status_code == 200, cancelled.text
    hall = await book(booking, tokens, booking_body(rooms["hall"], at(10), at(12)))
    assert hall.status_code == 201, hall.text
    assert_problem(
        await book(booking, tokens, booking_body(rooms["quarter"], at(11), at(12))), 409, "conflict"
    )
    # The hall's bookings are its own: a list of a part's bookings does not show them.
    listed = await booking.get(
        "/v1/bookings", params={"resource_id": rooms["east"]}, headers=tokens("office")
    )
    assert [item["status"] for item in listed.json()["items"]] == ["cancelled"]


async def test_a_room_and_its_part_in_one_booking_are_refused(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    rooms = await _hall(town)
    body = booking_body([rooms["hall"], rooms["east"]], at(10), at(12))
    assert_problem(await book(booking, tokens, body), 422, "invalid_request")
    both = await book(booking, tokens, booking_body([rooms["east"], rooms["west"]], at(10), at(12)))
    assert both.status_code == 201, both.text


async def test_the_largest_buffer_on_the_path_applies_between_a_hall_and_its_parts(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    rooms = await _hall(town, east=30)
    await must_book(booking, tokens, rooms["hall"], at(10), at(12))
    # East keeps 30 minutes from the hall in either order; west (0) and the hall itself (0) touch.
    assert_problem(
        await book(booking, tokens, booking_body(rooms["east"], at(12, 15), at(13))),
        409,
        "conflict",
    )
    assert_problem(
        await book(booking, tokens, booking_body(rooms["east"], at(9), at(9, 45))), 409, "conflict"
    )
    for room, start, end in (
        ("east", at(12, 30), at(13)),
        ("west", at(12), at(13)),
        ("hall", at(8), at(10)),
        # The quarter is below east: the path hall-east-quarter keeps 30 minutes from the hall.
        ("quarter", at(14), at(15)),
    ):
        made = await book(booking, tokens, booking_body(rooms[room], start, end))
        assert made.status_code == 201, (room, made.text)
    # Between the quarter and the east half their path's largest buffer (30) applies too.
    assert_problem(
        await book(booking, tokens, booking_body(rooms["east"], at(15, 15), at(16))),
        409,
        "conflict",
    )


async def test_availability_shows_a_part_taken_by_its_whole_and_the_whole_by_a_part(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    rooms = await _hall(town, east=30)
    await must_book(booking, tokens, rooms["hall"], at(10), at(12))
    await must_book(booking, tokens, rooms["west"], at(15), at(16))

    async def free(room: str) -> list[dict[str, str]]:
        response = await booking.get(
            f"/v1/resources/{rooms[room]}/availability",
            params={"from": at(0), "to": at(23, 59)},
            headers=tokens("office"),
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, str]] = response.json()["items"]
        return items

    assert await free("hall") == [
        {"start": at(8), "end": at(10)},
        {"start": at(12), "end": at(15)},
        {"start": at(16), "end": at(22)},
    ]
    # East: the hall's booking with east's 30 minutes either side; west's booking is not in the way.
    assert await free("east") == [
        {"start": at(8), "end": at(9, 30)},
        {"start": at(12, 30), "end": at(22)},
    ]
    assert await free("quarter") == [
        {"start": at(8), "end": at(9, 30)},
        {"start": at(12, 30), "end": at(22)},
    ]
    assert await free("west") == [
        {"start": at(8), "end": at(10)},
        {"start": at(12), "end": at(15)},
        {"start": at(16), "end": at(22)},
    ]
    search = await booking.get(
        "/v1/availability",
        params={"from": at(10), "to": at(12), "minutes": 60, "venue_id": rooms["venue"]},
        headers=tokens("office"),
    )
    assert search.status_code == 200, search.text
    assert search.json()["items"] == []


def _overlap_on_a_chain(one: dict[str, Any], other: dict[str, Any], rooms: dict[str, str]) -> bool:
    """Whether two bookings share a room (one's room is the other's or a whole of it) and time."""
    above = {
        rooms["hall"]: {rooms["hall"]},
        rooms["east"]: {rooms["east"], rooms["hall"]},
        rooms["west"]: {rooms["west"], rooms["hall"]},
        rooms["quarter"]: {rooms["quarter"], rooms["east"], rooms["hall"]},
    }
    (a,), (b,) = one["resource_ids"], other["resource_ids"]
    chained = a in above[b] or b in above[a]
    meet = datetime.fromisoformat(one["start"]) < datetime.fromisoformat(other["end"]) and (
        datetime.fromisoformat(other["start"]) < datetime.fromisoformat(one["end"])
    )
    return chained and meet


async def test_fifty_concurrent_requests_for_a_hall_and_its_parts_make_a_consistent_set(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    rooms = await _hall(town)
    # Warm the replica for every room, away from the contested hours.
    for name in ("hall", "east", "west", "quarter"):
        assert (
            await book(booking, tokens, booking_body(rooms[name], at(20), at(21)))
        ).status_code in (201, 409)
    names = ["hall", "east", "west", "quarter"]
    bodies = [
        booking_body(rooms[names[i % 4]], at(10 + i % 3, 15 * (i % 4)), at(13, 15 * (i % 2)))
        for i in range(50)
    ]
    # Half through the transaction a community manager's share needs, half (on PostgreSQL)
    # through the office's one-statement path: both hold the same slots.
    roles = ["community_manager", "office"]
    answers = await asyncio.gather(
        *(book(booking, tokens, body, role=roles[i // 4 % 2]) for i, body in enumerate(bodies))
    )
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {201, 409}, [a.text for a in answers if a.status_code not in (201, 409)]
    made = [answer.json() for answer in answers if answer.status_code == 201]
    assert made
    for one, other in itertools.combinations(made, 2):
        assert not _overlap_on_a_chain(one, other, rooms), (one, other)
    # And nothing more could have been booked: each refused request meets a booking made.
    for body, answer in zip(bodies, answers, strict=True):
        if answer.status_code == 409:
            assert any(_overlap_on_a_chain(body, other, rooms) for other in made), body


async def test_utilisation_above_a_room_sums_only_the_smallest_parts(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    city = City(town)
    area = await city.area("街道")
    venue = await city.venue(area, "文化中心")
    hall = await city.room(venue, "礼堂")
    halves = []
    for name in ("礼堂东", "礼堂西"):
        made = await city.http.post(
            f"/v1/venues/{venue}/resources",
            json={"name": name, "type": "room", "capacity": 20, "part_of": hall},
        )
        assert made.status_code == 201, made.text
        halves.append(made.json()["id"])
    # EVE, open 09:00-17:00: the whole hall 10:00-12:00, the east half 13:00-14:00.
    await book_confirmed(booking, tokens, hall, on(EVE, 10), on(EVE, 12), programme="citizen")
    await book_confirmed(booking, tokens, halves[0], on(EVE, 13), on(EVE, 14), programme="citizen")
    office = tokens("office")
    span = (on(EVE, 0), on(EVE, 23))
    # Each room on its own: the hall was booked whole 2 h; a half 2 h (the hall) plus its own.
    resources = rows_by_key(await report(booking, office, *span, group_by="resource", area_id=area))
    assert [resources[hall]["booked_hours"], resources[hall]["open_hours"]] == [2, 8]
    assert resources[halves[0]]["booked_hours"] == 3
    assert resources[halves[1]]["booked_hours"] == 2
    # Above one room, only the halves: 16 open hours, 2 + 2 + 1 booked, two bookings.
    for group_by, key in (("venue", venue), ("area", area), ("kind", "citizen_school")):
        rows = rows_by_key(await report(booking, office, *span, group_by=group_by, area_id=area))
        row = rows[key]
        assert (row["open_hours"], row["booked_hours"], row["bookings"]) == (16, 5, 2), group_by
    programmes = rows_by_key(
        await report(booking, office, *span, group_by="programme", area_id=area)
    )
    assert (programmes["citizen"]["open_hours"], programmes["citizen"]["booked_hours"]) == (16, 5)
    heatmap = await booking.get(
        "/v1/reports/heatmap",
        params={"from": span[0], "to": span[1], "venue_id": venue},
        headers=office,
    )
    assert heatmap.status_code == 200, heatmap.text
    # The hall's booking fills both halves (1.0), the east half's one of two (0.5).
    eve = heatmap.json()["matrix"][EVE.isoweekday() - 1]
    assert (eve[10], eve[11], eve[13], eve[15]) == (1.0, 1.0, 0.5, 0.0)


async def test_postgresql_itself_refuses_overlapping_claims_of_different_reach(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    """The guarantee is the database's: slot rows written past every check in Python are
    refused by the exclusion constraint, and two wholes' or two parts' claims are not."""
    if booking.app.state["service"].settings.database_url("booking").startswith("sqlite"):
        return  # SQLite's guarantee is its one writer, exercised by the tests above
    venue = await town.venue()
    ids = []
    for _ in range(4):
        answer = await book(booking, tokens, booking_body(await town.room(venue), at(8), at(9)))
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    start = datetime.fromisoformat(at(10))
    end = datetime.fromisoformat(at(12))

    def slot(booking_id: str, reach: Reach) -> dict[str, Any]:
        return {
            "booking_id": booking_id,
            "resource_id": "shared-room",
            "start_at": start,
            "end_at": end,
            "blocked_from": start,
            "blocked_until": end,
            "live": True,
            "reach": reach.value,
        }

    insert = store.SlotRow.__table__.insert()
    async with database_of(booking, "booking") as database:
        async with database.write() as session:
            await session.execute(insert, [slot(ids[0], Reach.WHOLE), slot(ids[1], Reach.WHOLE)])
        for booking_id, reach in ((ids[2], Reach.OWN), (ids[2], Reach.PART)):
            with pytest.raises(IntegrityError, match="ex_booking_slots_no_overlap"):
                async with database.write() as session:
                    await session.execute(insert, [slot(booking_id, reach)])
        async with database.write() as session:
            await session.execute(insert, [slot(ids[2], Reach.OWN) | {"resource_id": "r2"}])
        with pytest.raises(IntegrityError, match="ex_booking_slots_no_overlap"):
            async with database.write() as session:
                await session.execute(insert, [slot(ids[3], Reach.OWN) | {"resource_id": "r2"}])


async def test_a_room_made_part_of_another_is_excluded_by_it_once_the_event_arrives(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    venue = await town.venue()
    hall = await town.room(venue, name="hall")
    stage = await town.room(venue, name="stage")
    # Both known to this process while apart: a booking of each stands beside the other.
    await must_book(booking, tokens, hall, at(8), at(9))
    await must_book(booking, tokens, stage, at(8), at(9))
    changed = await town.http.patch(f"/v1/resources/{stage}", json={"part_of": hall})
    assert changed.status_code == 200, changed.text
    await registry_event_handled(booking, "resource.updated", changed.json())
    await must_book(booking, tokens, hall, at(10), at(12))
    assert_problem(
        await book(booking, tokens, booking_body(stage, at(11), at(12))), 409, "conflict"
    )
