"""A property through the real booking service: whatever sequence of creates and cancels clients
send, no two live bookings of a resource come closer than its buffer, and each lies inside the
opening hours. Venues in three zones, rooms with and without approval, and office holds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.time import Interval
from tests.conftest import Tokens
from tests.service.conftest import Town
from tests.service.test_booking import Client, book, booking_body

BUFFER_MINUTES = 15
BUFFER = timedelta(minutes=BUFFER_MINUTES)
OPENS, CLOSES = time(8), time(22)  # open_every_day(), the Town's default hours
LIVE = ("pending", "confirmed")


@dataclass(frozen=True)
class Create:
    start_quarter: int  # quarter hours after local midnight
    quarters: int
    by: Literal["org-a", "org-b", "hold"]


@dataclass(frozen=True)
class Cancel:
    which: int  # the k-th booking made so far, modulo how many there are


creates = st.builds(
    Create,
    start_quarter=st.integers(7 * 4, 22 * 4 + 2),  # 07:00 to 22:30: some outside the hours
    quarters=st.integers(1, 8),  # 15 minutes (too short) to 2 hours
    by=st.sampled_from(["org-a", "org-b", "hold"]),
)
operations = st.lists(
    st.one_of(creates, creates, creates, st.builds(Cancel, which=st.integers(0, 30))),
    min_size=6,
    max_size=20,
)


def _local_day(zone: ZoneInfo) -> datetime:
    """Local midnight three days ahead: inside the default 90-day horizon, with no lead time."""
    day = (datetime.now(zone) + timedelta(days=3)).date()
    return datetime.combine(day, time(), tzinfo=zone)


async def _create(client: Client, tokens: Tokens, room: str, day: datetime, op: Create) -> Any:
    start = day + timedelta(minutes=15 * op.start_quarter)
    end = start + timedelta(minutes=15 * op.quarters)
    body = booking_body(room, start.isoformat(), end.isoformat())
    if op.by == "hold":
        body |= {"hold": True, "org": "org-v"}
        return await book(client, tokens, body, role="office", org="commonroom")
    return await book(client, tokens, body, org=op.by)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    ops=operations,
    zone=st.sampled_from(["Asia/Shanghai", "Asia/Kolkata", "Europe/Berlin"]).map(ZoneInfo),
    requires_approval=st.booleans(),
)
@example(  # back to back is a conflict, a buffer apart is not, a cancel frees the slot at once
    ops=[
        Create(start_quarter=40, quarters=4, by="org-a"),  # 10:00-11:00
        Create(start_quarter=44, quarters=4, by="org-b"),  # 11:00-12:00: within the buffer
        Create(start_quarter=45, quarters=3, by="hold"),  # 11:15-12:00
        Create(start_quarter=84, quarters=6, by="org-a"),  # 21:00-22:30: after closing
        Cancel(which=0),
        Create(start_quarter=36, quarters=8, by="org-b"),  # 09:00-11:00 once 10:00 is free
    ],
    zone=ZoneInfo("Asia/Kolkata"),
    requires_approval=False,
)
async def test_no_sequence_of_creates_and_cancels_lets_live_bookings_clash_or_leave_the_hours(
    booking: Client,
    town: Town,
    tokens: Tokens,
    ops: list[Create | Cancel],
    zone: ZoneInfo,
    requires_approval: bool,
) -> None:
    # Data persists between examples: a fresh venue (in the drawn zone) and room for each.
    room = await town.room(
        await town.venue(timezone=zone.key),
        rules={"buffer_minutes": BUFFER_MINUTES},
        requires_approval=requires_approval,
    )
    day = _local_day(zone)
    made: list[str] = []
    cancelled: set[str] = set()
    for op in ops:
        if isinstance(op, Create):
            response = await _create(booking, tokens, room, day, op)
            assert response.status_code in (201, 409, 422), response.text
            if response.status_code == 201:
                created = response.json()
                pending = requires_approval or op.by == "hold"
                assert created["status"] == ("pending" if pending else "confirmed")
                made.append(created["id"])
        elif made:
            booking_id = made[op.which % len(made)]
            response = await booking.post(
                f"/v1/bookings/{booking_id}/cancel", headers=tokens("office")
            )
            assert response.status_code == (409 if booking_id in cancelled else 200), response.text
            cancelled.add(booking_id)

    listed = await booking.get(
        "/v1/bookings", params={"resource_id": room, "limit": 500}, headers=tokens("office")
    )
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    live = {item["id"]: item for item in items if item["status"] in LIVE}
    # What the service lists agrees with what it told the clients.
    assert sorted(item["id"] for item in items) == sorted(made)
    assert set(live) == set(made) - cancelled

    stored = [
        Interval(datetime.fromisoformat(item["start"]), datetime.fromisoformat(item["end"]))
        for item in live.values()
    ]
    for one in stored:
        local = one.in_zone(zone)
        assert local.start.date() == local.end.date() == day.date(), local
        assert local.start.time() >= OPENS, local
        assert local.end.time() <= CLOSES, local
    for one, other in itertools.combinations(stored, 2):
        assert one.end + BUFFER <= other.start or other.end + BUFFER <= one.start, (one, other)
