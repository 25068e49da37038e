"""Whatever sequence of creates and cancels a client sends, the booking service keeps its promises:
no two live bookings of a resource come closer than its buffer, each lies inside opening hours,
each request is accepted exactly when a simple model of the rules says it should be, and the
weekly share's rows hold exactly what the organisation's live bookings charge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.booking import store
from services.booking.domain.fair_use import used_by
from shared.time import Interval
from tests.conftest import Tokens, database_of
from tests.service.conftest import Town
from tests.service.test_booking import (
    SHANGHAI,
    Client,
    book,
    booking_body,
    day_ahead,
)

BUFFER = timedelta(minutes=15)
OPENS, CLOSES = time(8), time(22)


@dataclass(frozen=True)
class Create:
    day: int
    start_quarter: int
    quarters: int


@dataclass(frozen=True)
class Cancel:
    which: int


operations = st.lists(
    st.one_of(
        st.builds(
            Create,
            day=st.integers(0, 1),
            start_quarter=st.integers(6 * 4, 23 * 4),  # 06:00 to 23:00: some outside the hours
            quarters=st.integers(1, 12),
        ),
        st.builds(Cancel, which=st.integers(0, 20)),
    ),
    min_size=1,
    max_size=12,
)


def _interval(op: Create) -> Interval:
    day = datetime.combine(day_ahead(3 + op.day), time(), tzinfo=SHANGHAI)
    start = day + timedelta(minutes=15 * op.start_quarter)
    return Interval(start, start + timedelta(minutes=15 * op.quarters))


def _allowed(interval: Interval, live: list[Interval]) -> bool:
    """The model: rules of the room (30 to 240 minutes), the hours, and the buffer."""
    local_start, local_end = interval.start.astimezone(SHANGHAI), interval.end.astimezone(SHANGHAI)
    inside = (
        local_start.date() == (local_end - timedelta(microseconds=1)).date()
        and local_start.time() >= OPENS
        and (local_end.time() <= CLOSES and local_end.date() == local_start.date())
    )
    long_enough = timedelta(minutes=30) <= interval.duration <= timedelta(minutes=240)
    clear = all(
        interval.end + BUFFER <= other.start or other.end + BUFFER <= interval.start
        for other in live
    )
    return inside and long_enough and clear


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
async def test_no_sequence_of_creates_and_cancels_breaks_the_rules(
    booking: Client, town: Town, tokens: Tokens, ops: list[Any]
) -> None:
    if not town.area:
        await town.venue()  # one venue for every example; a fresh room each
    venue = (await town.http.get("/v1/venues", params={"area_id": town.area})).json()["items"][0]
    room = await town.room(venue["id"], rules={"buffer_minutes": 15})
    made: list[tuple[str, Interval]] = []
    live: dict[str, Interval] = {}
    for op in ops:
        if isinstance(op, Create):
            interval = _interval(op)
            expected = _allowed(interval, list(live.values()))
            body = booking_body(room, interval.start.isoformat(), interval.end.isoformat())
            response = await book(booking, tokens, body)
            assert response.status_code in (201, 409, 422), response.text
            assert (response.status_code == 201) == expected, (op, response.text)
            if response.status_code == 201:
                made.append((response.json()["id"], interval))
                live[response.json()["id"]] = interval
        elif made:
            booking_id, _ = made[op.which % len(made)]
            response = await booking.post(
                f"/v1/bookings/{booking_id}/cancel", headers=tokens("community_manager")
            )
            assert response.status_code in (200, 409), response.text
            assert (response.status_code == 200) == (booking_id in live)
            live.pop(booking_id, None)

    listed = await booking.get(
        "/v1/bookings", params={"resource_id": room, "limit": 500}, headers=tokens("office")
    )
    stored = [
        Interval(datetime.fromisoformat(item["start"]), datetime.fromisoformat(item["end"]))
        for item in listed.json()["items"]
        if item["status"] in ("pending", "confirmed")
    ]
    assert sorted(stored) == sorted(live.values())
    for index, one in enumerate(stored):
        local = one.in_zone(SHANGHAI)
        assert local.start.time() >= OPENS
        assert local.end.time() <= CLOSES
        for other in stored[index + 1 :]:
            assert one.end + BUFFER <= other.start or other.end + BUFFER <= one.start
    # Every example books at the one venue for org-a: its weekly rows sum all of them.
    everything = await booking.get(
        "/v1/bookings", params={"venue_id": venue["id"], "limit": 500}, headers=tokens("office")
    )
    items = everything.json()["items"]
    charged = used_by(
        [
            Interval(datetime.fromisoformat(item["start"]), datetime.fromisoformat(item["end"]))
            for item in items
            if item["status"] in ("pending", "confirmed")
        ],
        SHANGHAI,
    )
    weeks = sorted(used_by([_interval(op) for op in ops if isinstance(op, Create)], SHANGHAI))
    async with database_of(booking, "booking") as database, database.read() as session:
        held = await store.weekly_seconds(session, "org-a", venue["id"], [*charged, *weeks])
    assert {week: seconds for week, seconds in held.items() if seconds} == charged
