"""Utilisation reports and the heatmap through HTTP, on SQLite and PostgreSQL, against figures
worked out by hand. The registry process is shared by every test of the session, so each test
builds its own area and organisation and asks about those only."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import httpx
from litestar.testing import AsyncTestClient

from services.booking.catalogue.store import ResourceRow
from shared.ids import new_id
from tests.conftest import Tokens, database_of
from tests.service.conftest import ALL_WEEK, Town, hours_change_handled

Client = AsyncTestClient  # type: ignore[type-arg]
SHANGHAI = ZoneInfo("Asia/Shanghai")
TOKYO = ZoneInfo("Asia/Tokyo")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def lone_holiday(today: date) -> date:
    """The next Chinese public holiday with five ordinary days before it, far enough ahead that
    those days can still be booked (a report's figures then never depend on today's date)."""
    calendar = holidays.country_holidays("CN", years=[today.year, today.year + 1])
    for ahead in range(7, 85):
        day = today + timedelta(days=ahead)
        if day in calendar and not any(day - timedelta(days=n) in calendar for n in range(1, 6)):
            return day
    raise AssertionError("no lone holiday ahead")  # pragma: no cover - CN has one every quarter


HOLIDAY = lone_holiday(datetime.now(SHANGHAI).date())
EVE = HOLIDAY - timedelta(days=1)


def at(day: date, hour: int, minute: int = 0, zone: ZoneInfo = SHANGHAI) -> str:
    return datetime.combine(day, time(hour, minute), tzinfo=zone).isoformat()


def hours(start: str = "09:00", end: str = "17:00") -> dict[str, Any]:
    """Open every day, closed on the CN public holidays."""
    return {
        "periods": [
            {
                "name": "all year",
                "start_date": "2026-01-01",
                "spans": [{"weekdays": ALL_WEEK, "start": start, "end": end}],
            }
        ],
        "public_holidays": "closed",
    }


class City:
    """Areas, venues and rooms of one test in the shared registry, each organisation its own."""

    def __init__(self, town: Town) -> None:
        self.http = town.http
        self.org = f"org-{uuid.uuid4().hex[:12]}"

    async def area(self, name: str, parent: str | None = None) -> str:
        response = await self.http.post("/v1/areas", json={"name": name, "parent_id": parent})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def venue(
        self,
        area: str,
        name: str,
        *,
        kind: str = "citizen_school",
        org: str | None = None,
        timezone: str = "Asia/Shanghai",
    ) -> str:
        body = {
            "name": name,
            "kind": kind,
            "area_id": area,
            "owner_org": org or self.org,
            "timezone": timezone,
        }
        venue = (await self.http.post("/v1/venues", json=body)).json()["id"]
        put = await self.http.put(f"/v1/venues/{venue}/opening-hours", json=hours())
        assert put.status_code == 200, put.text
        return str(venue)

    async def room(self, venue: str, name: str) -> str:
        body = {"name": name, "type": "room", "capacity": 40}
        response = await self.http.post(f"/v1/venues/{venue}/resources", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


async def book(
    client: Client, tokens: Tokens, room: str, start: str, end: str, **more: Any
) -> dict[str, Any]:
    body = {"resource_ids": [room], "start": start, "end": end, "purpose": "课程", **more}
    response = await client.post("/v1/bookings", json=body, headers=tokens("community_manager"))
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def report(
    client: Client, headers: dict[str, Any], start: str, end: str, **params: str
) -> httpx.Response:
    return await client.get(
        "/v1/reports/utilisation", params={"from": start, "to": end, **params}, headers=headers
    )


def rows_by_key(response: httpx.Response) -> dict[str | None, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {row["key"]: row for row in response.json()["items"]}


COLUMNS = [
    "key",
    "label",
    "open_hours",
    "booked_hours",
    "utilisation",
    "bookings",
    "attendees",
    "attended",
]


def figures(row: dict[str, Any]) -> tuple[Any, ...]:
    """The row's numbers, in the order of its columns."""
    return tuple(row[name] for name in COLUMNS[2:])


