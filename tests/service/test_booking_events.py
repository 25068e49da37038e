"""What a booking tells about itself, read and announced: who booked it (`booked_by`), whether it
is a hold, and its `version`, raised by every change and carried by the change's event; its events
also carry the venue's owner and zone, for notify. On SQLite and PostgreSQL, through every way a
booking is written: one statement on the driver's connection (the office on PostgreSQL), the
request's transaction (a community manager, a retried create, a series), the moves after and the
worker's flags; and the bookings a database held before (migration 0003)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from services.booking import store
from services.booking.domain.bookings import Status
from shared.contracts import BookingChanged
from shared.db import connect
from shared.events import Event, decode
from shared.migrations import upgrade
from tests.conftest import (
    Tokens,
    create_postgres_database,
    database_of,
    drop_postgres_database,
)
from tests.service.conftest import (
    BOOKING,
    Town,
    hours_change_handled,
    moved_into_the_past,
    open_every_day,
)
from tests.service.test_booking import at, booking_body, day_ahead

Client = AsyncTestClient  # type: ignore[type-arg]
ZONE = "Asia/Shanghai"


async def outbox_events(client: Client) -> list[Event]:
    async with database_of(client, "booking") as database, database.read() as session:
        payloads = await session.scalars(
            select(store.tables.outbox.c.payload).order_by(store.tables.outbox.c.seq)
        )
        return [decode(payload) for payload in payloads]


def announced(booking: dict[str, Any], **more: Any) -> dict[str, Any]:
    """The data every `booking.*` event carries for `booking` as read (plus `more`)."""
    return {
        "id": booking["id"],
        "venue_id": booking["venue_id"],
        "resource_ids": booking["resource_ids"],
        "start": booking["start"],
        "end": booking["end"],
        "status": booking["status"],
        "org": booking["org"],
        "owner_org": "org-v",
        "booked_by": booking["booked_by"],
        "hold": booking["hold"],
        "purpose": booking["purpose"],
        "version": booking["version"],
        "timezone": ZONE,
        "actor": "",
        "reason": None,
        **more,
    }


async def booked_by_booker(client: Client, tokens: Tokens, body: dict[str, Any]) -> dict[str, Any]:
    """A booking made by a community manager whose token's `sub` is "booker"."""
    response = await client.post(
        "/v1/bookings", json=body, headers=tokens("community_manager", sub="booker")
    )
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def read(client: Client, tokens: Tokens, booking_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/bookings/{booking_id}", headers=tokens("office"))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


@pytest.mark.parametrize(
    # A community manager books in the request's transaction; the office, on PostgreSQL, in one
    # statement on the driver's connection (SQLite: the transaction, both).
    ("role", "org"),
    [("community_manager", "org-a"), ("office", "org-office")],
)
async def test_a_booking_says_who_booked_it_and_its_created_event_tells_it_all(
    booking: Client, town: Town, tokens: Tokens, role: str, org: str
) -> None:
    room = await town.room(await town.venue())
    headers = tokens(role, org, sub="user-17")
    response = await booking.post(
        "/v1/bookings", json=booking_body(room, at(18), at(20)), headers=headers
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["booked_by"], made["hold"], made["version"]) == ("user-17", False, 1)
    assert made["org"] == org
    assert await read(booking, tokens, made["id"]) == made
    (event,) = await outbox_events(booking)
    assert event.type == "booking.created"
    assert event.data == announced(made)
    assert event.data["start"] == at(18)  # in the venue's zone, as the read shape
    # The consumers' contract reads it, instants and all.
    changed = msgspec.convert(event.data, BookingChanged, strict=False)
    assert changed.start == datetime.fromisoformat(at(18))
    assert (changed.owner_org, changed.booked_by, changed.version) == ("org-v", "user-17", 1)


async def test_a_hold_is_marked_and_left_out_of_the_approval_queue(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue(), requires_approval=True)
    asked = await booking.post(
        "/v1/bookings",
        json=booking_body(room, at(10), at(11)),
        headers=tokens("community_manager", sub="asker"),
    )
    held = await booking.post(
        "/v1/bookings",
        json=booking_body(room, at(14), at(15), hold=True, org="org-v"),
        headers=tokens("office", sub="lecturers"),
    )
    assert asked.status_code == held.status_code == 201, (asked.text, held.text)
    asked_for, hold = asked.json(), held.json()
    assert (asked_for["hold"], asked_for["status"]) == (False, "pending")
    assert (hold["hold"], hold["status"], hold["booked_by"]) == (True, "pending", "lecturers")
    manager = tokens("venue_manager", "org-v")

    async def listed(**params: Any) -> list[str]:
        response = await booking.get("/v1/bookings", params=params, headers=manager)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await listed(status="pending", hold="false") == [asked_for["id"]]
    assert await listed(hold="true") == [hold["id"]]
    assert sorted(await listed(status="pending")) == sorted([asked_for["id"], hold["id"]])
    created = [event.data for event in await outbox_events(booking)]
    assert created == [announced(asked_for), announced(hold)]
    assert created[1]["hold"] is True


async def test_each_change_raises_the_version_and_its_event_carries_the_new_one(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue(), requires_approval=True)
    made = await booked_by_booker(booking, tokens, booking_body(room, at(18), at(20)))
    assert (made["status"], made["version"]) == ("pending", 1)
    approved = await booking.post(
        f"/v1/bookings/{made['id']}/approve", headers=tokens("venue_manager", "org-v")
    )
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["version"]) == ("confirmed", 2)
    # The approver changed it; it is still the booker's booking.
    assert approved.json()["booked_by"] == "booker"
    await moved_into_the_past(booking, made["id"])
    attended = await booking.post(
        f"/v1/bookings/{made['id']}/attendance",
        json={"attended": 12},
        headers=tokens("community_manager"),
    )
    assert attended.status_code == 200, attended.text
    assert attended.json()["version"] == 3
    now = await read(booking, tokens, made["id"])
    assert now == attended.json()
    events = await outbox_events(booking)
    assert [(event.type, event.data["version"]) for event in events] == [
        ("booking.created", 1),
        ("booking.confirmed", 2),
        ("booking.attended", 3),
    ]
    assert events[1].data == announced(approved.json(), actor="venue")
    assert events[2].data == announced(now, attended=12)


