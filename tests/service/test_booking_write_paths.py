"""The write paths `store.book` keeps cannot drift apart: PostgreSQL's statement alone (a booking
in autocommit), the same statement inside a transaction (a series' occurrence, in a savepoint),
and SQLite's checks then inserts take the same cases, give the same answers and leave the same
rows: slots, weekly shares and charges."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from services.booking import store
from services.booking.catalogue import store as catalogue
from services.booking.domain import fair_use, halls
from services.booking.domain.bookings import Status
from services.booking.domain.halls import Room
from shared.db import Database, connect
from shared.errors import ServiceError
from shared.events import decode
from shared.idempotency import Keyed, Replay
from shared.ids import new_id
from shared.time import Interval
from tests.conftest import Tokens, migrated_database
from tests.service.conftest import BOOKING, Town, registry_event_handled
from tests.service.test_booking import at as at_hour
from tests.service.test_booking import booking_body

SHANGHAI = ZoneInfo("Asia/Shanghai")
VENUE = "venue-1"
GENERATION = 2
SHARE = 3 * 3600
# Rooms: two plain ones, and a hall of two halves.
ROOMS = {
    "room-1": Room("room-1", None, (), 0),
    "room-2": Room("room-2", None, (), 15),
    "hall": Room("hall", None, ("hall-east", "hall-west"), 0),
    "hall-east": Room("hall-east", "hall", (), 0),
    "hall-west": Room("hall-west", "hall", (), 0),
}
# 2027-03-01 is a Monday.
MONDAY = datetime(2027, 3, 1, tzinfo=SHANGHAI)
PATHS = ("postgresql alone", "postgresql in a transaction", "sqlite")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


def attempt(name: str, room: str, start: datetime, end: datetime, org: str) -> store.Attempt:
    """A booking with a stable id, so that each path's rows compare as they are."""
    now = datetime(2027, 2, 1, tzinfo=UTC)
    row = store.NewBooking(
        id=f"booking-{name}",
        org=org,
        venue_id=VENUE,
        venue_org="school",
        timezone="Asia/Shanghai",
        resource_ids=[room],
        start_at=start.astimezone(UTC),
        end_at=end.astimezone(UTC),
        status=Status.CONFIRMED.value,
        purpose=name,
        programme=None,
        attendees=None,
        series_id=None,
        hold=False,
        override_hours=False,
        booked_by=f"sub-{org}",
        created_at=now,
        updated_at=now,
    )
    interval = Interval(start, end)
    plans = [
        store.SlotPlan(
            claim.resource_id,
            Interval(
                start - timedelta(minutes=claim.buffer_minutes),
                end + timedelta(minutes=claim.buffer_minutes),
            ),
            claim.reach,
        )
        for claim in halls.claims([ROOMS[room]], ROOMS)
    ]
    return store.Attempt(row, plans, fair_use.charges(interval, SHANGHAI))


def filler(case: store.Attempt) -> store.Attempt:
    """A booking apart from every case (a room of its own, another organisation), so that a
    series of it and the case takes the in-transaction path without changing the case."""
    row = msgspec.structs.replace(
        case.row, id=f"filler-{new_id()}", org="org-filler", resource_ids=["filler-room"]
    )
    plans = [store.SlotPlan(row.id, Interval(case.row.start_at, case.row.end_at))]
    # A second of a week far off: every filler together stays well inside the share.
    return store.Attempt(row, plans, [fair_use.WeekCharge(date(2030, 1, 7), 1)])


async def book(
    database: Database,
    path: str,
    case: store.Attempt,
    *,
    share: int | None = SHARE,
    generation: int = GENERATION,
    keyed: Keyed | None = None,
) -> Any:
    """The case's outcome on `path`, as plain values."""
    series = path == "postgresql in a transaction"
    attempts = [filler(case), case] if series else [case]

    def answer(made: store.Made) -> msgspec.Struct:
        return store.booking_of(made.booked[-1])

    try:
        outcome = await store.book(
            database,
            attempts,
            generation=generation,
            share_seconds=share,
            all_or_nothing=False,
            keyed=keyed,
            answer=answer,
        )
    except store.Stale:
        return "stale"
    except ServiceError as exc:
        return ("refused", exc.status, exc.code)
    if isinstance(outcome, Replay):
        return ("replayed", outcome.status, msgspec.json.decode(outcome.body)["id"])
    made_ids = [row.id for row in outcome.booked if not row.id.startswith("filler-")]
    return (
        made_ids,
        [
            (
                item.code,
                sorted({slot[0] for slot in item.in_the_way}),
                str(item.week),
                item.held_seconds,
            )
            for item in outcome.refused
        ],
    )


