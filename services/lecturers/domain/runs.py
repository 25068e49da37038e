"""Matching runs: what a client sees of one, and the pure steps between the service's records
and `matching.solve` (which sessions are still open, which rooms suit a lecture, when a room can
be booked at all).

A run covers a month: every session of the month's requests that has no live offer. A re-offer
(after a decline, an expiry or a cancelled booking) is a run too, limited to one request, so both
leave the same record of what was offered and why the rest was not.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum

import msgspec

from services.lecturers.domain.corps import Month
from services.lecturers.domain.matching import GRID_MINUTES
from shared.contracts import Rules
from shared.time import Interval


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class RunCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    month: Month


class RunAccepted(msgspec.Struct, frozen=True):
    run_id: str
    status: RunStatus


class RunAssignment(msgspec.Struct, frozen=True):
    offer_id: str
    request_id: str
    session_index: int
    lecturer_id: str
    venue_id: str
    room_id: str
    booking_id: str
    start: datetime
    end: datetime


class RunUnmatched(msgspec.Struct, frozen=True):
    request_id: str
    session_index: int
    reason: str


class Run(msgspec.Struct, frozen=True):
    """`objective` is the solver's score of the run's own assignments (higher is better);
    `optimal` says the solver proved no assignment does better."""

    id: str
    month: str
    status: RunStatus
    request_ids: list[str] | None
    assignments: list[RunAssignment]
    unmatched: list[RunUnmatched]
    objective: int | None
    optimal: bool | None
    failure: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def open_sessions(sessions: int, taken: Iterable[int]) -> list[int]:
    """The session indices of a request that no live offer holds, in order."""
    held = set(taken)
    return [index for index in range(sessions) if index not in held]


def room_suits(rules: Rules, capacity: int | None, *, minutes: int, attendees: int | None) -> bool:
    """Whether a lecture of `minutes` for `attendees` may be booked in the room at all: its
    length within the owner's limits, the matching's half-hour starts on the room's slot grid,
    and the room big enough (a room of unknown size is taken at its word)."""
    return (
        rules.min_minutes <= minutes <= rules.max_minutes
        and GRID_MINUTES % rules.slot_minutes == 0
        and minutes % rules.slot_minutes == 0
        and (attendees is None or capacity is None or capacity >= attendees)
    )


def bookable_window(month: Interval, rules: Rules, now: datetime) -> Interval | None:
    """The part of the month the room's lead time and horizon let be booked from `now`."""
    start = max(month.start, now + timedelta(minutes=rules.lead_minutes))
    end = min(month.end, now + timedelta(days=rules.horizon_days))
    return Interval(start, end) if start < end else None
