"""The registry through HTTP: every endpoint, every error code, roles, hostile input, the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from services.registry import store
from services.registry.worker import on_booking
from shared.db import Database
from shared.events import Event, decode
from tests.conftest import Tokens, database_of
from tests.service.conftest import open_every_day

Client = AsyncTestClient  # type: ignore[type-arg]

TERM_HOURS: dict[str, Any] = {
    "periods": [
        {
            "name": "term",
            "start_date": "2026-09-01",
            "end_date": "2027-01-20",
            "spans": [
                {"weekdays": [1, 2, 3, 4, 5], "start": "18:00", "end": "21:00"},
                {"weekdays": [6, 7], "start": "08:30", "end": "17:00"},
            ],
        },
        {"name": "exam week", "start_date": "2027-01-11", "end_date": "2027-01-15", "closed": True},
    ],
    "public_holidays": "closed",
}


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def fields_of(problem: dict[str, Any]) -> set[str]:
    return {error["field"] for error in problem.get("errors", [])}


async def make_area(
    client: Client, tokens: Tokens, name: str = "城关镇", parent: str | None = None
) -> str:
    response = await client.post(
        "/v1/areas", json={"name": name, "parent_id": parent}, headers=tokens("office")
    )
    assert response.status_code == 201, response.text
    area_id: str = response.json()["id"]
    return area_id


async def make_venue(
    client: Client, tokens: Tokens, area_id: str, *, org: str = "org-a", **extra: Any
) -> dict[str, Any]:
    body = {"name": "城关第一小学", "kind": "school", "area_id": area_id, "owner_org": org, **extra}
    response = await client.post("/v1/venues", json=body, headers=tokens("venue_manager", org))
    assert response.status_code == 201, response.text
    venue: dict[str, Any] = response.json()
    return venue


async def make_resource(
    client: Client, tokens: Tokens, venue_id: str, *, org: str = "org-a", **extra: Any
) -> dict[str, Any]:
    body = {"name": "多功能教室", "type": "room", "capacity": 40, **extra}
    response = await client.post(
        f"/v1/venues/{venue_id}/resources", json=body, headers=tokens("venue_manager", org)
    )
    assert response.status_code == 201, response.text
    resource: dict[str, Any] = response.json()
    return resource


async def outbox_events(client: Client) -> list[Event]:
    async with database_of(client, "registry") as database, database.read() as session:
        payloads = await session.scalars(
            select(store.tables.outbox.c.payload).order_by(store.tables.outbox.c.seq)
        )
        return [decode(payload) for payload in payloads]


# Health and the contract's plumbing


async def test_health_and_openapi_need_no_token(registry: Client) -> None:
    assert (await registry.get("/health/live")).json()["status"] == "ok"
    ready = await registry.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    schema = await registry.get("/schema/openapi.json")
    assert schema.status_code == 200
    assert "/v1/venues" in schema.json()["paths"]


async def test_reads_need_a_valid_token(registry: Client, tokens: Tokens) -> None:
    assert_problem(await registry.get("/v1/venues"), 401, "unauthenticated")
    assert_problem(
        await registry.get("/v1/venues", headers={"Authorization": "Bearer nonsense"}),
        401,
        "unauthenticated",
    )
    assert (
        await registry.get("/v1/venues", headers=tokens("lecturer", lecturer_id="l1"))
    ).status_code == 200


async def test_unknown_path_is_a_problem_not_a_page(registry: Client, tokens: Tokens) -> None:
    assert_problem(await registry.get("/v1/nothing", headers=tokens("office")), 404, "not_found")


# Areas


async def test_areas_form_a_tree_and_subtree_queries_find_nested_venues(
    registry: Client, tokens: Tokens
) -> None:
    city = await make_area(registry, tokens, "县城")
    town = await make_area(registry, tokens, "城关镇", city)
    community = await make_area(registry, tokens, "东门社区", town)
    other_town = await make_area(registry, tokens, "河口镇", city)
    deep = await make_venue(registry, tokens, community)
    await make_venue(registry, tokens, other_town, name="河口中学")

    in_town = (
        await registry.get("/v1/venues", params={"area_id": town}, headers=tokens("office"))
    ).json()
    assert [venue["id"] for venue in in_town["items"]] == [deep["id"]]
    in_city = (
        await registry.get("/v1/venues", params={"area_id": city}, headers=tokens("office"))
    ).json()
    assert len(in_city["items"]) == 2

    children = (
        await registry.get("/v1/areas", params={"parent_id": city}, headers=tokens("office"))
    ).json()
    assert {area["id"] for area in children["items"]} == {town, other_town}


async def test_only_office_creates_areas(registry: Client, tokens: Tokens) -> None:
    response = await registry.post("/v1/areas", json={"name": "x"}, headers=tokens("venue_manager"))
    assert_problem(response, 403, "forbidden")


async def test_area_with_unknown_parent_is_not_found(registry: Client, tokens: Tokens) -> None:
    response = await registry.post(
        "/v1/areas",
        json={"name": "x", "parent_id": "00000000-0000-0000-0000-000000000000"},
        headers=tokens("office"),
    )
    assert_problem(response, 404, "not_found")
    assert await outbox_events(registry) == []


async def test_lists_page_with_a_cursor(registry: Client, tokens: Tokens) -> None:
    created = [await make_area(registry, tokens, f"社区{i}") for i in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await registry.get("/v1/areas", params=params, headers=tokens("office"))).json()
        seen += [area["id"] for area in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == created
    assert_problem(
        await registry.get("/v1/areas", params={"limit": 501}, headers=tokens("office")),
        400,
        "invalid_request",
    )
    assert_problem(
        await registry.get("/v1/areas", params={"cursor": "%%%"}, headers=tokens("office")),
        422,
        "invalid_request",
    )


# Venues


async def test_venue_round_trips_chinese_text_and_defaults(
    registry: Client, tokens: Tokens
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(
        registry, tokens, area, address="城关镇人民路88号", location={"lat": 29.1, "lon": 119.6}
    )
    assert venue["timezone"] == "Asia/Shanghai"
    assert venue["holiday_calendar"] == "CN"
    fetched = (
        await registry.get(f"/v1/venues/{venue['id']}", headers=tokens("community_manager"))
    ).json()
    assert fetched["name"] == "城关第一小学"
    assert fetched["address"] == "城关镇人民路88号"
    assert fetched["location"] == {"lat": 29.1, "lon": 119.6}


async def test_venue_manager_creates_only_for_its_own_org(registry: Client, tokens: Tokens) -> None:
    area = await make_area(registry, tokens)
    body = {"name": "x", "kind": "school", "area_id": area, "owner_org": "org-b"}
    assert_problem(
        await registry.post("/v1/venues", json=body, headers=tokens("venue_manager", "org-a")),
        403,
        "forbidden",
    )
    assert_problem(
        await registry.post("/v1/venues", json=body, headers=tokens("community_manager", "org-b")),
        403,
        "forbidden",
    )


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"kind": "castle"}, 400, "invalid_request", "kind"),
        ({"name": 42}, 400, "invalid_request", "name"),
        ({"name": "x" * 10_000}, 400, "invalid_request", "name"),
        ({"name": "a\u0000b"}, 400, "invalid_request", "name"),
        ({"timezone": "Mars/Olympus"}, 422, "invalid_timezone", "timezone"),
        ({"timezone": "../../etc/passwd"}, 422, "invalid_timezone", "timezone"),
        ({"holiday_calendar": "XX"}, 422, "invalid_holiday_calendar", "holiday_calendar"),
        ({"location": {"lat": 91, "lon": 0}}, 400, "invalid_request", "location.lat"),
        ({"surprise": True}, 400, "invalid_request", "surprise"),
    ],
)
async def test_bad_venue_input_is_refused_with_its_field_and_nothing_stored(
    registry: Client, tokens: Tokens, change: dict[str, Any], status: int, code: str, field: str
) -> None:
    area = await make_area(registry, tokens)
    body = {"name": "x", "kind": "school", "area_id": area, "owner_org": "org-a", **change}
    problem = assert_problem(
        await registry.post("/v1/venues", json=body, headers=tokens("office")), status, code
    )
    assert field in fields_of(problem) or field in problem["detail"]
    listed = (await registry.get("/v1/venues", headers=tokens("office"))).json()
    assert listed["items"] == []


async def test_malformed_json_is_invalid_request(registry: Client, tokens: Tokens) -> None:
    response = await registry.post(
        "/v1/venues",
        content=b'{"name": "x",',
        headers={**tokens("office"), "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "invalid_request")


async def test_oversized_body_is_413(registry: Client, tokens: Tokens) -> None:
    response = await registry.post(
        "/v1/areas",
        content=b'{"name": "' + b"x" * 2_000_000 + b'"}',
        headers={**tokens("office"), "Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_venue_list_filters_by_kind_and_text(registry: Client, tokens: Tokens) -> None:
    area = await make_area(registry, tokens)
    school = await make_venue(registry, tokens, area, name="实验小学")
    centre = await make_venue(registry, tokens, area, name="文化中心", kind="cultural_centre")
    by_kind = (
        await registry.get(
            "/v1/venues", params={"kind": "cultural_centre"}, headers=tokens("office")
        )
    ).json()
    assert [venue["id"] for venue in by_kind["items"]] == [centre["id"]]
    by_text = (
        await registry.get("/v1/venues", params={"q": "实验"}, headers=tokens("office"))
    ).json()
    assert [venue["id"] for venue in by_text["items"]] == [school["id"]]
    other = await make_venue(registry, tokens, area, name="老年大学", kind="elderly_university")
    by_id = (
        await registry.get(
            "/v1/venues", params={"id": [school["id"], other["id"]]}, headers=tokens("office")
        )
    ).json()
    assert {venue["id"] for venue in by_id["items"]} == {school["id"], other["id"]}
    assert_problem(
        await registry.get("/v1/venues", params={"kind": "castle"}, headers=tokens("office")),
        400,
        "invalid_request",
    )


async def test_venue_manager_patches_own_venue_but_not_another_orgs(
    registry: Client, tokens: Tokens
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area, org="org-a")
    patched = await registry.patch(
        f"/v1/venues/{venue['id']}",
        json={"address": "新地址"},
        headers=tokens("venue_manager", "org-a"),
    )
    assert patched.status_code == 200
    assert patched.json()["address"] == "新地址"
    assert patched.json()["name"] == venue["name"]
    assert_problem(
        await registry.patch(
            f"/v1/venues/{venue['id']}",
            json={"address": "x"},
            headers=tokens("venue_manager", "org-b"),
        ),
        403,
        "forbidden",
    )
    assert_problem(
        await registry.patch(
            f"/v1/venues/{venue['id']}",
            json={"owner_org": "org-c"},
            headers=tokens("venue_manager", "org-a"),
        ),
        403,
        "forbidden",
    )
    handed_over = await registry.patch(
        f"/v1/venues/{venue['id']}", json={"owner_org": "org-c"}, headers=tokens("office")
    )
    assert handed_over.json()["owner_org"] == "org-c"


async def test_patch_can_clear_an_optional_field(registry: Client, tokens: Tokens) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area, address="旧地址")
    cleared = await registry.patch(
        f"/v1/venues/{venue['id']}", json={"address": None}, headers=tokens("office")
    )
    assert cleared.json()["address"] is None


async def test_missing_venue_is_not_found(registry: Client, tokens: Tokens) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert_problem(
        await registry.get(f"/v1/venues/{missing}", headers=tokens("office")), 404, "not_found"
    )
    assert_problem(
        await registry.delete(f"/v1/venues/{missing}", headers=tokens("office")), 404, "not_found"
    )


async def test_venue_with_future_bookings_cannot_be_deleted(
    registry: Client, tokens: Tokens
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area)
    room = await make_resource(registry, tokens, venue["id"])
    booking = tomorrows_booking(
        "11111111-1111-1111-1111-111111111111", venue["id"], room["id"], "confirmed"
    )
    await deliver(registry, "booking.created", booking)

    assert_problem(
        await registry.delete(f"/v1/resources/{room['id']}", headers=tokens("office")),
        409,
        "resource_in_use",
    )
    assert_problem(
        await registry.delete(f"/v1/venues/{venue['id']}", headers=tokens("office")),
        409,
        "venue_in_use",
    )

    await deliver(registry, "booking.cancelled", booking)
    assert (
        await registry.delete(f"/v1/venues/{venue['id']}", headers=tokens("office"))
    ).status_code == 204
    assert_problem(
        await registry.get(f"/v1/resources/{room['id']}", headers=tokens("office")),
        404,
        "not_found",
    )
    types = [event.type for event in await outbox_events(registry)]
    assert types[-2:] == ["resource.deleted", "venue.deleted"]


async def test_a_cancellation_arriving_before_its_creation_still_frees_the_venue(
    registry: Client, tokens: Tokens
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area)
    room = await make_resource(registry, tokens, venue["id"])
    booking = tomorrows_booking(
        "22222222-2222-2222-2222-222222222222", venue["id"], room["id"], "cancelled"
    )
    await deliver(registry, "booking.cancelled", booking)
    await deliver(registry, "booking.created", booking)
    assert (
        await registry.delete(f"/v1/venues/{venue['id']}", headers=tokens("office"))
    ).status_code == 204


def tomorrows_booking(booking_id: str, venue_id: str, room_id: str, status: str) -> dict[str, Any]:
    """The data of a `booking.*` event for a two-hour booking tomorrow."""
    start = datetime.now(UTC) + timedelta(days=1)
    return {
        "id": booking_id,
        "venue_id": venue_id,
        "resource_ids": [room_id],
        "start": start.isoformat(),
        "end": (start + timedelta(hours=2)).isoformat(),
        "status": status,
        "org": "org-z",
    }


async def deliver(client: Client, event_type: str, data: dict[str, Any]) -> None:
    """Hand an event to the registry's consumer as its worker would."""
    from shared.ids import new_id
    from shared.outbox import handle_once

    event = Event(
        id=new_id(), type=event_type, source="booking", occurred_at=datetime.now(UTC), data=data
    )
    async with database_of(client, "registry") as database:
        assert await handle_once(database, store.tables, event, {event_type: on_booking})
        # The same event again changes nothing.
        assert not await handle_once(database, store.tables, event, {event_type: on_booking})


