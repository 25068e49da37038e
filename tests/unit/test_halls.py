"""Divisible halls with plain values: the claims a booking holds, checked against a model.

The model says what the contract says: two bookings exclude each other where one's room is the
other's or one of its wholes, and they are then at least the largest `buffer_minutes` of the rooms
on the path between the two apart; rooms on different branches never meet. The system under test
is `halls.claims` with the exclusion the database applies to the slot rows (same room,
`halls.excludes`, overlapping `blocked` stretches), and `halls.free_for` for availability.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.booking.domain.bookings import blocked
from services.booking.domain.halls import (
    Claim,
    Held,
    Reach,
    Room,
    claims,
    excludes,
    free_for,
    parts_of,
    wholes_of,
)
from shared.errors import InvalidRequest
from shared.time import Interval

DAY = datetime(2027, 3, 1, tzinfo=UTC)
SLOT = timedelta(minutes=15)
BUFFERS = (0, 15, 30, 60)


def _forest(parents: Sequence[int | None], buffers: Sequence[int]) -> dict[str, Room]:
    ids = [f"room-{n}" for n in range(len(parents))]
    parts: dict[str, list[str]] = {rid: [] for rid in ids}
    for n, parent in enumerate(parents):
        if parent is not None:
            parts[ids[parent]].append(ids[n])
    return {
        ids[n]: Room(
            id=ids[n],
            part_of=None if parent is None else ids[parent],
            parts=tuple(parts[ids[n]]),
            buffer_minutes=buffers[n],
        )
        for n, parent in enumerate(parents)
    }


@st.composite
def hierarchies(draw: st.DrawFn) -> dict[str, Room]:
    """Up to eight rooms; each may be part of an earlier one, at most three levels deep."""
    count = draw(st.integers(1, 8))
    parents: list[int | None] = []
    depth: list[int] = []
    for n in range(count):
        choices = [None, *(m for m in range(n) if depth[m] < 3)]
        parent = draw(st.sampled_from(choices))
        parents.append(parent)
        depth.append(1 if parent is None else depth[parent] + 1)
    buffers = draw(st.lists(st.sampled_from(BUFFERS), min_size=count, max_size=count))
    return _forest(parents, buffers)


class Ask:
    def __init__(self, room: str, start_slot: int, slots: int) -> None:
        self.room = room
        self.interval = Interval(DAY + start_slot * SLOT, DAY + (start_slot + slots) * SLOT)


def _path(upper: Room, lower: Room, rooms: Mapping[str, Room]) -> list[Room] | None:
    """The rooms from `lower` up to `upper`, or None where `upper` is not `lower` or a whole
    of it."""
    path = [lower, *wholes_of(lower, rooms)]
    ids = [room.id for room in path]
    return path[: ids.index(upper.id) + 1] if upper.id in ids else None


def model_clash(one: Ask, other: Ask, rooms: Mapping[str, Room]) -> bool:
    a, b = rooms[one.room], rooms[other.room]
    path = _path(a, b, rooms) or _path(b, a, rooms)
    if path is None:
        return False
    buffer = timedelta(minutes=max(room.buffer_minutes for room in path))
    gap = max(one.interval.start - other.interval.end, other.interval.start - one.interval.end)
    return gap < buffer


def _stored(ask: Ask, rooms: Mapping[str, Room]) -> list[tuple[Claim, Interval]]:
    """The slot rows a booking would hold: each claim and its blocked stretch."""
    return [
        (claim, blocked(ask.interval, claim.buffer_minutes))
        for claim in claims([rooms[ask.room]], rooms)
    ]


def database_refuses(
    ask: Ask, accepted: Sequence[list[tuple[Claim, Interval]]], rooms: Mapping[str, Room]
) -> bool:
    """What the exclusion constraints (or SQLite's check) do with the slot rows."""
    return any(
        mine.resource_id == theirs.resource_id
        and excludes(mine.reach, theirs.reach)
        and my_stretch.overlaps(their_stretch)
        for mine, my_stretch in _stored(ask, rooms)
        for held in accepted
        for theirs, their_stretch in held
    )


asks = st.lists(
    st.tuples(st.integers(0, 7), st.integers(0, 40), st.integers(1, 8)), min_size=1, max_size=25
)


@settings(max_examples=400, deadline=None)
@given(hierarchies(), asks)
def test_claims_accept_exactly_what_the_model_accepts(
    rooms: dict[str, Room], raw: list[tuple[int, int, int]]
) -> None:
    ids = sorted(rooms)
    accepted_asks: list[Ask] = []
    accepted_rows: list[list[tuple[Claim, Interval]]] = []
    for pick, start, slots in raw:
        ask = Ask(ids[pick % len(ids)], start, slots)
        model_says_no = any(model_clash(ask, other, rooms) for other in accepted_asks)
        assert database_refuses(ask, accepted_rows, rooms) == model_says_no
        if not model_says_no:
            accepted_asks.append(ask)
            accepted_rows.append(_stored(ask, rooms))


@settings(max_examples=200, deadline=None)
@given(hierarchies(), asks, st.integers(1, 6))
def test_free_time_is_where_a_booking_of_the_room_would_be_accepted(
    rooms: dict[str, Room], raw: list[tuple[int, int, int]], slots: int
) -> None:
    ids = sorted(rooms)
    accepted: list[Ask] = []
    for pick, start, length in raw:
        ask = Ask(ids[pick % len(ids)], start, length)
        if not any(model_clash(ask, other, rooms) for other in accepted):
            accepted.append(ask)
    held: dict[str, list[Held]] = {rid: [] for rid in ids}
    for ask in accepted:
        for claim in claims([rooms[ask.room]], rooms):
            held[claim.resource_id].append(Held(ask.interval, claim.reach))
    day = Interval(DAY, DAY + 60 * SLOT)
    for rid in ids:
        free = free_for(rooms[rid], rooms, [day], held)
        for start in range(60 - slots + 1):
            ask = Ask(rid, start, slots)
            fits = any(piece.contains(ask.interval) for piece in free)
            assert fits == (not any(model_clash(ask, other, rooms) for other in accepted))


def test_a_room_that_is_neither_whole_nor_part_holds_one_own_claim() -> None:
    rooms = _forest([None], [30])
    assert claims([rooms["room-0"]], rooms) == [Claim("room-0", Reach.OWN, 30)]


def test_a_hall_claims_its_parts_and_a_quarter_its_wholes() -> None:
    # room-0 the hall, room-1 and room-2 its halves, room-3 a quarter of room-1.
    rooms = _forest([None, 0, 0, 1], [0, 15, 30, 60])
    assert claims([rooms["room-0"]], rooms) == [
        Claim("room-0", Reach.OWN, 0),
        Claim("room-1", Reach.PART, 15),
        Claim("room-2", Reach.PART, 30),
        Claim("room-3", Reach.PART, 60),
    ]
    assert claims([rooms["room-3"]], rooms) == [
        Claim("room-0", Reach.WHOLE, 0),
        Claim("room-1", Reach.WHOLE, 15),
        Claim("room-3", Reach.OWN, 60),
    ]
    assert [room.id for room in parts_of(rooms["room-0"], rooms)] == ["room-1", "room-2", "room-3"]
    # Both halves at once share one claim on the hall.
    both = claims([rooms["room-1"], rooms["room-2"]], rooms)
    assert [claim.resource_id for claim in both] == ["room-0", "room-1", "room-2", "room-3"]


def test_a_booking_of_a_room_and_its_part_together_is_refused() -> None:
    rooms = _forest([None, 0], [0, 0])
    with pytest.raises(InvalidRequest):
        claims([rooms["room-0"], rooms["room-1"]], rooms)


def test_only_two_wholes_or_two_parts_may_overlap() -> None:
    pairs = {(one, other): excludes(one, other) for one in Reach for other in Reach}
    assert {pair for pair, excluded in pairs.items() if not excluded} == {
        (Reach.WHOLE, Reach.WHOLE),
        (Reach.PART, Reach.PART),
    }