async def eve_scenario(client: Client, town: Town, tokens: Tokens) -> dict[str, str]:
    """One venue, two rooms open 09:00-17:00 daily and closed on HOLIDAY. On EVE room one is
    booked 10:00-14:00 (citizen, 20 people), room two 13:00-15:00 (elderly, 10 people) and
    15:00-17:00 (cancelled); the day after the holiday room one 09:00-11:00 (no programme)."""
    city = City(town)
    area = await city.area("街道")
    venue = await city.venue(area, "市民学校")
    one = await city.room(venue, "教室一")
    two = await city.room(venue, "多功能厅")
    await book(client, tokens, one, at(EVE, 10), at(EVE, 14), programme="citizen", attendees=20)
    await book(client, tokens, two, at(EVE, 13), at(EVE, 15), programme="elderly", attendees=10)
    cancelled = await book(client, tokens, two, at(EVE, 15), at(EVE, 17), programme="youth")
    after = HOLIDAY + timedelta(days=1)
    await book(client, tokens, one, at(after, 9), at(after, 11))
    response = await client.post(
        f"/v1/bookings/{cancelled['id']}/cancel", headers=tokens("community_manager")
    )
    assert response.status_code == 200, response.text
    return {"area": area, "venue": venue, "one": one, "two": two, "org": city.org}


# Utilisation