# Resources


async def test_resource_create_normalises_features_and_applies_rule_defaults(
    registry: Client, tokens: Tokens
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area)
    room = await make_resource(
        registry, tokens, venue["id"], features=["Projector", " wifi", "projector"]
    )
    assert room["features"] == ["projector", "wifi"]
    assert room["rules"] == {
        "min_minutes": 30,
        "max_minutes": 240,
        "lead_minutes": 0,
        "horizon_days": 90,
        "buffer_minutes": 0,
        "slot_minutes": 15,
    }
    assert room["requires_approval"] is False


async def test_contradictory_rules_are_refused(registry: Client, tokens: Tokens) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area)
    response = await registry.post(
        f"/v1/venues/{venue['id']}/resources",
        json={"name": "x", "type": "room", "rules": {"min_minutes": 300, "max_minutes": 60}},
        headers=tokens("office"),
    )
    problem = assert_problem(response, 422, "invalid_request")
    assert "rules.min_minutes" in fields_of(problem)
    negative = await registry.post(
        f"/v1/venues/{venue['id']}/resources",
        json={"name": "x", "type": "room", "capacity": -1},
        headers=tokens("office"),
    )
    assert "capacity" in fields_of(assert_problem(negative, 400, "invalid_request"))


async def test_resource_filters(registry: Client, tokens: Tokens) -> None:
    city = await make_area(registry, tokens, "县城")
    town = await make_area(registry, tokens, "城关镇", city)
    other = await make_area(registry, tokens, "河口镇", city)
    venue = await make_venue(registry, tokens, town)
    far = await make_venue(registry, tokens, other, name="河口中学")
    big = await make_resource(
        registry, tokens, venue["id"], name="礼堂", capacity=200, features=["stage", "projector"]
    )
    small = await make_resource(
        registry, tokens, venue["id"], name="音乐教室", capacity=30, features=["piano"]
    )
    cart = await make_resource(
        registry, tokens, venue["id"], name="笔记本电脑车", type="equipment", capacity=None
    )
    far_room = await make_resource(
        registry, tokens, far["id"], name="阶梯教室", capacity=120, features=["projector"]
    )

    async def ids(**params: Any) -> set[str]:
        page = (
            await registry.get("/v1/resources", params=params, headers=tokens("community_manager"))
        ).json()
        return {resource["id"] for resource in page["items"]}

    assert await ids(venue_id=venue["id"]) == {big["id"], small["id"], cart["id"]}
    assert await ids(venue_id=[venue["id"], far["id"]], min_capacity=100) == {
        big["id"],
        far_room["id"],
    }
    assert await ids(type="equipment") == {cart["id"]}
    assert await ids(min_capacity=100) == {big["id"], far_room["id"]}
    assert await ids(feature="projector") == {big["id"], far_room["id"]}
    assert await ids(feature=["projector", "stage"]) == {big["id"]}
    assert await ids(area_id=town) == {big["id"], small["id"], cart["id"]}
    assert await ids(area_id=city, feature="PROJECTOR", min_capacity=150) == {big["id"]}