@pytest.mark.parametrize(
    ("move", "announcement"), [("cancel", "booking.cancelled"), ("reject", "booking.rejected")]
)
async def test_an_ending_raises_the_version_once_and_says_so(
    booking: Client, town: Town, tokens: Tokens, move: str, announcement: str
) -> None:
    room = await town.room(await town.venue(), requires_approval=True)
    made = await booked_by_booker(booking, tokens, booking_body(room, at(18), at(20)))
    path = f"/v1/bookings/{made['id']}/{move}"
    ended = await booking.post(path, json={"reason": "维修"}, headers=tokens("office"))
    assert ended.status_code == 200, ended.text
    assert ended.json()["version"] == 2
    again = await booking.post(path, headers=tokens("office"))
    assert again.status_code == 409
    assert (await read(booking, tokens, made["id"]))["version"] == 2
    events = await outbox_events(booking)
    assert [event.type for event in events] == ["booking.created", announcement]
    assert events[1].data == announced(ended.json(), actor="office", reason="维修")


@pytest.mark.parametrize(
    ("role", "org", "sub", "actor"),
    [
        ("community_manager", "org-a", "booker", "booker"),
        ("community_manager", "org-a", "colleague", "booker"),
        ("venue_manager", "org-v", "manager", "venue"),
        ("office", "org-office", "clerk", "office"),
    ],
)
async def test_a_cancel_says_who_cancelled(
    booking: Client, town: Town, tokens: Tokens, role: str, org: str, sub: str, actor: str
) -> None:
    room = await town.room(await town.venue())
    made = await booked_by_booker(booking, tokens, booking_body(room, at(18), at(20)))
    ended = await booking.post(
        f"/v1/bookings/{made['id']}/cancel", headers=tokens(role, org, sub=sub)
    )
    assert ended.status_code == 200, ended.text
    events = await outbox_events(booking)
    assert [event.type for event in events] == ["booking.created", "booking.cancelled"]
    assert events[1].data == announced(ended.json(), actor=actor)
    told = msgspec.convert(events[1].data, BookingChanged, strict=False)
    assert (told.actor, told.reason) == (actor, None)


