"""The booking service through HTTP, on SQLite and PostgreSQL, with a real registry process."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import icalendar
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from services.booking import store
from services.booking.app import create_app
from services.booking.catalogue.reader import Readings
from shared.events import decode
from shared.ids import new_id
from shared.web import service_state
from tests.conftest import Tokens, as_client, database_of, make_settings
from tests.service.conftest import (
    Town,
    hours_change_handled,
    moved_into_the_past,
    open_every_day,
    registry_event_handled,
)

Client = AsyncTestClient  # type: ignore[type-arg]
SHANGHAI = ZoneInfo("Asia/Shanghai")


def day_ahead(days: int = 3) -> date:
    return (datetime.now(SHANGHAI) + timedelta(days=days)).date()


def at(hour: int, minute: int = 0, *, day: date | None = None, zone: ZoneInfo = SHANGHAI) -> str:
    return datetime.combine(day or day_ahead(), time(hour, minute), tzinfo=zone).isoformat()


def booking_body(resource: str | list[str], start: str, end: str, **more: Any) -> dict[str, Any]:
    ids = [resource] if isinstance(resource, str) else resource
    return {"resource_ids": ids, "start": start, "end": end, "purpose": "书法课", **more}


async def book(
    client: Client,
    tokens: Tokens,
    body: dict[str, Any],
    role: str = "community_manager",
    org: str = "org-a",
) -> httpx.Response:
    return await client.post("/v1/bookings", json=body, headers=tokens(role, org))


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["code"] == code, problem
    return problem


async def outbox_types(client: Client) -> list[str]:
    async with database_of(client, "booking") as database, database.read() as session:
        payloads = await session.scalars(
            select(store.tables.outbox.c.payload).order_by(store.tables.outbox.c.seq)
        )
        return [decode(payload).type for payload in payloads]


# Making bookings


async def test_a_booking_is_confirmed_in_the_venue_zone_and_announced(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    response = await book(booking, tokens, booking_body(room, at(18), at(20), attendees=20))
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["status"] == "confirmed"
    assert made["start"] == at(18)
    assert made["start"].endswith("+08:00")
    assert made["org"] == "org-a"
    assert made["outside_opening_hours"] is False
    fetched = await booking.get(f"/v1/bookings/{made['id']}", headers=tokens("community_manager"))
    assert fetched.json() == made
    assert await outbox_types(booking) == ["booking.created"]


async def test_back_to_back_bookings_do_not_conflict(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    assert (await book(booking, tokens, booking_body(room, at(10), at(11)))).status_code == 201
    assert (await book(booking, tokens, booking_body(room, at(11), at(12)))).status_code == 201
    assert (await book(booking, tokens, booking_body(room, at(9), at(10)))).status_code == 201


async def test_an_overlap_is_a_conflict_naming_the_booking_in_the_way(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    first = (await book(booking, tokens, booking_body(room, at(10), at(12)))).json()
    refused = await book(booking, tokens, booking_body(room, at(11), at(13)), org="org-b")
    problem = assert_problem(refused, 409, "conflict")
    assert first["id"] in problem["errors"][0]["message"]


async def test_the_buffer_keeps_bookings_apart_in_either_order(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue(), rules={"buffer_minutes": 15})
    assert (await book(booking, tokens, booking_body(room, at(10), at(11)))).status_code == 201
    assert_problem(await book(booking, tokens, booking_body(room, at(11), at(12))), 409, "conflict")
    assert_problem(
        await book(booking, tokens, booking_body(room, at(9), at(10))),
        409,
        "conflict",
    )
    assert (await book(booking, tokens, booking_body(room, at(11, 15), at(12)))).status_code == 201
    assert (
        await book(booking, tokens, booking_body(room, at(8, 45), at(9, 45)))
    ).status_code == 201


@pytest.mark.parametrize(
    ("rules", "change", "code"),
    [
        ({}, {"end": at(18, 15)}, "too_short"),
        ({}, {"end": at(22, 15)}, "too_long"),
        ({"slot_minutes": 30}, {"start": at(18, 15)}, "not_on_slot"),
        ({"lead_minutes": 10 * 24 * 60}, {}, "too_soon"),
        ({"horizon_days": 1}, {}, "too_far"),
        ({}, {"attendees": 31}, "over_capacity"),
        ({}, {"start": at(21), "end": at(23)}, "outside_opening_hours"),
    ],
)
async def test_each_rule_has_its_own_code_and_nothing_is_stored(
    booking: Client,
    town: Town,
    tokens: Tokens,
    rules: dict[str, int],
    change: dict[str, Any],
    code: str,
) -> None:
    room = await town.room(await town.venue(), rules=rules)
    body = {**booking_body(room, at(18), at(20)), **change}
    assert_problem(await book(booking, tokens, body), 422, code)
    listed = await booking.get("/v1/bookings", headers=tokens("office"))
    assert listed.json()["items"] == []
    assert await outbox_types(booking) == []


async def test_resources_of_two_venues_or_unknown_ones_are_refused(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    here = await town.room(await town.venue())
    there = await town.room(await town.venue())
    assert_problem(
        await book(booking, tokens, booking_body([here, there], at(18), at(20))),
        422,
        "mixed_venues",
    )
    assert_problem(
        await book(booking, tokens, booking_body([here, new_id()], at(18), at(20))),
        422,
        "unknown_resource",
    )


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"start": "2026-12-01T18:00:00"}, 422, "start"),
        ({"end": at(17)}, 422, "end"),
        ({"resource_ids": []}, 400, "resource_ids"),
        ({"purpose": "x" * 10_000}, 400, "purpose"),
        ({"programme": "astrology"}, 400, "programme"),
        ({"attendees": "many"}, 400, "attendees"),
        ({"purpose": "nul\u0000byte"}, 400, "purpose"),
    ],
)
async def test_malformed_bookings_are_invalid_requests_with_the_field_named(
    booking: Client, town: Town, tokens: Tokens, change: dict[str, Any], status: int, field: str
) -> None:
    room = await town.room(await town.venue())
    body = {**booking_body(room, at(18), at(20)), **change}
    problem = assert_problem(await book(booking, tokens, body), status, "invalid_request")
    assert any(error["field"].startswith(field) for error in problem["errors"]), problem


# Approval and the life of a booking


async def test_approval_moves_a_pending_booking_once(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue(), requires_approval=True)
    made = (await book(booking, tokens, booking_body(room, at(18), at(20)))).json()
    assert made["status"] == "pending"
    path = f"/v1/bookings/{made['id']}"
    assert_problem(
        await booking.post(f"{path}/approve", headers=tokens("community_manager")), 403, "forbidden"
    )
    # Another venue's manager is not told the booking exists.
    assert_problem(
        await booking.post(f"{path}/approve", headers=tokens("venue_manager", "org-x")),
        404,
        "not_found",
    )
    approved = await booking.post(f"{path}/approve", headers=tokens("venue_manager", "org-v"))
    assert approved.json()["status"] == "confirmed"
    assert_problem(
        await booking.post(f"{path}/approve", headers=tokens("office")), 409, "invalid_transition"
    )
    assert_problem(
        await booking.post(f"{path}/reject", headers=tokens("office")), 409, "invalid_transition"
    )
    assert await outbox_types(booking) == ["booking.created", "booking.confirmed"]


async def test_rejecting_frees_the_slot(booking: Client, town: Town, tokens: Tokens) -> None:
    room = await town.room(await town.venue(), requires_approval=True)
    made = (await book(booking, tokens, booking_body(room, at(18), at(20)))).json()
    rejected = await booking.post(
        f"/v1/bookings/{made['id']}/reject", json={"reason": "维修"}, headers=tokens("office")
    )
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["reason"] == "维修"
    assert (await book(booking, tokens, booking_body(room, at(18), at(20)))).status_code == 201


async def test_cancelling_frees_the_slot_at_once_and_twice_is_refused(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    made = (await book(booking, tokens, booking_body(room, at(18), at(20)))).json()
    cancel = f"/v1/bookings/{made['id']}/cancel"
    cancelled = await booking.post(cancel, headers=tokens("community_manager"))
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert_problem(
        await booking.post(cancel, headers=tokens("community_manager")), 409, "invalid_transition"
    )
    assert (await book(booking, tokens, booking_body(room, at(18), at(20)))).status_code == 201
    assert await outbox_types(booking) == [
        "booking.created",
        "booking.cancelled",
        "booking.created",
    ]


async def test_attendance_is_recorded_after_the_end_only(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    made = (await book(booking, tokens, booking_body(room, at(18), at(20)))).json()
    assert_problem(
        await booking.post(
            f"/v1/bookings/{made['id']}/attendance",
            json={"attended": 12},
            headers=tokens("community_manager"),
        ),
        409,
        "invalid_transition",
    )
    await moved_into_the_past(booking, made["id"])
    recorded = await booking.post(
        f"/v1/bookings/{made['id']}/attendance",
        json={"attended": 12},
        headers=tokens("community_manager"),
    )
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["attended"] == 12
    assert (await outbox_types(booking))[-1] == "booking.attended"
    assert_problem(
        await booking.post(
            f"/v1/bookings/{made['id']}/attendance",
            json={"attended": -1},
            headers=tokens("community_manager"),
        ),
        400,
        "invalid_request",
    )


async def test_another_orgs_booking_does_not_exist_for_a_community_manager(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    made = (await book(booking, tokens, booking_body(room, at(18), at(20)))).json()
    stranger = tokens("community_manager", "org-b")
    path = f"/v1/bookings/{made['id']}"
    assert_problem(await booking.get(path, headers=stranger), 404, "not_found")
    assert_problem(await booking.post(f"{path}/cancel", headers=stranger), 404, "not_found")
    assert (await booking.get("/v1/bookings", headers=stranger)).json()["items"] == []
    assert (
        len(
            (await booking.get("/v1/bookings", headers=tokens("venue_manager", "org-v"))).json()[
                "items"
            ]
        )
        == 1
    )
    assert_problem(
        await booking.get(path, headers=tokens("lecturer", lecturer_id="l-1")), 404, "not_found"
    )
    # The venue's own community managers are another organisation's staff to this booking.
    assert_problem(
        await booking.get(path, headers=tokens("community_manager", "org-v")), 404, "not_found"
    )
    assert_problem(await booking.get(path, headers={}), 401, "unauthenticated")


async def test_lists_filter_by_resource_window_and_status(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    venue = await town.venue()
    room, hall = await town.room(venue), await town.room(venue, name="礼堂")
    await book(booking, tokens, booking_body(room, at(10), at(11)))
    await book(booking, tokens, booking_body(hall, at(14), at(15)))
    office = tokens("office")
    by_room = await booking.get("/v1/bookings", params={"resource_id": room}, headers=office)
    assert [b["resource_ids"] for b in by_room.json()["items"]] == [[room]]
    afternoon = await booking.get(
        "/v1/bookings", params={"from": at(13), "to": at(16)}, headers=office
    )
    assert [b["resource_ids"] for b in afternoon.json()["items"]] == [[hall]]
    assert (await booking.get("/v1/bookings", params={"status": "pending"}, headers=office)).json()[
        "items"
    ] == []


# Holds, overrides and idempotent retries


async def test_the_office_holds_a_room_for_another_org_and_nobody_else_may(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    held = await book(
        booking, tokens, booking_body(room, at(18), at(20), hold=True, org="org-v"), role="office"
    )
    assert held.status_code == 201, held.text
    assert held.json()["status"] == "pending"
    assert held.json()["org"] == "org-v"
    assert_problem(
        await book(booking, tokens, booking_body(room, at(20), at(21), hold=True)), 403, "forbidden"
    )
    assert_problem(
        await book(booking, tokens, booking_body(room, at(20), at(21), org="org-z")),
        403,
        "forbidden",
    )


async def test_the_venue_manager_may_book_outside_hours_but_a_community_manager_may_not(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    late = booking_body(room, at(22), at(23, 30), override_hours=True)
    assert_problem(await book(booking, tokens, late), 403, "forbidden")
    made = await book(booking, tokens, late, role="venue_manager", org="org-v")
    assert made.status_code == 201, made.text


async def test_a_retried_create_returns_the_first_booking_once(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    headers = {**tokens("community_manager"), "Idempotency-Key": "k-1"}
    body = booking_body(room, at(18), at(20))
    first = await booking.post("/v1/bookings", json=body, headers=headers)
    again = await booking.post("/v1/bookings", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    other = await booking.post("/v1/bookings", json={**body, "purpose": "another"}, headers=headers)
    assert_problem(other, 422, "idempotency_key_reused")
    assert len((await booking.get("/v1/bookings", headers=tokens("office"))).json()["items"]) == 1


# Series


async def test_a_weekly_series_stays_at_the_same_local_time_across_dst(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    room = await town.room(await town.venue("Europe/Berlin"), rules={"horizon_days": 1000})
    # Weekly from a Thursday in October across the end of summer time (2027-10-31).
    first = date(2027, 10, 21) if datetime.now(UTC).date() < date(2027, 10, 1) else None
    if first is None:  # pragma: no cover - the test is written for the next DST change
        pytest.fail("choose the next autumn DST change in Europe/Berlin")
    body = booking_body(
        room,
        at(18, day=first, zone=berlin),
        at(19, day=first, zone=berlin),
        series={"rrule": "FREQ=WEEKLY;COUNT=3", "mode": "all_or_nothing"},
    )
    made = await book(booking, tokens, body)
    assert made.status_code == 201, made.text
    starts = [datetime.fromisoformat(b["start"]) for b in made.json()["bookings"]]
    assert [start.astimezone(berlin).hour for start in starts] == [18, 18, 18]
    assert [start.utcoffset() for start in starts] == [
        timedelta(hours=2),
        timedelta(hours=2),
        timedelta(hours=1),
    ]
    assert made.json()["skipped"] == []


async def test_all_or_nothing_books_none_when_one_occurrence_is_taken(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    taken = await book(
        booking, tokens, booking_body(room, at(18, day=day_ahead(10)), at(19, day=day_ahead(10)))
    )
    assert taken.status_code == 201
    series = {"rrule": "FREQ=WEEKLY;COUNT=3", "mode": "all_or_nothing"}
    body = booking_body(room, at(18), at(19), series=series)
    problem = assert_problem(await book(booking, tokens, body), 409, "conflict")
    assert len(problem["errors"]) == 1
    listed = (await booking.get("/v1/bookings", headers=tokens("office"))).json()["items"]
    assert len(listed) == 1


async def test_skip_conflicts_books_the_rest_and_the_rest_can_be_cancelled(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    await book(
        booking, tokens, booking_body(room, at(18, day=day_ahead(10)), at(19, day=day_ahead(10)))
    )
    series = {"rrule": "FREQ=WEEKLY;COUNT=3", "mode": "skip_conflicts"}
    made = (await book(booking, tokens, booking_body(room, at(18), at(19), series=series))).json()
    assert len(made["bookings"]) == 2
    assert [item["code"] for item in made["skipped"]] == ["conflict"]
    cancelled = await booking.delete(
        f"/v1/series/{made['series_id']}", headers=tokens("community_manager")
    )
    assert cancelled.status_code == 200, cancelled.text
    assert len(cancelled.json()["cancelled"]) == 2
    assert_problem(
        await booking.delete(f"/v1/series/{new_id()}", headers=tokens("community_manager")),
        404,
        "not_found",
    )


@pytest.mark.parametrize(
    ("rrule", "code"),
    [
        ("FREQ=DAILY", "invalid_rrule"),
        ("FREQ=SECONDLY;COUNT=1000000", "too_many_occurrences"),
        ("FREQ=NEVER;COUNT=2", "invalid_rrule"),
        ("FREQ=DAILY;COUNT=2\nDTSTART:20200101T000000", "invalid_rrule"),
        ("FREQ=DAILY;COUNT=2;BYMONTH=2;BYMONTHDAY=30", "invalid_rrule"),  # no date is 30 February
    ],
)
async def test_bad_rrules_are_refused_quickly(
    booking: Client, town: Town, tokens: Tokens, rrule: str, code: str
) -> None:
    room = await town.room(await town.venue())
    body = booking_body(room, at(18), at(19), series={"rrule": rrule})
    assert_problem(await book(booking, tokens, body), 422, code)


# Availability and calendars


async def test_availability_is_open_hours_minus_bookings_and_their_buffers(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue(), rules={"buffer_minutes": 30})
    await book(booking, tokens, booking_body(room, at(12), at(14)))
    response = await booking.get(
        f"/v1/resources/{room}/availability",
        params={"from": at(0), "to": at(23, 59)},
        headers=tokens("lecturer", lecturer_id="l-1"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["items"] == [
        {"start": at(8), "end": at(11, 30)},
        {"start": at(14, 30), "end": at(22)},
    ]


async def test_a_booking_just_after_the_range_still_keeps_its_buffer_free(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue(), rules={"buffer_minutes": 30})
    await book(booking, tokens, booking_body(room, at(14), at(15)))
    response = await booking.get(
        f"/v1/resources/{room}/availability",
        params={"from": at(8), "to": at(13, 45)},
        headers=tokens("office"),
    )
    assert response.json()["items"] == [{"start": at(8), "end": at(13, 30)}]


async def test_availability_search_finds_rooms_with_a_long_enough_stretch(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    venue = await town.venue()
    busy = await town.room(venue, name="忙", features=["projector"])
    free = await town.room(venue, name="闲", features=["projector"], capacity=50)
    await book(booking, tokens, booking_body(busy, at(8), at(12)))
    await book(booking, tokens, booking_body(busy, at(12), at(16)))
    await book(booking, tokens, booking_body(busy, at(16), at(20)))
    found = await booking.get(
        "/v1/availability",
        params={
            "from": at(8),
            "to": at(22),
            "minutes": 180,
            "feature": "projector",
            "area_id": town.area,
        },
        headers=tokens("community_manager"),
    )
    assert found.status_code == 200, found.text
    assert [item["resource_id"] for item in found.json()["items"]] == [free]
    big = await booking.get(
        "/v1/availability",
        params={
            "from": at(8),
            "to": at(22),
            "min_capacity": 40,
            "minutes": 30,
            "area_id": town.area,
        },
        headers=tokens("community_manager"),
    )
    assert [item["resource_id"] for item in big.json()["items"]] == [free]


async def test_availability_search_keeps_to_the_venues_named_and_pages_through_them(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    first, second, elsewhere = [await town.venue() for _ in range(3)]
    rooms = {await town.room(first, name=f"教室{n}") for n in range(3)}
    rooms |= {await town.room(second, name="礼堂")}
    await town.room(elsewhere, name="别处")
    full = await town.room(second, name="满", rules={"max_minutes": 14 * 60})
    await book(booking, tokens, booking_body(full, at(8), at(22)))
    params = {"from": at(8), "to": at(22), "minutes": 60, "venue_id": [first, second]}
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await booking.get(
            "/v1/availability",
            params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})},
            headers=tokens("community_manager"),
        )
        assert page.status_code == 200, page.text
        assert len(page.json()["items"]) <= 2
        seen += [item["resource_id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(rooms)  # each once; the full room and the other venue's not
    bad = await booking.get(
        "/v1/availability", params={**params, "cursor": "nonsense"}, headers=tokens("office")
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_request"


async def test_the_calendar_feed_parses_and_lists_live_bookings(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    purpose = "书法班; 第三期, 家长\\孩子" + "、练习" * 20  # escapes, and folds between characters
    body = booking_body(room, at(18), at(20)) | {"purpose": purpose}
    made = (await book(booking, tokens, body)).json()
    feed = await booking.get(f"/v1/resources/{room}/calendar.ics", headers=tokens("office"))
    assert feed.status_code == 200
    assert feed.headers["content-type"] == "text/calendar; charset=utf-8"
    calendar = icalendar.Calendar.from_ical(feed.content)
    events = list(calendar.walk("VEVENT"))
    assert [str(event["uid"]) for event in events] == [f"{made['id']}@booking.commonroom"]
    assert events[0]["status"] == "CONFIRMED"
    assert events[0]["sequence"] == made["version"] == 1
    assert events[0].start == datetime.fromisoformat(at(18))
    assert str(events[0]["summary"]) == purpose
    assert all(len(line) <= 75 for line in feed.content.split(b"\r\n"))
    assert list(calendar.walk("VTIMEZONE"))
    assert all(not component.errors for component in calendar.walk())


async def test_an_availability_range_over_a_year_is_refused(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    assert_problem(
        await booking.get(
            f"/v1/resources/{room}/availability",
            params={"from": at(8), "to": at(8, day=day_ahead(500))},
            headers=tokens("office"),
        ),
        422,
        "range_too_long",
    )


# The registry behind the booking service


async def test_without_the_registry_and_nothing_kept_a_booking_is_503(
    booking_db: str, redis_url: str, identity_server: str, tokens: Tokens
) -> None:
    dead = "http://127.0.0.1:9"  # the discard port: nothing answers there
    settings = as_client(
        make_settings(redis_url, identity_url=identity_server, booking=booking_db), "booking"
    ).with_service_url("registry", dead)
    async with AsyncTestClient(app=create_app(settings)) as client:
        response = await book(client, tokens, booking_body(new_id(), at(18), at(20)))
    assert_problem(response, 503, "registry_unavailable")


async def test_hours_that_shrink_under_a_booking_flag_it_and_tell_the_venue(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    venue = await town.venue()
    room = await town.room(venue)
    made = (await book(booking, tokens, booking_body(room, at(18), at(21)))).json()
    await town.http.put(f"/v1/venues/{venue}/opening-hours", json=open_every_day("08:00", "20:00"))
    await hours_change_handled(booking, venue)
    flagged = await booking.get(f"/v1/bookings/{made['id']}", headers=tokens("office"))
    assert flagged.json()["outside_opening_hours"] is True
    assert flagged.json()["status"] == "confirmed"
    assert (await outbox_types(booking))[-1] == "booking.outside_opening_hours"
    # The replica was read again at the new generation: a new booking until 21:00 is refused
    # by the new hours.
    assert_problem(
        await book(booking, tokens, booking_body(room, at(19), at(21))),
        422,
        "outside_opening_hours",
    )


# Concurrency


async def test_fifty_concurrent_overlapping_requests_make_exactly_one_booking(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    await book(booking, tokens, booking_body(room, at(8), at(9)))  # warm the replica
    bodies = [
        booking_body(room, at(10 + (i % 4) // 2, 15 * (i % 2)), at(12, 15 * (i % 3)))
        for i in range(50)
    ]
    answers = await asyncio.gather(*(book(booking, tokens, body) for body in bodies))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(201) == 1, [a.text for a in answers if a.status_code not in (201, 409)]
    assert statuses.count(409) == 49
    listed = await booking.get(
        "/v1/bookings", params={"resource_id": room}, headers=tokens("office")
    )
    assert len(listed.json()["items"]) == 2


async def test_two_service_processes_on_postgresql_still_make_one_booking(
    booking_db: str,
    redis_url: str,
    identity_server: str,
    registry_server: str,
    town: Town,
    tokens: Tokens,
) -> None:
    if not booking_db.startswith("postgresql"):
        return  # SQLite is one file on one machine: replicas are a PostgreSQL matter
    from services.up import stop_children, wait_ready
    from tests.conftest import free_port, spawn

    room = await town.room(await town.venue())
    settings = make_settings(
        redis_url, identity_url=identity_server, booking=booking_db
    ).with_service_url("registry", registry_server)
    ports = [free_port(), free_port()]
    children = [spawn(settings, "serve", "booking", "--port", str(port)) for port in ports]
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        await asyncio.to_thread(wait_ready, bases, children)
        headers = tokens("community_manager")
        async with httpx.AsyncClient(headers=headers, timeout=30) as http:
            answers = await asyncio.gather(
                *(
                    http.post(
                        f"{bases[i % 2]}/v1/bookings",
                        json=booking_body(room, at(10, 15 * (i % 4)), at(12)),
                    )
                    for i in range(50)
                )
            )
        statuses = [answer.status_code for answer in answers]
        assert statuses.count(201) == 1, statuses
        assert statuses.count(409) == 49, statuses
    finally:
        stop_children(children)


async def test_a_kept_registry_answer_serves_while_the_registry_is_down(
    booking: Client,
    booking_db: str,
    redis_url: str,
    identity_server: str,
    town: Town,
    tokens: Tokens,
) -> None:
    room = await town.room(await town.venue())
    day = day_ahead(5)
    warm = await book(booking, tokens, booking_body(room, at(9, day=day), at(10, day=day)))
    assert warm.status_code == 201, warm.text
    dead = "http://127.0.0.1:9"
    settings = as_client(
        make_settings(redis_url, identity_url=identity_server, booking=booking_db), "booking"
    ).with_service_url("registry", dead)
    async with AsyncTestClient(app=create_app(settings)) as cut_off:
        same_month = await book(
            cut_off, tokens, booking_body(room, at(11, day=day), at(12, day=day))
        )
        # Hours are asked for by the month: forty days on is another month.
        later = day + timedelta(days=40)
        other_month = await book(
            cut_off, tokens, booking_body(room, at(11, day=later), at(12, day=later))
        )
    assert same_month.status_code == 201, same_month.text
    assert_problem(other_month, 503, "registry_unavailable")


async def test_a_resource_event_makes_what_was_kept_of_its_venue_stale(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    venue = await town.venue()
    room = await town.room(venue, capacity=30)
    assert (
        await book(booking, tokens, booking_body(room, at(9), at(10), attendees=30))
    ).status_code == 201
    changed = await town.http.patch(f"/v1/resources/{room}", json={"capacity": 10})
    assert changed.status_code == 200, changed.text
    # Until the event arrives the capacity kept stands; after it, the registry's new one does.
    assert (
        await book(booking, tokens, booking_body(room, at(10), at(11), attendees=20))
    ).status_code == 201
    await registry_event_handled(booking, "resource.updated", changed.json())
    assert_problem(
        await book(booking, tokens, booking_body(room, at(11), at(12), attendees=20)),
        422,
        "over_capacity",
    )


async def test_the_search_after_a_registry_event_reads_the_venue_again_and_leaves_out_what_went(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    venue = await town.venue()
    kept, removed = await town.room(venue, name="留"), await town.room(venue, name="拆")
    params = {"from": at(8), "to": at(22), "minutes": 60, "venue_id": venue}
    first = await booking.get("/v1/availability", params=params, headers=tokens("office"))
    assert {item["resource_id"] for item in first.json()["items"]} == {kept, removed}
    assert (await town.http.delete(f"/v1/resources/{removed}")).status_code == 204
    shrunk = await town.http.put(
        f"/v1/venues/{venue}/opening-hours", json=open_every_day("08:00", "10:00")
    )
    assert shrunk.status_code == 200, shrunk.text
    await registry_event_handled(booking, "resource.deleted", {"id": removed, "venue_id": venue})
    again = await booking.get("/v1/availability", params=params, headers=tokens("office"))
    assert again.status_code == 200, again.text
    assert [(item["resource_id"], item["free"]) for item in again.json()["items"]] == [
        (kept, [{"start": at(8), "end": at(10)}])
    ]
    # What this process holds of the venue is now stale under a room's own request: the venue
    # is read again, in bulk, before the free time is worked out.
    await town.http.put(f"/v1/venues/{venue}/opening-hours", json=open_every_day("09:00", "10:00"))
    await registry_event_handled(
        booking, "opening_hours.changed", {"venue_id": venue, "resource_id": None}
    )
    one = await booking.get(
        f"/v1/resources/{kept}/availability", params=params, headers=tokens("office")
    )
    assert one.json()["items"] == [{"start": at(9), "end": at(10)}]


async def test_answers_read_before_an_event_are_stale_even_once_another_request_caught_up(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    """Request A reads a room; an event moves its venue on; request B notices and catches this
    process up. A's answers are still of the old generation, and must not pass for current."""
    venue = await town.venue()
    room = await town.room(venue)
    state = service_state(booking.app.state)
    registry = state.extras["registry"]
    first = Readings()
    await registry.bookables([room], readings=first)
    await registry_event_handled(booking, "resource.updated", {"id": room, "venue_id": venue})
    async with state.database.read() as session:
        assert not await registry.still_current(session, [venue])  # B: stale, forgotten
        assert await registry.still_current(session, [venue])  # and now caught up
        assert not await registry.still_current(session, [venue], first)  # A's are not
    again = Readings()
    await registry.bookables([room], readings=again)
    async with state.database.read() as session:
        assert await registry.still_current(session, [venue], again)