async def test_resource_patch_and_delete_follow_the_venue_owner(
    registry: Client, tokens: Tokens
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area, org="org-a")
    room = await make_resource(registry, tokens, venue["id"])
    assert_problem(
        await registry.post(
            f"/v1/venues/{venue['id']}/resources",
            json={"name": "x", "type": "room"},
            headers=tokens("venue_manager", "org-b"),
        ),
        403,
        "forbidden",
    )
    assert_problem(
        await registry.patch(
            f"/v1/resources/{room['id']}",
            json={"capacity": 5},
            headers=tokens("venue_manager", "org-b"),
        ),
        403,
        "forbidden",
    )
    patched = await registry.patch(
        f"/v1/resources/{room['id']}",
        json={"capacity": 50, "features": ["whiteboard"], "rules": {"buffer_minutes": 15}},
        headers=tokens("venue_manager", "org-a"),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["capacity"] == 50
    assert patched.json()["features"] == ["whiteboard"]
    assert patched.json()["rules"]["buffer_minutes"] == 15
    assert_problem(
        await registry.delete(
            f"/v1/resources/{room['id']}", headers=tokens("venue_manager", "org-b")
        ),
        403,
        "forbidden",
    )
    assert (
        await registry.delete(
            f"/v1/resources/{room['id']}", headers=tokens("venue_manager", "org-a")
        )
    ).status_code == 204


# Opening hours


async def test_opening_hours_round_trip_and_resolve_in_the_venue_zone(
    registry: Client, tokens: Tokens
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area)
    room = await make_resource(registry, tokens, venue["id"])
    put = await registry.put(
        f"/v1/venues/{venue['id']}/opening-hours", json=TERM_HOURS, headers=tokens("venue_manager")
    )
    assert put.status_code == 200, put.text
    got = (
        await registry.get(
            f"/v1/venues/{venue['id']}/opening-hours", headers=tokens("lecturer", lecturer_id="l")
        )
    ).json()
    assert got["periods"][0]["spans"][0] == {
        "weekdays": [1, 2, 3, 4, 5],
        "start": "18:00",
        "end": "21:00",
    }
    assert got["periods"][1]["closed"] is True
    assert got["public_holidays"] == "closed"

    # Tuesday 2026-12-01 to Thursday 2026-12-03, asked in UTC: answered in +08:00.
    intervals = (
        await registry.get(
            f"/v1/resources/{room['id']}/open-intervals",
            params={"from": "2026-12-01T00:00:00Z", "to": "2026-12-03T00:00:00Z"},
            headers=tokens("community_manager"),
        )
    ).json()["items"]
    assert intervals == [
        {"start": "2026-12-01T18:00:00+08:00", "end": "2026-12-01T21:00:00+08:00"},
        {"start": "2026-12-02T18:00:00+08:00", "end": "2026-12-02T21:00:00+08:00"},
    ]


async def test_national_day_is_closed_and_the_make_up_saturday_is_open(
    registry: Client, tokens: Tokens
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area)
    await registry.put(
        f"/v1/venues/{venue['id']}/opening-hours",
        json={
            "periods": [
                {
                    "name": "term",
                    "start_date": "2026-09-01",
                    "spans": [{"weekdays": [1, 2, 3, 4, 5], "start": "18:00", "end": "21:00"}],
                }
            ],
        },
        headers=tokens("office"),
    )
    intervals = (
        await registry.get(
            f"/v1/venues/{venue['id']}/open-intervals",
            params={"from": "2026-09-30T00:00:00+08:00", "to": "2026-10-12T00:00:00+08:00"},
            headers=tokens("office"),
        )
    ).json()["items"]
    days = [item["start"][:10] for item in intervals]
    assert days == ["2026-09-30", "2026-10-08", "2026-10-09", "2026-10-10"]


async def test_resource_hours_replace_the_venues_until_withdrawn(
    registry: Client, tokens: Tokens
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area)
    room = await make_resource(registry, tokens, venue["id"])
    await registry.put(
        f"/v1/venues/{venue['id']}/opening-hours", json=TERM_HOURS, headers=tokens("office")
    )
    inherited = (
        await registry.get(f"/v1/resources/{room['id']}/opening-hours", headers=tokens("office"))
    ).json()
    assert inherited["source"] == "venue"
    own = {
        "periods": [
            {
                "name": "always",
                "start_date": "2026-01-01",
                "spans": [{"weekdays": [1], "start": "09:00", "end": "10:00"}],
            }
        ]
    }
    assert (
        await registry.put(
            f"/v1/resources/{room['id']}/opening-hours", json=own, headers=tokens("office")
        )
    ).status_code == 200
    assert (
        await registry.get(f"/v1/resources/{room['id']}/opening-hours", headers=tokens("office"))
    ).json()["source"] == "resource"
    week = {"from": "2026-11-30T00:00:00+08:00", "to": "2026-12-07T00:00:00+08:00"}
    intervals = (
        await registry.get(
            f"/v1/resources/{room['id']}/open-intervals", params=week, headers=tokens("office")
        )
    ).json()["items"]
    assert intervals == [{"start": "2026-11-30T09:00:00+08:00", "end": "2026-11-30T10:00:00+08:00"}]
    assert (
        await registry.delete(f"/v1/resources/{room['id']}/opening-hours", headers=tokens("office"))
    ).status_code == 204
    intervals = (
        await registry.get(
            f"/v1/resources/{room['id']}/open-intervals", params=week, headers=tokens("office")
        )
    ).json()["items"]
    assert len(intervals) == 7


async def test_open_intervals_of_many_resources_at_once_match_each_ones_own(
    registry: Client, tokens: Tokens
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area)
    closed = await make_venue(registry, tokens, area, name="没有开放时间的学校")
    rooms = [await make_resource(registry, tokens, venue["id"], name=f"教室{n}") for n in range(3)]
    dark = await make_resource(registry, tokens, closed["id"])
    await registry.put(
        f"/v1/venues/{venue['id']}/opening-hours", json=TERM_HOURS, headers=tokens("office")
    )
    own = {
        "periods": [
            {
                "name": "mondays",
                "start_date": "2026-01-01",
                "spans": [{"weekdays": [1], "start": "09:00", "end": "10:00"}],
            }
        ]
    }
    await registry.put(
        f"/v1/resources/{rooms[0]['id']}/opening-hours", json=own, headers=tokens("office")
    )
    week = {"from": "2026-11-30T00:00:00+08:00", "to": "2026-12-07T00:00:00+08:00"}
    asked = [room["id"] for room in [*rooms, dark]] + ["0190c0de-0000-7000-8000-000000000000"]
    many = await registry.get(
        "/v1/open-intervals",
        params={**week, "resource_id": asked},
        headers=tokens("community_manager"),
    )
    assert many.status_code == 200, many.text
    found = {item["resource_id"]: item["items"] for item in many.json()["items"]}
    assert found.keys() == {room["id"] for room in [*rooms, dark]}  # the unknown one left out
    for resource_id, intervals in found.items():
        one = await registry.get(
            f"/v1/resources/{resource_id}/open-intervals", params=week, headers=tokens("office")
        )
        assert intervals == one.json()["items"]
    assert len(found[rooms[0]["id"]]) == 1
    assert len(found[rooms[1]["id"]]) == 7
    assert found[dark["id"]] == []
    assert_problem(
        await registry.get("/v1/open-intervals", params=week, headers=tokens("office")),
        400,
        "invalid_request",
    )
    assert_problem(
        await registry.get(
            "/v1/open-intervals",
            params={**week, "resource_id": [rooms[1]["id"]] * 101},
            headers=tokens("office"),
        ),
        400,
        "invalid_request",
    )


@pytest.mark.parametrize("calendar", ["MN", "KH"])
async def test_a_day_at_new_year_is_open_the_same_whatever_window_it_is_asked_in(
    registry: Client, tokens: Tokens, calendar: str
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area, holiday_calendar=calendar)
    daily = open_every_day("08:00", "22:00") | {"public_holidays": "closed"}
    await registry.put(
        f"/v1/venues/{venue['id']}/opening-hours", json=daily, headers=tokens("office")
    )

    async def open_between(start: str, end: str) -> list[dict[str, str]]:
        answer = await registry.get(
            f"/v1/venues/{venue['id']}/open-intervals",
            params={"from": f"{start}T00:00:00+08:00", "to": f"{end}T00:00:00+08:00"},
            headers=tokens("office"),
        )
        items: list[dict[str, str]] = answer.json()["items"]
        return items

    december = await open_between("2028-12-01", "2029-01-01")
    for day, following in [("2028-12-30", "2028-12-31"), ("2028-12-31", "2029-01-01")]:
        alone = await open_between(day, following)
        assert alone == [item for item in december if item["start"].startswith(day)]


async def test_a_venue_without_hours_is_never_open(registry: Client, tokens: Tokens) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area)
    response = await registry.get(
        f"/v1/venues/{venue['id']}/open-intervals",
        params={"from": "2026-12-01T00:00:00+08:00", "to": "2026-12-02T00:00:00+08:00"},
        headers=tokens("office"),
    )
    assert response.json() == {"items": []}