async def rows(database: Database) -> dict[str, Any]:
    """What the bookings left, the filler's own rows apart."""
    async with database.read() as session:
        slots = await session.execute(
            select(
                store.SlotRow.booking_id,
                store.SlotRow.resource_id,
                store.SlotRow.blocked_from,
                store.SlotRow.blocked_until,
                store.SlotRow.live,
                store.SlotRow.reach,
            ).where(store.SlotRow.booking_id.not_like("filler-%"))
        )
        weekly = await session.execute(
            select(
                store.WeeklyHoursRow.org, store.WeeklyHoursRow.week, store.WeeklyHoursRow.seconds
            ).where(store.WeeklyHoursRow.org != "org-filler")
        )
        charges = await session.execute(
            select(store.ChargeRow.booking_id, store.ChargeRow.week, store.ChargeRow.seconds).where(
                store.ChargeRow.booking_id.not_like("filler-%")
            )
        )
        events = [
            decode(payload)
            for payload in await session.scalars(select(store.tables.outbox.c.payload))
        ]
        return {
            "slots": sorted(
                tuple(row) for row in slots if not row.resource_id.startswith("filler-")
            ),
            "weekly": sorted((org, str(week), seconds) for org, week, seconds in weekly if seconds),
            "charges": sorted((b, str(w), s) for b, w, s in charges),
            "events": sorted(
                (event.type, event.data["id"])
                for event in events
                if not event.data["id"].startswith("filler-")
            ),
        }


CASES: list[tuple[str, Callable[[], store.Attempt], dict[str, Any], Any]] = [
    # name, the attempt, how it is made, what every path answers
    ("fits", lambda: attempt("a", "room-1", at(0, 8), at(0, 10), "org-x"), {}, (["booking-a"], [])),
    (
        "overlaps",
        lambda: attempt("b", "room-1", at(0, 9), at(0, 11), "org-y"),
        {},
        ([], [("conflict", ["booking-a"], "None", 0)]),
    ),
    (
        "touches, and fills the share exactly",
        lambda: attempt("c", "room-1", at(0, 10), at(0, 11), "org-x"),
        {},
        (["booking-c"], []),
    ),
    (
        "passes the share",
        lambda: attempt("d", "room-2", at(1, 11), at(1, 11, 30), "org-x"),
        {},
        ([], [("fair_use_exceeded", [], "2027-03-01", SHARE)]),
    ),
    (
        "is not held to the share",
        lambda: attempt("e", "room-2", at(1, 8), at(1, 9), "org-x"),
        {"share": None},
        (["booking-e"], []),
    ),
    (
        "keeps its buffer",
        lambda: attempt("f", "room-2", at(1, 9, 10), at(1, 10), "org-y"),
        {},
        ([], [("conflict", ["booking-e"], "None", 0)]),
    ),
    (
        "books a hall",
        lambda: attempt("g", "hall", at(2, 8), at(2, 9), "org-z"),
        {},
        (["booking-g"], []),
    ),
    (
        "asks for half of the booked hall",
        lambda: attempt("h", "hall-east", at(2, 8, 30), at(2, 9, 30), "org-w"),
        {},
        ([], [("conflict", ["booking-g"], "None", 0)]),
    ),
    (
        "books the other half after it",
        lambda: attempt("i", "hall-west", at(2, 9), at(2, 10), "org-w"),
        {},
        (["booking-i"], []),
    ),
    (
        "stands on old hours",
        lambda: attempt("j", "room-1", at(3, 8), at(3, 9), "org-y"),
        {"generation": GENERATION - 1},
        "stale",
    ),
    (
        "crosses into a week whose share is full",
        lambda: attempt("k", "room-1", at(-1, 23), at(0, 1), "org-x"),
        {},
        # `e` counts though it was not held to the share: four hours.
        ([], [("fair_use_exceeded", [], "2027-03-01", SHARE + 3600)]),
    ),
    (
        "crosses weeks within the share",
        lambda: attempt("l", "room-1", at(6, 23), at(7, 1), "org-y"),
        {},
        (["booking-l"], []),
    ),
    (
        "is keyed",
        lambda: attempt("m", "room-1", at(4, 8), at(4, 9), "org-y"),
        {"keyed": Keyed(scope="sub-org-y:POST:/v1/bookings", key="k1", fingerprint="f1")},
        (["booking-m"], []),
    ),
    (
        "is sent again with its key",
        lambda: attempt("m-again", "room-1", at(4, 8), at(4, 9), "org-y"),
        {"keyed": Keyed(scope="sub-org-y:POST:/v1/bookings", key="k1", fingerprint="f1")},
        ("replayed", 201, "booking-m"),
    ),
    (
        "uses the key with another body",
        lambda: attempt("n", "room-1", at(4, 10), at(4, 11), "org-y"),
        {"keyed": Keyed(scope="sub-org-y:POST:/v1/bookings", key="k1", fingerprint="f2")},
        ("refused", 422, "idempotency_key_reused"),
    ),
]


