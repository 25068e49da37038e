"""Instants and half-open intervals, the vocabulary of every service's rules.

Instants are always timezone-aware; an interval is `[start, end)`, so intervals that touch do not
overlap. Wall-clock rules carry their zone and are resolved with `zoneinfo`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta

from shared.errors import FieldError, InvalidRequest


class Interval(msgspec.Struct, frozen=True, order=True):
    """A half-open stretch of time `[start, end)` between two aware instants."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidRequest("instants must carry a UTC offset", code="naive_datetime")
        if self.end <= self.start:
            raise InvalidRequest(
                "an interval must end after it starts",
                code="invalid_interval",
                errors=[FieldError("end", "must be after start")],
            )

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, other: Interval) -> bool:
        return self.start <= other.start and other.end <= self.end

    @property
    def duration(self) -> timedelta:
        # In UTC: two datetimes of one ZoneInfo subtract as wall clocks, which a DST change skews.
        return self.end.astimezone(UTC) - self.start.astimezone(UTC)

    def clip(self, bounds: Interval) -> Interval | None:
        """The part of this interval inside `bounds`, or None where they do not overlap."""
        start, end = max(self.start, bounds.start), min(self.end, bounds.end)
        return Interval(start, end) if start < end else None

    def in_zone(self, zone: tzinfo) -> Interval:
        return Interval(self.start.astimezone(zone), self.end.astimezone(zone))


class WeeklySpan(msgspec.Struct, frozen=True):
    """Wall-clock hours on ISO weekdays (1 = Monday), in a zone the holder knows: a venue's
    opening hours, a lecturer's availability. An `end` at or before `start` runs past midnight
    and belongs to the day it starts on."""

    weekdays: tuple[int, ...]
    start: time
    end: time


WallTime = Annotated[str, Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM")]
Weekday = Annotated[int, Meta(ge=1, le=7, description="ISO weekday, 1 = Monday")]


def wall_time(text: str) -> time:
    """The time of day an `HH:MM` string (already matched against `WallTime`) names."""
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


class SpanDoc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A `WeeklySpan` as the APIs carry it: ISO weekdays, `HH:MM` wall-clock times."""

    weekdays: Annotated[list[Weekday], Meta(max_length=7)]
    start: WallTime
    end: WallTime

    def to_span(self) -> WeeklySpan:
        return WeeklySpan(
            weekdays=tuple(self.weekdays), start=wall_time(self.start), end=wall_time(self.end)
        )


def utc(instant: datetime, field: str = "instant") -> datetime:
    """The same instant in UTC; refuses a naive datetime, whose meaning is a guess."""
    if instant.tzinfo is None:
        raise InvalidRequest(
            f"{field} must carry a UTC offset",
            errors=[
                FieldError(field, "an instant needs an offset, as in 2026-12-01T18:00:00+08:00")
            ],
        )
    return instant.astimezone(UTC)


def window(start: datetime, end: datetime, *, fields: tuple[str, str] = ("from", "to")) -> Interval:
    """The interval a client asked for, with its offending field named when it is not one."""
    start, end = utc(start, fields[0]), utc(end, fields[1])
    if end <= start:
        raise InvalidRequest(
            f"{fields[1]} must be after {fields[0]}",
            errors=[FieldError(fields[1], f"must be after {fields[0]}")],
        )
    return Interval(start, end)


# A year, with room for a leap day and a DST hour: the longest range any service resolves at once.
LONGEST_RANGE = timedelta(days=367)


def check_range(span: Interval) -> None:
    """Refuse a range longer than a year: resolving it would be slow and is never needed."""
    if span.duration > LONGEST_RANGE:
        raise InvalidRequest(
            "ask for at most a year at a time",
            code="range_too_long",
            errors=[FieldError("to", "must be at most a year after from")],
        )


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint intervals covering the same time; touching intervals are joined."""
    merged: list[Interval] = []
    for interval in sorted(intervals):
        if merged and interval.start <= merged[-1].end:
            if interval.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, interval.end)
        else:
            merged.append(interval)
    return merged


def subtract(base: Iterable[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """`base` minus `holes`, both taken as sets of instants; the result is sorted and disjoint."""
    result: list[Interval] = []
    pending = merge(holes)
    # Both sides are sorted, so one pass serves: a hole that ends before a piece starts cannot
    # touch any later piece either.
    first = 0
    for piece in merge(base):
        while first < len(pending) and pending[first].end <= piece.start:
            first += 1
        cursor = piece.start
        for index in range(first, len(pending)):
            hole = pending[index]
            if hole.start >= piece.end:
                break
            if hole.start > cursor:
                result.append(Interval(cursor, hole.start))
            cursor = max(cursor, hole.end)
            if cursor >= piece.end:
                break
        if cursor < piece.end:
            result.append(Interval(cursor, piece.end))
    return result


def next_month(day: date) -> date:
    """The first day of the month after `day`'s."""
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or an `invalid_timezone` error a client can act on."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidRequest(
            f"unknown time zone {name!r}",
            code="invalid_timezone",
            errors=[FieldError("timezone", "not an IANA time zone name")],
        ) from exc