async def test_open_intervals_in_a_dst_zone(registry: Client, tokens: Tokens) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(
        registry, tokens, area, timezone="Europe/Berlin", holiday_calendar="DE"
    )
    await registry.put(
        f"/v1/venues/{venue['id']}/opening-hours",
        json={
            "periods": [
                {
                    "name": "all",
                    "start_date": "2026-01-01",
                    "spans": [{"weekdays": [6, 7], "start": "18:00", "end": "21:00"}],
                }
            ],
            "public_holidays": "open",
        },
        headers=tokens("office"),
    )
    intervals = (
        await registry.get(
            f"/v1/venues/{venue['id']}/open-intervals",
            params={"from": "2026-10-24T00:00:00Z", "to": "2026-10-26T00:00:00Z"},
            headers=tokens("office"),
        )
    ).json()["items"]
    assert intervals == [
        {"start": "2026-10-24T18:00:00+02:00", "end": "2026-10-24T21:00:00+02:00"},
        {"start": "2026-10-25T18:00:00+01:00", "end": "2026-10-25T21:00:00+01:00"},
    ]


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        (
            {"from": "2026-12-01T00:00:00", "to": "2026-12-02T00:00:00+08:00"},
            "invalid_request",
            "from",
        ),
        (
            {"from": "2026-12-02T00:00:00+08:00", "to": "2026-12-01T00:00:00+08:00"},
            "invalid_request",
            "to",
        ),
        (
            {"from": "2026-01-01T00:00:00+08:00", "to": "2027-06-01T00:00:00+08:00"},
            "range_too_long",
            "to",
        ),
    ],
)
async def test_bad_open_interval_ranges_are_refused(
    registry: Client, tokens: Tokens, params: dict[str, str], code: str, field: str
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area)
    problem = assert_problem(
        await registry.get(
            f"/v1/venues/{venue['id']}/open-intervals", params=params, headers=tokens("office")
        ),
        422,
        code,
    )
    assert field in fields_of(problem)