@pytest.fixture(scope="module")
async def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Database]]:
    """A booking database per path, migrated, each with the venue at the same generation."""
    found: dict[str, Database] = {}
    makers = []
    for path in PATHS:
        kind = "sqlite" if path == "sqlite" else "postgresql"
        maker = migrated_database(kind, BOOKING, request, tmp_path_factory.mktemp(kind))
        makers.append(maker)
        found[path] = connect(await anext(maker))
    for database in found.values():
        async with database.write() as session:
            session.add(catalogue.RegistryGenerationRow(venue_id=VENUE, generation=GENERATION))
    yield found
    for database in found.values():
        await database.dispose()
    for maker in makers:
        await anext(maker, None)


async def test_every_path_answers_each_case_alike_and_leaves_the_same_rows(
    databases: dict[str, Database],
) -> None:
    for name, make, how, expected in CASES:
        answers = {
            path: await book(database, path, make(), **how) for path, database in databases.items()
        }
        assert set(map(repr, answers.values())) == {repr(expected)}, (name, answers)
    # A booking that ends gives its hours back: the share that refused `d` now takes it (`e`
    # counts, though it was not held to the share).
    for database in databases.values():
        async with database.write() as session:
            row = await store.get_booking_row(session, "booking-a", lock=True)
            await store.set_status(
                session, row, Status.CANCELLED, reason=None, actor="org-x", now=datetime.now(UTC)
            )
    retried = {
        path: await book(database, path, CASES[3][1]()) for path, database in databases.items()
    }
    assert set(map(repr, retried.values())) == {repr((["booking-d"], []))}, retried
    left = {path: await rows(database) for path, database in databases.items()}
    first = left[PATHS[0]]
    assert all(found == first for found in left.values()), left
    # Each organisation's weekly row is the sum of what its live bookings charged.
    assert first["weekly"] == [
        ("org-w", "2027-03-01", 3600),
        ("org-x", "2027-03-01", 3600 + 3600 + 1800),
        ("org-y", "2027-03-01", 3600 + 3600),
        ("org-y", "2027-03-08", 3600),
        ("org-z", "2027-03-01", 3600),
    ]


async def test_a_keyed_retry_gets_its_first_answer_though_the_rules_have_changed_since(
    booking: AsyncTestClient,  # type: ignore[type-arg]
    town: Town,
    tokens: Tokens,
) -> None:
    """A client that timed out sends its booking again with the same key after the room's rules
    changed (bookings are now at most 30 minutes): the first answer, not a refusal."""
    venue = await town.venue()
    room = await town.room(venue)
    body = booking_body(room, at_hour(10), at_hour(11))
    headers = {**tokens("community_manager", "org-a"), "Idempotency-Key": "retry-after-change"}
    first = await booking.post("/v1/bookings", json=body, headers=headers)
    assert first.status_code == 201, first.text
    changed = await town.http.patch(
        f"/v1/resources/{room}", json={"rules": {"min_minutes": 30, "max_minutes": 30}}
    )
    assert changed.status_code == 200, changed.text
    await registry_event_handled(booking, "resource.updated", {"id": room, "venue_id": venue})
    again = await booking.post("/v1/bookings", json=body, headers=headers)
    assert (again.status_code, again.content) == (201, first.content)
    # Without the key it is what it is now: too long.
    fresh = await booking.post(
        "/v1/bookings",
        json=booking_body(room, at_hour(13), at_hour(14)),
        headers=tokens("community_manager", "org-a"),
    )
    assert fresh.status_code == 422, fresh.text


async def test_a_booking_waits_for_a_registry_event_being_applied_then_reads_again(
    databases: dict[str, Database],
) -> None:
    """The worker has raised the venue's generation for new hours and not yet committed (it is
    about to look for the bookings they leave outside): a booking checked against the old hours
    waits for it, then stands down (`Stale`) instead of slipping in unseen."""
    database = databases["postgresql alone"]
    case = attempt("racing-an-event", "room-2", at(20, 8), at(20, 9), "org-race")
    generations = catalogue.RegistryGenerationRow
    try:
        async with database.write() as session:
            await session.execute(
                update(generations)
                .where(generations.venue_id == VENUE)
                .values(generation=GENERATION + 1)
            )
            booking = asyncio.create_task(book(database, "postgresql alone", case))
            await asyncio.sleep(0.5)
            assert not booking.done()
        assert await booking == "stale"
    finally:
        async with database.write() as session:
            await session.execute(
                update(generations)
                .where(generations.venue_id == VENUE)
                .values(generation=GENERATION)
            )