async def test_booked_hours_are_confirmed_time_inside_the_range_and_the_hours(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    made = await eve_scenario(booking, town, tokens)
    office = tokens("office")
    # From EVE noon to the end of the holiday: EVE gives 5 open hours a room, the holiday none.
    rows = rows_by_key(
        await report(
            booking,
            office,
            at(EVE, 12),
            at(HOLIDAY + timedelta(days=1), 0),
            group_by="resource",
            area_id=made["area"],
        )
    )
    # Room one: 10:00-14:00 crosses the range's start, 2 h count. Room two: 13:00-15:00; the
    # cancelled 15:00-17:00 counts for nothing.
    assert figures(rows[made["one"]]) == (5, 2, 0.4, 1, 20, 0)
    assert figures(rows[made["two"]]) == (5, 2, 0.4, 1, 10, 0)
    assert rows[made["one"]]["label"] == "教室一"
    # To EVE 13:00 (from two days before): 8 + 4 open hours; 10:00-14:00 crosses the end: 3 h.
    rows = rows_by_key(
        await report(
            booking,
            office,
            at(EVE - timedelta(days=1), 0),
            at(EVE, 13),
            group_by="venue",
            area_id=made["area"],
        )
    )
    assert figures(rows[made["venue"]]) == (24, 3, 0.125, 1, 20, 0)
    assert rows[made["venue"]]["label"] == "市民学校"


async def test_programmes_share_the_open_time_of_the_whole_scope(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    made = await eve_scenario(booking, town, tokens)
    # EVE and the day after the holiday: 2 rooms x 2 days x 8 h = 32 open hours.
    span = (at(EVE, 0), at(HOLIDAY + timedelta(days=2), 0))
    manager = tokens("venue_manager", made["org"])
    rows = rows_by_key(await report(booking, manager, *span, group_by="programme"))
    assert figures(rows["citizen"]) == (32, 4, 0.125, 1, 20, 0)
    assert figures(rows["elderly"]) == (32, 2, 0.0625, 1, 10, 0)
    assert figures(rows[None]) == (32, 2, 0.0625, 1, 0, 0)
    assert rows[None]["label"] == "no programme"
    assert "youth" not in rows  # only cancelled
    kinds = rows_by_key(await report(booking, manager, *span, group_by="kind"))
    assert figures(kinds["citizen_school"]) == (32, 8, 0.25, 3, 30, 0)


async def test_an_area_totals_its_whole_subtree(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    city = City(town)
    district = await city.area("区")
    street = await city.area("街道", district)
    community = await city.area("社区", street)
    other_street = await city.area("另一街道", district)
    rooms = [
        await city.room(await city.venue(area, name), "教室")
        for area, name in (
            (street, "街道学校"),
            (community, "社区学校"),
            (other_street, "老年大学"),
        )
    ]
    for room, hour in zip(rooms, (9, 10, 11), strict=True):
        await book(booking, tokens, room, at(EVE, hour), at(EVE, hour + 2), attendees=5)
    rows = rows_by_key(
        await report(
            booking, tokens("office"), at(EVE, 0), at(HOLIDAY, 0), group_by="area", area_id=street
        )
    )
    # The street holds its own venue and the community's: 2 rooms x 8 h, 4 h booked.
    assert set(rows) == {street, community}
    assert figures(rows[street]) == (16, 4, 0.25, 2, 10, 0)
    assert figures(rows[community]) == (8, 2, 0.25, 1, 5, 0)
    assert rows[community]["label"] == "社区"
    everything = rows_by_key(
        await report(
            booking, tokens("office"), at(EVE, 0), at(HOLIDAY, 0), group_by="area", area_id=district
        )
    )
    assert figures(everything[district]) == (24, 6, 0.25, 3, 15, 0)
    assert figures(everything[other_street]) == (8, 2, 0.25, 1, 5, 0)


async def test_hours_that_shrink_under_a_booking_leave_only_its_part_inside_them(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    city = City(town)
    area = await city.area("街道")
    venue = await city.venue(area, "文化中心", kind="cultural_centre")
    room = await city.room(venue, "排练厅")
    made = await book(booking, tokens, room, at(EVE, 14), at(EVE, 16))
    span = (at(EVE, 0), at(HOLIDAY, 0))
    office = tokens("office")
    before = rows_by_key(await report(booking, office, *span, group_by="venue", area_id=area))
    assert figures(before[venue]) == (8, 2, 0.25, 1, 0, 0)
    put = await town.http.put(f"/v1/venues/{venue}/opening-hours", json=hours("09:00", "15:00"))
    assert put.status_code == 200, put.text
    await hours_change_handled(booking, venue)
    async with database_of(booking, "booking") as database, database.read() as session:
        projected = await session.get(ResourceRow, room)
    # The worker read the new hours into the replica itself, at the new generation.
    assert projected is not None
    assert (projected.generation, projected.hours_generation) == (1, 1)
    flagged = (await booking.get(f"/v1/bookings/{made['id']}", headers=office)).json()
    assert flagged["outside_opening_hours"] is True
    after = rows_by_key(await report(booking, office, *span, group_by="venue", area_id=area))
    # Open 09:00-15:00 now; of 14:00-16:00 only 14:00-15:00 lies inside.
    assert figures(after[venue]) == (6, 1, 0.1667, 1, 0, 0)


async def test_csv_has_a_bom_crlf_a_header_and_chinese_names(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    made = await eve_scenario(booking, town, tokens)
    response = await report(
        booking,
        tokens("office"),
        at(EVE, 12),
        at(HOLIDAY, 0),
        group_by="resource",
        area_id=made["area"],
        format="csv",
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert disposition == f'attachment; filename="utilisation-by-resource-{EVE}-{HOLIDAY}.csv"'
    body = response.content
    assert body.startswith(b"\xef\xbb\xbf")
    assert body.count(b"\r\n") == 3
    assert b"\n" not in body.replace(b"\r\n", b"")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    assert rows[0] == COLUMNS
    assert sorted(rows[1:]) == sorted(
        [
            [made["one"], "教室一", "5", "2", "0.4", "1", "20", "0"],
            [made["two"], "多功能厅", "5", "2", "0.4", "1", "10", "0"],
        ]
    )


# The heatmap


async def test_heatmap_cells_use_each_venue_s_own_local_hours(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    city = City(town)
    area = await city.area("新区")
    shanghai = await city.room(await city.venue(area, "上海学校"), "教室")
    tokyo = await city.room(await city.venue(area, "东京学校", timezone="Asia/Tokyo"), "教室")
    await book(booking, tokens, shanghai, at(EVE, 13, 30), at(EVE, 15))
    await book(booking, tokens, tokyo, at(EVE, 10, zone=TOKYO), at(EVE, 11, zone=TOKYO))
    response = await booking.get(
        "/v1/reports/heatmap",
        params={"from": at(EVE, 0), "to": at(HOLIDAY + timedelta(days=1), 0), "area_id": area},
        headers=tokens("venue_manager", city.org),
    )
    assert response.status_code == 200, response.text
    matrix = response.json()["matrix"]
    assert len(matrix) == 7
    assert all(len(row) == 24 for row in matrix)
    eve = matrix[EVE.isoweekday() - 1]
    # Both rooms are open 09:00-17:00 on their own clocks, so each hour holds 2 open hours.
    assert eve[10] == 0.5  # Tokyo's 10:00-11:00
    assert eve[13] == 0.25  # Shanghai's 13:30-14:00
    assert eve[14] == 0.5  # Shanghai's 14:00-15:00
    assert sum(eve) == 1.25
    assert matrix[HOLIDAY.isoweekday() - 1] == [0.0] * 24


# Who may ask, and what


async def test_a_venue_manager_sees_its_own_venues_and_no_one_else_s(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    city = City(town)
    area = await city.area("街道")
    mine = await city.venue(area, "我的学校")
    theirs = await city.venue(area, "别人的学校", org=f"other-{city.org}")
    for venue in (mine, theirs):
        await book(booking, tokens, await city.room(venue, "教室"), at(EVE, 9), at(EVE, 10))
    span = (at(EVE, 0), at(HOLIDAY, 0))
    manager = tokens("venue_manager", city.org)
    assert set(rows_by_key(await report(booking, manager, *span, area_id=area))) == {mine}
    office = rows_by_key(await report(booking, tokens("office"), *span, area_id=area))
    assert set(office) == {mine, theirs}
    refused = await report(booking, manager, *span, venue_id=theirs)
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "forbidden"
    for role in ("community_manager", "lecturer"):
        headers = tokens(role, city.org, lecturer_id=new_id() if role == "lecturer" else None)
        response = await report(booking, headers, *span)
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "forbidden"
    picture = await booking.get(
        "/v1/reports/heatmap",
        params={"from": span[0], "to": span[1], "venue_id": mine, "format": "png"},
        headers=manager,
    )
    assert picture.status_code == 200, picture.text
    assert picture.headers["content-type"] == "image/png"
    assert picture.content.startswith(PNG_MAGIC)


async def test_bad_report_requests_are_problems_with_a_code(
    booking: Client, tokens: Tokens
) -> None:
    office = tokens("office")
    span = (at(EVE, 0), at(HOLIDAY, 0))
    for params, field in (
        ({"group_by": "colour"}, "group_by"),
        ({"format": "xlsx"}, "format"),
        ({"venue_id": new_id(), "area_id": new_id()}, "area_id"),
    ):
        response = await report(booking, office, *span, **params)
        assert response.status_code in (400, 422), response.text
        problem = response.json()
        assert problem["code"] == "invalid_request"
        assert any(error["field"] == field for error in problem["errors"]), problem
    backwards = await report(booking, office, span[1], span[0])
    assert backwards.status_code == 422
    assert backwards.json()["code"] == "invalid_request"
    naive = await report(booking, office, "2027-01-01T00:00:00", span[1])
    assert naive.status_code in (400, 422)
    too_long = await report(booking, office, at(EVE, 0), at(EVE + timedelta(days=400), 0))
    assert too_long.json()["code"] == "range_too_long"
    unknown = await report(booking, office, *span, area_id=new_id())
    assert unknown.status_code == 404