def one_period(span: dict[str, Any] | None = None, **period: Any) -> dict[str, Any]:
    """Hours of one term-like period, with the span and period fields given replaced."""
    good_span = {"weekdays": [1], "start": "18:00", "end": "21:00"}
    base = {"name": "t", "start_date": "2026-09-01", "spans": [{**good_span, **(span or {})}]}
    return {"periods": [{**base, **period}]}


@pytest.mark.parametrize(
    ("hours", "field"),
    [
        (one_period(end_date="2026-08-01"), "periods[0].end_date"),
        (one_period({"weekdays": [8]}), "periods"),
        (one_period({"start": "25:00"}), "periods"),
        (one_period({"end": "18:00"}), "periods[0].spans[0]"),
        ({**one_period(), "public_holidays": "sometimes"}, "public_holidays"),
    ],
)
async def test_bad_opening_hours_are_refused_and_the_old_ones_kept(
    registry: Client, tokens: Tokens, hours: dict[str, Any], field: str
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area)
    await registry.put(
        f"/v1/venues/{venue['id']}/opening-hours", json=TERM_HOURS, headers=tokens("office")
    )
    response = await registry.put(
        f"/v1/venues/{venue['id']}/opening-hours", json=hours, headers=tokens("office")
    )
    assert response.status_code in (400, 422), response.text
    problem = response.json()
    assert problem["code"] == "invalid_request"
    assert any(error["field"].startswith(field) for error in problem["errors"]), problem
    kept = (
        await registry.get(f"/v1/venues/{venue['id']}/opening-hours", headers=tokens("office"))
    ).json()
    assert kept["periods"][0]["name"] == "term"


