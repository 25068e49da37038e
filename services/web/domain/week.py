"""A resource's week as a grid of hours: for each day and hour, whether it is closed, free,
booked, or partly free. Built from the open intervals (registry) and the free ones (booking):
what is open but not free is taken, by a booking or its turnover time."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

import msgspec

DEFAULT_HOURS: Final = (8, 22)


class Status(StrEnum):
    CLOSED = "closed"
    FREE = "free"
    PARTLY = "partly"
    BOOKED = "booked"


class Span(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime


class Cell(msgspec.Struct, frozen=True):
    day: date
    start: datetime
    end: datetime
    status: Status
    # The free stretch within the hour a booking form would take (free and partly free cells).
    free: Span | None = None


class Row(msgspec.Struct, frozen=True):
    hour: datetime  # the first day's hour, for the row's heading
    cells: list[Cell]


class Week(msgspec.Struct, frozen=True):
    monday: date
    days: list[date]
    rows: list[Row]


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _overlap(spans: list[Span], start: datetime, end: datetime) -> list[Span]:
    return [
        Span(max(s.start, start), min(s.end, end)) for s in spans if s.start < end and start < s.end
    ]


def _minutes(spans: list[Span]) -> float:
    return sum((s.end - s.start).total_seconds() for s in spans) / 60


def _hours(zone: ZoneInfo, open_spans: list[Span]) -> tuple[int, int]:
    """The hours the grid shows: from the earliest opening to the latest closing of the week."""
    if not open_spans:
        return DEFAULT_HOURS
    first = min(s.start.astimezone(zone).hour for s in open_spans)
    last = 0
    for span in open_spans:
        local = span.end.astimezone(zone)
        crosses = local.date() > span.start.astimezone(zone).date()
        last = max(last, 24 if crosses else local.hour + (1 if local.minute else 0))
    return first, max(last, first + 1)


def week_grid(monday: date, zone: ZoneInfo, open_spans: list[Span], free: list[Span]) -> Week:
    """The week from `monday` (7 days) in the venue's `zone`, an hour a row."""
    days = [monday + timedelta(days=n) for n in range(7)]
    first, last = _hours(zone, open_spans)
    rows = []
    for hour in range(first, last):
        cells = []
        for day in days:
            start = datetime.combine(day, time(hour), zone)
            end = start + timedelta(hours=1)
            opened = _minutes(_overlap(open_spans, start, end))
            free_here = _overlap(free, start, end)
            free_minutes = _minutes(free_here)
            if not opened:
                status = Status.CLOSED
            elif free_minutes >= opened:
                status = Status.FREE
            elif free_minutes:
                status = Status.PARTLY
            else:
                status = Status.BOOKED
            longest = max(free_here, key=lambda s: s.end - s.start, default=None)
            cells.append(Cell(day=day, start=start, end=end, status=status, free=longest))
        rows.append(Row(hour=datetime.combine(monday, time(hour), zone), cells=cells))
    return Week(monday=monday, days=days, rows=rows)
