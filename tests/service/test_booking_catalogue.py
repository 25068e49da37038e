"""Booking's replica of the registry's catalogue: how the worker follows the registry's events
without holding a transaction while it asks the registry, and how a cold month's first requests
share one call to the registry."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from litestar.testing import AsyncTestClient
from sqlalchemy import event

from services.booking import store
from services.booking.catalogue import store as catalogue_store
from services.booking.catalogue import sync
from services.booking.catalogue.sync import HoursChange
from services.booking.clients import registry_http
from shared.db import Database
from shared.events import Event
from shared.ids import new_id
from shared.outbox import PreparedHandler, handle_once
from tests.conftest import Tokens, database_of
from tests.service.conftest import Town, open_every_day, registry_event_handled
from tests.service.test_booking import SHANGHAI, at, book, booking_body, day_ahead
from tests.service.test_observability import sample

Client = AsyncTestClient  # type: ignore[type-arg]


async def test_an_event_handled_while_new_hours_were_read_sends_them_back_to_be_read_again(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    """New hours are read from the registry before the worker's transaction; a `venue.updated`
    handled in between raises the venue's generation, so the hours' reading is not written over
    it but read again, and the booking the new hours leave outside is flagged all the same."""
    venue = await town.venue()
    room = await town.room(venue)
    late = day_ahead(4)
    made = await book(booking, tokens, booking_body(room, at(18, day=late), at(21, day=late)))
    assert made.status_code == 201, made.text
    shrunk = await town.http.put(
        f"/v1/venues/{venue}/opening-hours", json=open_every_day("08:00", "20:00")
    )
    assert shrunk.status_code == 200, shrunk.text
    registry = registry_http(booking.app.state["service"].settings)
    hours = sync.hours_changed(registry)
    read_at: list[int] = []

    async def read_then_meet_another_event(database: Database, event: Event) -> HoursChange:
        change = await hours.prepare(database, event)
        if not read_at:
            await registry_event_handled(booking, "venue.updated", {"id": venue})
        read_at.append(change.venue.generation)
        return change

    event = Event(
        id=new_id(),
        type="opening_hours.changed",
        source="registry",
        occurred_at=datetime.now(UTC),
        data={"venue_id": venue, "resource_id": None},
    )
    handler = PreparedHandler(prepare=read_then_meet_another_event, apply=hours.apply)
    try:
        async with database_of(booking, "booking") as database:
            assert await handle_once(database, store.tables, event, {event.type: handler})
            async with database.read() as session:
                assert await catalogue_store.generation(session, venue) == 2
    finally:
        await registry.aclose()
    assert read_at == [0, 1]
    flagged = await booking.get(f"/v1/bookings/{made.json()['id']}", headers=tokens("office"))
    assert flagged.json()["outside_opening_hours"] is True


async def registry_calls(town: Town, route: str) -> float:
    """How many times the registry has answered a GET of `route`, by its own count."""
    metrics = (await town.http.get("/metrics")).text
    if f'route="{route}"' not in metrics:
        return 0.0
    return sample(
        metrics, "commonroom_http_requests_total", method="GET", route=route, status="200"
    )


async def test_concurrent_bookings_of_a_new_room_on_a_cold_month_ask_the_registry_once(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    """Twenty bookings of a new room on twenty days of a month whose hours nobody has asked
    for, all at once: the first to miss asks the registry for the room (twice: its venue's
    generation is read in between), its venue and its month's hours, and the others wait for
    those answers instead of each asking again."""
    venue = await town.venue()
    room = await town.room(venue)
    today = datetime.now(SHANGHAI).date()
    next_month = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    days = [next_month + timedelta(days=n) for n in range(1, 21)]
    routes = ("/v1/open-intervals", "/v1/resources/{resource_id}", "/v1/venues/{venue_id}")
    before = [await registry_calls(town, route) for route in routes]

    async def book_on(day: date) -> int:
        body = booking_body(room, at(10, day=day), at(11, day=day))
        return (await book(booking, tokens, body, org=f"org-{day.day}")).status_code

    assert await asyncio.gather(*(book_on(day) for day in days)) == [201] * len(days)
    after = [await registry_calls(town, route) for route in routes]
    assert [now - then for now, then in zip(after, before, strict=True)] == [1, 2, 1]


async def test_a_cold_month_is_asked_once_for_every_room_of_a_venue_this_process_knows(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    """Five rooms of a venue, each booked this month; next month nobody has asked about. Its
    bookings, in every room at once, ask the registry for the venue's hours once, and keep them
    in the replica in a statement of each kind."""
    venue = await town.venue()
    rooms = [await town.room(venue) for _ in range(5)]
    today = datetime.now(SHANGHAI).date()
    soon = today + timedelta(days=2)
    for room in rooms:
        body = booking_body(room, at(8, day=soon), at(9, day=soon))
        assert (await book(booking, tokens, body)).status_code == 201
    month_after = (soon.replace(day=1) + timedelta(days=32)).replace(day=1) + timedelta(days=32)
    day = month_after.replace(day=10)
    before = await registry_calls(town, "/v1/open-intervals")

    async def book_in(room: str, hour: int) -> int:
        body = booking_body(room, at(hour, day=day), at(hour + 1, day=day))
        return (await book(booking, tokens, body, org=f"org-{room}-{hour}")).status_code

    engine = booking.app.state["service"].database.engine.sync_engine
    writes: list[str] = []

    def count_hours_written(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith(("INSERT", "UPDATE", "DELETE")) and "catalogue_" in statement:
            writes.append(statement.split(maxsplit=1)[0])

    event.listen(engine, "before_cursor_execute", count_hours_written)
    try:
        answers = await asyncio.gather(
            *(book_in(room, hour) for room in rooms for hour in (10, 12, 14))
        )
    finally:
        event.remove(engine, "before_cursor_execute", count_hours_written)
    assert answers == [201] * len(answers)
    assert await registry_calls(town, "/v1/open-intervals") - before == 1
    # The venue's month is kept in one statement of each kind, however many rooms it has: the
    # requests that wait for it would otherwise wait for a round trip a room.
    assert sorted(writes) == ["INSERT", "UPDATE"]


def first_of_month(day: date, months_ahead: int) -> datetime:
    """Midnight UTC opening the month `months_ahead` after `day`'s."""
    month = day.month - 1 + months_ahead
    return datetime(day.year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


async def test_a_booking_and_a_report_read_the_same_rows_of_the_replica(
    booking: Client, town: Town, tokens: Tokens
) -> None:
    """What a report reads of the registry serves the next booking without asking it, and what
    a booking reads of a next month joins the report's stretch, so a report of both months asks
    the registry nothing and gives the same figures: one replica, not a copy for each."""
    venue = await town.venue()
    room = await town.room(venue)
    today = datetime.now(SHANGHAI).date()
    first, second, after = (first_of_month(today, ahead) for ahead in (1, 2, 3))
    office = tokens("office")

    async def open_and_booked(start: datetime, end: datetime) -> tuple[float, float]:
        params = {"from": start.isoformat(), "to": end.isoformat(), "venue_id": venue}
        answer = await booking.get("/v1/reports/utilisation", params=params, headers=office)
        assert answer.status_code == 200, answer.text
        (row,) = answer.json()["items"]
        return row["open_hours"], row["booked_hours"]

    routes = ("/v1/open-intervals", "/v1/resources/{resource_id}", "/v1/venues/{venue_id}")

    async def calls() -> list[float]:
        return [await registry_calls(town, route) for route in routes]

    async def book_at_ten(day: date) -> None:
        made = await book(booking, tokens, booking_body(room, at(10, day=day), at(11, day=day)))
        assert made.status_code == 201, made.text

    open_hours = 14 * (second - first).days
    assert await open_and_booked(first, second) == (open_hours, 0)
    before = await calls()
    await book_at_ten(first.date() + timedelta(days=14))
    # The room's facts came from the report's listing, its hours from the report's reading.
    assert await calls() == before
    await book_at_ten(second.date() + timedelta(days=4))
    asked = await calls()
    # The second month was asked for once, and kept beside the first.
    assert [now - then for now, then in zip(asked, before, strict=True)] == [1, 0, 0]
    both = await open_and_booked(first, after)
    assert both == (open_hours + 14 * (after - second).days, 2)
    assert await open_and_booked(first, second) == (open_hours, 1)
    assert await calls() == asked
    async with database_of(booking, "booking") as database, database.read() as session:
        row = await session.get(catalogue_store.ResourceRow, room)
    assert row is not None
    assert (row.covered_from, row.covered_until, row.hours_generation) == (first, after, 0)
    assert (row.capacity, row.venue_id, row.area_id) == (30, venue, town.area)


async def test_hours_the_replica_holds_do_not_wait_on_the_registry_for_the_venues_other_rooms(
    booking: Client,
    booking_db: str,
    redis_url: str,
    identity_server: str,
    registry_server: str,
    town: Town,
    tokens: Tokens,
) -> None:
    """Another booking process kept room A's month in the shared replica. This process knows
    room B of the same venue (booked in another month), not A's hours: a booking of A is
    answered from the replica, and its venue's other rooms come along only where the registry
    is asked anyway, so A's booking makes no registry call (and could not fail with one)."""
    from services.up import stop_children, wait_ready
    from tests.conftest import free_port, make_settings, spawn

    venue = await town.venue()
    first, second = await town.room(venue), await town.room(venue)
    today = datetime.now(SHANGHAI).date()
    month_after = (today.replace(day=1) + timedelta(days=32)).replace(day=1) + timedelta(days=32)
    day_a, day_b = month_after.replace(day=10), day_ahead(3)
    settings = make_settings(
        redis_url, identity_url=identity_server, booking=booking_db
    ).with_service_url("registry", registry_server)
    port = free_port()
    other = [spawn(settings, "serve", "booking", "--port", str(port))]
    try:
        base = f"http://127.0.0.1:{port}"
        await asyncio.to_thread(wait_ready, [base], other)
        async with httpx.AsyncClient(headers=tokens("community_manager"), timeout=30) as http:
            kept = await http.post(
                f"{base}/v1/bookings",
                json=booking_body(first, at(9, day=day_a), at(10, day=day_a)),
            )
        assert kept.status_code == 201, kept.text
    finally:
        stop_children(other)
    body = booking_body(second, at(9, day=day_b), at(10, day=day_b))
    assert (await book(booking, tokens, body)).status_code == 201
    before = await registry_calls(town, "/v1/open-intervals")
    body = booking_body(first, at(11, day=day_a), at(12, day=day_a))
    made = await book(booking, tokens, body)
    assert made.status_code == 201, made.text
    assert await registry_calls(town, "/v1/open-intervals") == before
