"""Hostile input, against each service's real app on SQLite and PostgreSQL: every answer a 4xx
problem with a `code`, quickly, and nothing stored.

Over-large bodies, a JSON nesting bomb, a 900 KB string where 200 characters are allowed, NUL
characters (PostgreSQL cannot store one), invalid UTF-8, an RRULE with a million occurrences, and
intervals of a thousand years.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from shared.time import next_month
from tests.conftest import Tokens
from tests.service.conftest import Town

Client = AsyncTestClient  # type: ignore[type-arg]

QUICKLY = 1.0  # seconds: a refusal costs the service next to nothing
MAX_BODY = 1_000_000  # COMMONROOM_MAX_BODY_BYTES, the default the test settings keep
TEN_MB = 10 * 1024 * 1024
NESTING = 100_000

JSON = {"Content-Type": "application/json"}
ARRAY_BOMB = b"[" * NESTING + b"]" * NESTING
OBJECT_BOMB = b'{"a":' * NESTING + b"1" + b"}" * NESTING
INVALID_UTF8 = b'{"name": "\xff\xfe\xc3\x28 \xed\xa0\x80"}'


async def timed(call: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await call
    return response, time.perf_counter() - started


async def refused(
    call: Awaitable[httpx.Response], statuses: set[int], code: str | None = None
) -> dict[str, Any]:
    """The answer to `call`: one of `statuses`, a problem with a code (`code` where given),
    within `QUICKLY`."""
    response, elapsed = await timed(call)
    assert response.status_code in statuses, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["status"] == response.status_code
    assert problem["code"], problem
    if code is not None:
        assert problem["code"] == code, problem
    assert elapsed < QUICKLY, f"{elapsed:.2f}s to refuse"
    return problem


def bodies_past_the_limit() -> list[bytes]:
    return [
        b'{"name": "' + b"x" * (MAX_BODY + 1) + b'"}',
        b'{"name": "' + b"x" * TEN_MB + b'"}',
    ]


async def assert_hostile_bodies_refused(
    client: Client,
    path: str,
    headers: dict[str, Any],
    nothing_stored: Callable[[], Awaitable[None]],
) -> None:
    """Every hostile body at one create route: refused quickly with a code, nothing stored."""
    sent = {**headers, **JSON}
    for body in bodies_past_the_limit():
        await refused(client.post(path, content=body, headers=sent), {413}, "payload_too_large")
    for bomb in (ARRAY_BOMB, OBJECT_BOMB):
        await refused(client.post(path, content=bomb, headers=sent), {400, 422})
    await refused(client.post(path, content=INVALID_UTF8, headers=sent), {400})
    await nothing_stored()


# ---------------------------------------------------------------------------------------------
# Registry


async def registry_area(registry: Client, tokens: Tokens) -> str:
    response = await registry.post("/v1/areas", json={"name": "城关镇"}, headers=tokens("office"))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_registry_refuses_hostile_bodies(registry: Client, tokens: Tokens) -> None:
    office = tokens("office")

    async def no_area() -> None:
        assert (await registry.get("/v1/areas", headers=office)).json()["items"] == []

    await assert_hostile_bodies_refused(registry, "/v1/areas", office, no_area)


async def test_registry_refuses_long_strings_and_nul_in_names(
    registry: Client, tokens: Tokens
) -> None:
    office = tokens("office")
    area = await registry_area(registry, tokens)
    venue = {"name": "x", "kind": "school", "area_id": area, "owner_org": "org-a"}
    for change in (
        {"name": "长" * 300_000},  # 900 KB of UTF-8 where 200 characters are allowed
        {"name": "市民\x00学校"},
        {"owner_org": "org\x00a"},
        {"address": "人民路\x001 号"},
        {"area_id": area[:-1] + "\x00"},
        {"timezone": "Asia/Shanghai\x00"},  # `invalid_timezone`
        {"holiday_calendar": "C\x00"},  # `invalid_holiday_calendar`
    ):
        await refused(
            registry.post("/v1/venues", json={**venue, **change}, headers=office), {400, 422}
        )
    await refused(
        registry.post("/v1/areas", json={"name": "x", "parent_id": "\x00" * 36}, headers=office),
        {400, 422, 404},
    )
    assert (await registry.get("/v1/venues", headers=office)).json()["items"] == []
    assert len((await registry.get("/v1/areas", headers=office)).json()["items"]) == 1


async def test_registry_answers_nul_in_ids_and_queries_with_a_problem(
    registry: Client, tokens: Tokens
) -> None:
    office = tokens("office")
    await refused(registry.get("/v1/areas/%00", headers=office), {404, 422})
    await refused(registry.get("/v1/venues/ab%00cd", headers=office), {404, 422})
    await refused(
        registry.get("/v1/venues", params={"area_id": "\x00"}, headers=office), {400, 404, 422}
    )
    # A NUL in a search text finds nothing, or is refused where the database cannot hold one.
    searched = await registry.get("/v1/venues", params={"q": "学\x00校"}, headers=office)
    assert searched.status_code in (200, 422), searched.text


async def test_open_intervals_over_a_thousand_years_are_refused(
    registry: Client, tokens: Tokens
) -> None:
    office = tokens("office")
    area = await registry_area(registry, tokens)
    venue = (
        await registry.post(
            "/v1/venues",
            json={"name": "x", "kind": "school", "area_id": area, "owner_org": "org-a"},
            headers=office,
        )
    ).json()["id"]
    hours = {
        "periods": [
            {
                "name": "all",
                "start_date": "2026-01-01",
                "spans": [{"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "23:45"}],
            }
        ],
        "public_holidays": "closed",
    }
    put = await registry.put(f"/v1/venues/{venue}/opening-hours", json=hours, headers=office)
    assert put.status_code == 200, put.text
    span = {"from": "2026-01-01T00:00:00+08:00", "to": "3026-01-01T00:00:00+08:00"}
    problem = await refused(
        registry.get(f"/v1/venues/{venue}/open-intervals", params=span, headers=office),
        {422},
        "range_too_long",
    )
    assert "to" in [error["field"] for error in problem["errors"]]
    widest = {"from": "0001-01-01T00:00:00+00:00", "to": "9999-12-31T23:59:59+00:00"}
    await refused(
        registry.get(f"/v1/venues/{venue}/open-intervals", params=widest, headers=office),
        {422},
        "range_too_long",
    )


# ---------------------------------------------------------------------------------------------
# Booking


def _at(days: int, hour: int) -> str:
    return (
        (datetime.now(UTC) + timedelta(days=days))
        .replace(hour=hour, minute=0, second=0, microsecond=0)
        .isoformat()
    )


async def test_booking_refuses_hostile_bodies(booking: Client, tokens: Tokens) -> None:
    office = tokens("office")

    async def no_booking() -> None:
        assert (await booking.get("/v1/bookings", headers=office)).json()["items"] == []

    await assert_hostile_bodies_refused(booking, "/v1/bookings", office, no_booking)


def _series(room: str, rrule: str) -> dict[str, Any]:
    return {
        "resource_ids": [room],
        "start": _at(3, 10),
        "end": _at(3, 11),
        "purpose": "书法课",
        "series": {"rrule": rrule, "mode": "skip_conflicts"},
    }


async def test_a_series_of_a_million_occurrences_is_refused_quickly(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    office = tokens("office")
    room = await town.room(await town.venue())
    for rrule in (
        "FREQ=SECONDLY;COUNT=1000000",
        "FREQ=MINUTELY;UNTIL=30260101T000000Z",
        "FREQ=SECONDLY;UNTIL=30260101T000000",
        "FREQ=YEARLY;COUNT=1000000;BYMONTH=2;BYMONTHDAY=29",
    ):
        body = _series(room, rrule)
        problem = await refused(booking.post("/v1/bookings", json=body, headers=office), {422})
        assert problem["code"] in {"invalid_rrule", "too_many_occurrences"}, problem
    assert (await booking.get("/v1/bookings", headers=office)).json()["items"] == []


async def test_a_series_until_the_end_of_time_is_refused(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    office = tokens("office")
    room = await town.room(await town.venue())
    body = _series(room, "FREQ=MINUTELY;UNTIL=99991231T235959Z")
    problem = await refused(booking.post("/v1/bookings", json=body, headers=office), {422})
    assert problem["code"] in {"invalid_rrule", "too_many_occurrences"}, problem
    assert (await booking.get("/v1/bookings", headers=office)).json()["items"] == []


async def test_availability_over_a_thousand_years_is_refused(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    office = tokens("office")
    room = await town.room(await town.venue())
    span = {"from": _at(1, 0), "to": _at(1 + 365_000, 0)}
    for path in (f"/v1/resources/{room}/availability", "/v1/availability"):
        await refused(booking.get(path, params=span, headers=office), {422}, "range_too_long")
    widest = {"from": "0001-01-01T00:00:00+00:00", "to": "9999-12-31T23:59:59+00:00"}
    await refused(
        booking.get(f"/v1/resources/{room}/availability", params=widest, headers=office),
        {422},
        "range_too_long",
    )


async def test_a_booking_of_centuries_is_refused_quickly(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    office = tokens("office")
    room = await town.room(await town.venue())
    # Centuries, not a thousand years: enough to show the cost (seconds, growing faster than the
    # years: a thousand take a minute) without paying it all.
    centuries = {"resource_ids": [room], "start": _at(3, 10), "end": _at(3 + 250 * 365, 10)}
    answer = await refused(
        booking.post("/v1/bookings", json={**centuries, "purpose": "百年"}, headers=office), {422}
    )
    assert answer["code"] in {"too_long", "range_too_long"}, answer
    assert (await booking.get("/v1/bookings", headers=office)).json()["items"] == []


async def test_booking_refuses_nul_and_long_strings(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    office = tokens("office")
    room = await town.room(await town.venue())
    body = {"resource_ids": [room], "start": _at(3, 10), "end": _at(3, 11), "purpose": "书法课"}
    for change in ({"purpose": "书法\x00课"}, {"purpose": "长" * 300_000}):
        await refused(
            booking.post("/v1/bookings", json={**body, **change}, headers=office), {400, 422}
        )
    assert (await booking.get("/v1/bookings", headers=office)).json()["items"] == []


async def test_booking_answers_a_control_character_in_a_resource_id_with_a_problem(
    booking: Client, tokens: Tokens
) -> None:
    office = tokens("office")
    await refused(booking.get("/v1/resources/a%0Eb/calendar.ics", headers=office), {404, 422})
    body = {
        "resource_ids": ["a\x0eb"],
        "start": _at(3, 10),
        "end": _at(3, 11),
        "purpose": "书法课",
    }
    await refused(booking.post("/v1/bookings", json=body, headers=office), {400, 404, 422})


# ---------------------------------------------------------------------------------------------
# Lecturers


async def test_lecturers_refuse_hostile_bodies(lecturers: Client, tokens: Tokens) -> None:
    office = tokens("office")

    async def no_lecturer() -> None:
        assert (await lecturers.get("/v1/lecturers", headers=office)).json()["items"] == []

    await assert_hostile_bodies_refused(lecturers, "/v1/lecturers", office, no_lecturer)


async def test_lecturers_refuse_nul_long_strings_and_ids_that_are_no_uuid(
    lecturers: Client, tokens: Tokens
) -> None:
    office = tokens("office")
    lecturer = {
        "name": "王老师",
        "topics": ["law"],
        "area_id": "00000000-0000-7000-8000-000000000000",
        "availability": [{"weekdays": [1], "start": "18:00", "end": "21:00"}],
    }
    for change in (
        {"name": "王\x00老师"},
        {"name": "长" * 300_000},
        {"topics": ["la\x00w"]},
        {"email": "a\x00@b.c"},
        # an id goes into the URL of the call to the registry: nothing but a UUID may
        {"area_id": "../../v1/venues/0000-0000-0000-000000"},
        {"area_id": "00000000-0000-7000-8000-00000000000\x0e"},
        {"area_id": "00000000-0000-7000-8000-000000000000\n"},
    ):
        problem = await refused(
            lecturers.post("/v1/lecturers", json={**lecturer, **change}, headers=office),
            {400, 422},
            "invalid_request",
        )
        assert problem["errors"], problem
    assert (await lecturers.get("/v1/lecturers", headers=office)).json()["items"] == []


async def test_lecture_months_a_thousand_years_away_are_refused(
    lecturers: Client, tokens: Tokens
) -> None:
    office = tokens("office")
    far = f"{datetime.now(UTC).year + 1000}-01"
    request = {
        "venue_id": "00000000-0000-7000-8000-000000000000",
        "topic": "law",
        "programme": "citizen",
    }
    for month in (far, "9999-12"):
        await refused(
            lecturers.post("/v1/requests", json={**request, "month": month}, headers=office),
            {422},
            "month_too_far",
        )
        await refused(
            lecturers.post("/v1/matching/runs", json={"month": month}, headers=office),
            {422},
            "month_too_far",
        )
    for month in ("0000-01", "2027-03\n", "2027-13"):
        await refused(
            lecturers.post("/v1/matching/runs", json={"month": month}, headers=office),
            {400, 422},
            "invalid_request",
        )
    # Two years ahead is still a plan; a month in range is not refused for being far.
    soon = next_month(datetime.now(UTC).date())
    accepted = await lecturers.post(
        "/v1/matching/runs", json={"month": f"{soon:%Y-%m}"}, headers=office
    )
    assert accepted.status_code == 202, accepted.text
    assert (await lecturers.get("/v1/requests", headers=office)).json()["items"] == []


# ---------------------------------------------------------------------------------------------
# No token at all


async def test_requests_without_a_token_leave_no_error_behind(
    registry: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        for _ in range(10):
            await refused(registry.get("/v1/areas"), {401}, "unauthenticated")
        gc.collect()
        await asyncio.sleep(0.05)
    assert [record.getMessage()[:80] for record in caplog.records] == []