async def test_a_replayed_create_does_not_raise_the_version(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    headers = {**tokens("community_manager", sub="retrier"), "Idempotency-Key": "k-version"}
    body = booking_body(room, at(18), at(20))
    first = await booking.post("/v1/bookings", json=body, headers=headers)
    again = await booking.post("/v1/bookings", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert first.json() == again.json()
    assert (first.json()["booked_by"], first.json()["version"]) == ("retrier", 1)
    assert (await read(booking, tokens, first.json()["id"]))["version"] == 1
    events = await outbox_events(booking)
    assert [event.data for event in events] == [announced(first.json())]


async def test_a_series_and_its_cancel_carry_booker_and_versions(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    room = await town.room(await town.venue())
    series = {"rrule": "FREQ=WEEKLY;COUNT=2", "mode": "all_or_nothing"}
    made = await booking.post(
        "/v1/bookings",
        json=booking_body(room, at(18), at(19), series=series),
        headers=tokens("community_manager", sub="teacher"),
    )
    assert made.status_code == 201, made.text
    booked = made.json()["bookings"]
    assert [(b["booked_by"], b["version"]) for b in booked] == [("teacher", 1)] * 2
    cancelled = await booking.delete(
        f"/v1/series/{made.json()['series_id']}", headers=tokens("community_manager")
    )
    assert cancelled.status_code == 200, cancelled.text
    ended = cancelled.json()["cancelled"]
    assert [(b["status"], b["booked_by"], b["version"]) for b in ended] == [
        ("cancelled", "teacher", 2)
    ] * 2
    events = await outbox_events(booking)
    assert [event.data for event in events] == [
        *(announced(b) for b in booked),
        *(announced(b, actor="booker", reason="series cancelled") for b in ended),
    ]


async def test_a_booking_newly_outside_the_hours_is_announced_with_its_new_version(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    venue = await town.venue()
    room = await town.room(venue)
    late = day_ahead(4)
    made = await booked_by_booker(
        booking, tokens, booking_body(room, at(18, day=late), at(21, day=late))
    )
    shrunk = await town.http.put(
        f"/v1/venues/{venue}/opening-hours", json=open_every_day("08:00", "20:00")
    )
    assert shrunk.status_code == 200, shrunk.text
    await hours_change_handled(booking, venue)
    flagged = await read(booking, tokens, made["id"])
    assert (flagged["outside_opening_hours"], flagged["version"]) == (True, 2)
    events = await outbox_events(booking)
    assert events[-1].type == "booking.outside_opening_hours"
    assert events[-1].data == announced(flagged)


async def test_the_openapi_document_shows_the_new_fields_and_the_hold_filter(
    booking: Client,
) -> None:
    doc = (await booking.get("/schema/openapi.json")).json()
    shape = doc["components"]["schemas"]["Booking"]
    assert {"booked_by", "hold", "version"} <= set(shape["required"])
    assert shape["properties"]["version"]["type"] == "integer"
    listing = doc["paths"]["/v1/bookings"]["get"]
    assert "hold" in {parameter["name"] for parameter in listing["parameters"]}


@pytest.mark.parametrize(
    # SQLite has one writer: no move can come between the worker's listing and its flagging.
    "booking_db",
    ["postgresql"],
    indirect=True,
)
@pytest.mark.parametrize(
    ("move", "flagged", "version"), [("approve", True, 3), ("cancel", False, 2)]
)
async def test_a_flag_after_a_concurrent_move_raises_the_version_that_move_left(
    booking: Client, town: Town, tokens: Tokens, move: str, flagged: bool, version: int
) -> None:
    """The worker lists the bookings a closure covers, then a manager moves one before the worker
    flags it: the flag must not write over that move's version (nor flag a cancelled booking)."""
    room = await town.room(await town.venue(), requires_approval=True)
    made = await booked_by_booker(booking, tokens, booking_body(room, at(18), at(20)))
    now = datetime.now(UTC)
    async with database_of(booking, "booking") as database, database.write() as worker:
        listed = await store.future_bookings_of(worker, [room], now)
        assert [(row.id, row.version) for row in listed] == [(made["id"], 1)]
        moved = await booking.post(
            f"/v1/bookings/{made['id']}/{move}", headers=tokens("venue_manager", "org-v")
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["version"] == 2
        newly = await store.flag_outside_hours(worker, {made["id"]: True}, now=now)
    assert newly == ([made["id"]] if flagged else [])
    after = await read(booking, tokens, made["id"])
    assert (after["status"], after["outside_opening_hours"]) == (moved.json()["status"], flagged)
    assert after["version"] == version
    versions = [(event.type, event.data["version"]) for event in await outbox_events(booking)]
    assert versions == [
        ("booking.created", 1),
        (f"booking.{'confirmed' if move == 'approve' else 'cancelled'}", 2),
        *([("booking.outside_opening_hours", 3)] if flagged else []),
    ]


def bookings_before_0003() -> sa.Table:
    """`bookings` as migration 0002 left it: `created_by`, and no `version`."""
    return sa.Table(
        "bookings",
        sa.MetaData(),
        *(
            sa.Column("created_by" if column.name == "booked_by" else column.name, column.type)
            for column in store.BookingRow.__table__.columns
            if column.name != "version"
        ),
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_the_migration_keeps_each_booking_its_booker_and_starts_it_at_version_1(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'booking.db'}"
    else:
        server = request.getfixturevalue("postgres_server_url")
        url = await create_postgres_database(server, "test_booking_0003")
    database = connect(url)
    try:
        await asyncio.to_thread(upgrade, BOOKING, url, "0002")
        start = datetime.now(UTC) + timedelta(days=3)
        async with database.write() as session:
            await session.execute(
                bookings_before_0003().insert(),
                {
                    "id": "b-before",
                    "org": "org-a",
                    "venue_id": "v-1",
                    "venue_org": "org-v",
                    "timezone": ZONE,
                    "resource_ids": ["r-1"],
                    "start_at": start,
                    "end_at": start + timedelta(hours=2),
                    "status": "confirmed",
                    "purpose": "书法课",
                    "programme": None,
                    "attendees": None,
                    "attended": None,
                    "series_id": None,
                    "hold": False,
                    "override_hours": False,
                    "outside_opening_hours": False,
                    "reason": None,
                    "created_by": "user-before",
                    "created_at": start - timedelta(days=7),
                    "updated_at": start - timedelta(days=7),
                },
            )
            await session.execute(
                sa.insert(store.SlotRow),
                {
                    "booking_id": "b-before",
                    "resource_id": "r-1",
                    "start_at": start,
                    "end_at": start + timedelta(hours=2),
                    "blocked_from": start,
                    "blocked_until": start + timedelta(hours=2),
                    "live": True,
                },
            )
        await asyncio.to_thread(upgrade, BOOKING, url)
        async with database.write() as session:
            row = await store.get_booking_row(session, "b-before", lock=True)
            assert (row.booked_by, row.version) == ("user-before", 1)
            # Its slot is still there (a copy of the table would have cascaded it away).
            slots = await session.scalars(
                select(store.SlotRow.resource_id).where(store.SlotRow.booking_id == "b-before")
            )
            assert list(slots) == ["r-1"]
            cancelled = await store.set_status(
                session, row, Status.CANCELLED, reason=None, actor="office", now=datetime.now(UTC)
            )
            assert (cancelled.booked_by, cancelled.version) == ("user-before", 2)
            # The models describe the migrated database exactly.
            connection = await session.connection()
            drift = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync, opts={"compare_type": True, "compare_server_default": True}
                    ),
                    store.Base.metadata,
                )
            )
            assert drift == []
        async with database.read() as session:
            (payload,) = await session.scalars(select(store.tables.outbox.c.payload))
        event = decode(payload)
        assert (event.type, event.data["booked_by"], event.data["version"]) == (
            "booking.cancelled",
            "user-before",
            2,
        )
    finally:
        await database.dispose()
        if kind == "postgresql":
            await drop_postgres_database(server, url)