async def test_ten_thousand_periods_are_refused_quickly(registry: Client, tokens: Tokens) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area)
    period = {
        "name": "p",
        "start_date": "2026-09-01",
        "spans": [{"weekdays": [1], "start": "18:00", "end": "21:00"}],
    }
    body = msgspec.json.encode({"periods": [period] * 10_000})
    started = datetime.now(UTC)
    response = await registry.put(
        f"/v1/venues/{venue['id']}/opening-hours",
        content=body,
        headers={**tokens("office"), "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 413), response.text
    assert datetime.now(UTC) - started < timedelta(seconds=2)
    assert (
        await registry.get(f"/v1/venues/{venue['id']}/opening-hours", headers=tokens("office"))
    ).json()["periods"] == []


async def test_opening_hours_belong_to_the_venue_owner(registry: Client, tokens: Tokens) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area, org="org-a")
    room = await make_resource(registry, tokens, venue["id"])
    for path in (
        f"/v1/venues/{venue['id']}/opening-hours",
        f"/v1/resources/{room['id']}/opening-hours",
    ):
        assert_problem(
            await registry.put(path, json=TERM_HOURS, headers=tokens("venue_manager", "org-b")),
            403,
            "forbidden",
        )
        assert_problem(
            await registry.put(path, json=TERM_HOURS, headers=tokens("community_manager", "org-a")),
            403,
            "forbidden",
        )


# Idempotency and the outbox


async def test_idempotent_create_returns_the_first_response(
    registry: Client, tokens: Tokens
) -> None:
    area = await make_area(registry, tokens)
    body = {"name": "x", "kind": "school", "area_id": area, "owner_org": "org-a"}
    headers = {**tokens("office"), "Idempotency-Key": "retry-1"}
    first = await registry.post("/v1/venues", json=body, headers=headers)
    again = await registry.post("/v1/venues", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    listed = (await registry.get("/v1/venues", headers=tokens("office"))).json()["items"]
    assert len(listed) == 1
    reused = await registry.post("/v1/venues", json={**body, "name": "y"}, headers=headers)
    assert_problem(reused, 422, "idempotency_key_reused")


async def test_every_change_writes_its_event_and_a_failed_change_writes_none(
    registry: Client, tokens: Tokens
) -> None:
    area = await make_area(registry, tokens)
    venue = await make_venue(registry, tokens, area)
    room = await make_resource(registry, tokens, venue["id"])
    await registry.put(
        f"/v1/venues/{venue['id']}/opening-hours", json=TERM_HOURS, headers=tokens("office")
    )
    await registry.patch(
        f"/v1/resources/{room['id']}", json={"capacity": 12}, headers=tokens("office")
    )
    events = await outbox_events(registry)
    assert [event.type for event in events] == [
        "area.created",
        "venue.created",
        "resource.created",
        "opening_hours.changed",
        "resource.updated",
    ]
    assert events[2].data["id"] == room["id"]
    assert events[3].data == {"venue_id": venue["id"], "resource_id": None}

    refused = await registry.put(
        f"/v1/venues/{venue['id']}/opening-hours",
        json={
            "periods": [
                {"name": "t", "start_date": "2026-09-01", "end_date": "2026-01-01", "closed": True}
            ]
        },
        headers=tokens("office"),
    )
    assert refused.status_code == 422
    assert len(await outbox_events(registry)) == 5


async def test_an_event_and_its_change_share_one_transaction(
    registry: Client, tokens: Tokens
) -> None:
    """A change that fails after its event was recorded leaves neither the row nor the event."""
    from services.registry.domain.catalogue import AreaCreate

    async def fail_after_writing(database: Database) -> None:
        async with database.write() as session:
            await store.create_area(
                session, area_id="a" * 36, data=AreaCreate(name="x"), now=datetime.now(UTC)
            )
            raise RuntimeError("the request failed after the write")

    async with database_of(registry, "registry") as database:
        with pytest.raises(RuntimeError):
            await fail_after_writing(database)
        async with database.read() as session:
            assert await session.scalar(select(func.count()).select_from(store.AreaRow)) == 0
            assert await session.scalar(select(func.count()).select_from(store.tables.outbox)) == 0
