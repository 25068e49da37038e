"""Divisible halls: a room may be part of another (a hall and its halves, the halves' quarters).

A booking of a whole excludes every live booking of its parts, and the reverse; between a whole
and a part the largest `buffer_minutes` along the path between them applies. The database keeps
this with the same exclusion it keeps for one resource, by having each booking hold a claim on
every room its booking touches, each claim with a `reach`:

- `own` on each booked resource,
- `whole` on every room a booked room is part of (its wholes, up to the top),
- `part` on every part under a booked room (at any depth).

Two claims on one room exclude each other where their stretches overlap unless both are `whole`
(two halves of a hall booked at once) or both are `part` (a hall and its half are then already
kept apart by the claims on the half's level). A claim's stretch is the booking plus the turnover
buffer of the room it is on. So a booking of the hall and one of its half meet on the hall (`own`
and `whole`), on every room between them, and on the half (`part` and `own`): they are kept apart
by the largest buffer of the rooms on that path, and by nothing further up or down. A room that is
part of nothing and has no parts holds one `own` claim, as every booking did before halls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

import msgspec

from services.booking.domain.availability import free_intervals
from services.booking.domain.bookings import Bookable
from shared.errors import FieldError, InvalidRequest
from shared.time import Interval


class Reach(StrEnum):
    OWN = "own"
    WHOLE = "whole"
    PART = "part"


class Room(msgspec.Struct, frozen=True):
    """What the claims need of a resource: its place among the venue's rooms and its buffer."""

    id: str
    part_of: str | None
    parts: tuple[str, ...]
    buffer_minutes: int


def room_of(resource: Bookable) -> Room:
    return Room(
        id=resource.id,
        part_of=resource.part_of,
        parts=resource.parts,
        buffer_minutes=resource.rules.buffer_minutes,
    )


class Claim(msgspec.Struct, frozen=True):
    """A room a booking holds, and how: the row the database's exclusion is built on."""

    resource_id: str
    reach: Reach
    buffer_minutes: int


class Held(msgspec.Struct, frozen=True):
    """A live claim of some booking, as stored: its room's booking interval and reach."""

    interval: Interval
    reach: Reach


def excludes(one: Reach, other: Reach) -> bool:
    """Whether two claims on the same room may not overlap."""
    return one != other or one is Reach.OWN


def wholes_of(room: Room, rooms: Mapping[str, Room]) -> list[Room]:
    """The rooms `room` is part of, nearest first."""
    found: list[Room] = []
    current = room.part_of
    while current is not None and current in rooms and len(found) < len(rooms):
        found.append(rooms[current])
        current = rooms[current].part_of
    return found


def parts_of(room: Room, rooms: Mapping[str, Room]) -> list[Room]:
    """Every part under `room`, at any depth, level by level."""
    found: list[Room] = []
    level = [room]
    while level and len(found) < len(rooms):
        level = [rooms[part] for whole in level for part in whole.parts if part in rooms]
        found += level
    return found


def related_ids(rooms: Iterable[Room]) -> set[str]:
    """The ids one step up and down from these rooms: what to read next to know their wholes
    and parts."""
    return {rid for room in rooms for rid in (room.part_of, *room.parts) if rid is not None}


def claims(booked: Sequence[Room], rooms: Mapping[str, Room]) -> list[Claim]:
    """What a booking of `booked` holds; `rooms` knows at least every whole and part of them.

    422 `invalid_request` where one booked room is part of another booked one: book the whole.
    """
    found: dict[str, Claim] = {}
    for room in booked:
        found[room.id] = _hold(found, Claim(room.id, Reach.OWN, room.buffer_minutes))
    for room in booked:
        for whole in wholes_of(room, rooms):
            found[whole.id] = _hold(found, Claim(whole.id, Reach.WHOLE, whole.buffer_minutes))
        for part in parts_of(room, rooms):
            found[part.id] = _hold(found, Claim(part.id, Reach.PART, part.buffer_minutes))
    return [found[rid] for rid in sorted(found)]


def _hold(found: Mapping[str, Claim], claim: Claim) -> Claim:
    held = found.get(claim.resource_id)
    if held is not None and held.reach is not claim.reach:
        raise InvalidRequest(
            "a booking cannot hold a room and a part of it: book the whole",
            errors=[FieldError("resource_ids", "a room and one of its parts or wholes")],
        )
    return claim


def free_for(
    room: Room,
    rooms: Mapping[str, Room],
    open_intervals: Iterable[Interval],
    held: Mapping[str, Sequence[Held]],
) -> list[Interval]:
    """Where a booking of `room` may lie: its open intervals minus, on every room it would
    claim, the live claims its claim there would exclude, each with that room's buffer."""
    free = list(open_intervals)
    for claim in claims([room], rooms):
        blocking = [
            other.interval
            for other in held.get(claim.resource_id, ())
            if excludes(claim.reach, other.reach)
        ]
        free = free_intervals(free, blocking, claim.buffer_minutes)
    return free
