"""Opening hours: wall-clock rules of a venue, resolved into the UTC instants it is open.

A venue publishes periods (term, vacation, exceptions) of weekly spans in its own time zone. On a
given date the shortest period covering it wins, so an exception is simply a short period. Public
holidays close the venue where it says so, and a make-up working day (a weekend day worked in
exchange, as in China) takes the spans of a Monday. A span ending at or before its start runs past
midnight and belongs to the day it starts on. Wall-clock times are turned into instants with
`zoneinfo`: a time skipped by a DST change counts with the offset in force before it, a repeated
time at its first occurrence.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Literal

import holidays
import msgspec

from shared.errors import FieldError, InvalidRequest
from shared.time import Interval, WeeklySpan, merge

MAX_PERIODS = 500
MAX_SPANS = 50
MONDAY = 1
WEEKEND = frozenset({6, 7})
# The longest run of weekend days that can lie between two holidays of one break.
_BRIDGE = timedelta(days=3)


class Period(msgspec.Struct, frozen=True):
    """Dates from `start_date` to `end_date` (inclusive; None runs on) and their weekly spans."""

    name: str
    start_date: date
    end_date: date | None
    spans: tuple[WeeklySpan, ...] = ()
    closed: bool = False

    def covers(self, day: date) -> bool:
        return self.start_date <= day and (self.end_date is None or day <= self.end_date)

    @property
    def length(self) -> int:
        """Days covered; a period that runs on is longer than any that ends."""
        if self.end_date is None:
            return date.max.toordinal()
        return (self.end_date - self.start_date).days + 1


class OpeningHours(msgspec.Struct, frozen=True):
    periods: tuple[Period, ...]
    public_holidays: Literal["closed", "open"] = "closed"


class HolidayCalendar(msgspec.Struct, frozen=True):
    """Days off (holidays and the weekend days bridged between them) and make-up working days."""

    days_off: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()


def validate_holiday_calendar(country: str) -> None:
    """Refuse a calendar code the `holidays` package does not know."""
    if country not in holidays.list_supported_countries():
        raise InvalidRequest(
            f"unknown holiday calendar {country!r}",
            code="invalid_holiday_calendar",
            errors=[FieldError("holiday_calendar", "an ISO 3166-1 alpha-2 code such as CN or DE")],
        )


@lru_cache(maxsize=256)
def _calendar_year(country: str, year: int) -> tuple[frozenset[date], frozenset[date]]:
    official = holidays.country_holidays(country, years=year)
    workdays = frozenset(
        day for day in getattr(official, "weekend_workdays", ()) if day.year == year
    )
    return frozenset(day for day in official if day.year == year), workdays


@lru_cache(maxsize=256)
def _calendar(country: str, years: tuple[int, ...]) -> HolidayCalendar:
    days_off: set[date] = set()
    workdays: set[date] = set()
    for year in years:
        off, work = _calendar_year(country, year)
        days_off |= off
        workdays |= work
    return HolidayCalendar(
        days_off=frozenset(_bridge(days_off, workdays)), workdays=frozenset(workdays)
    )


def _bridge(days_off: set[date], workdays: set[date]) -> set[date]:
    """Add the weekend days lying between two holidays: they belong to the same break.

    China's national day week (2026-10-01..07) is listed without its Sunday, which is a day off
    anyway for an office but not for a school that opens on weekends.
    """
    bridged = set(days_off)
    ordered = sorted(days_off)
    for before, after in itertools.pairwise(ordered):
        gap = [before + timedelta(days=n) for n in range(1, (after - before).days)]
        if (
            gap
            and after - before <= _BRIDGE + timedelta(days=1)
            and all(day.isoweekday() in WEEKEND and day not in workdays for day in gap)
        ):
            bridged.update(gap)
    return bridged


def holiday_calendar(country: str, years: Iterable[int]) -> HolidayCalendar:
    """The days off and make-up working days of `country` in `years` (cached per year)."""
    validate_holiday_calendar(country)
    return _calendar(country, tuple(sorted(set(years))))


def validate_opening_hours(hours: OpeningHours) -> None:
    """Refuse what the types alone cannot: inverted periods, empty or contradictory entries."""
    errors: list[FieldError] = []
    for index, period in enumerate(hours.periods):
        where = f"periods[{index}]"
        if period.end_date is not None and period.end_date < period.start_date:
            errors.append(FieldError(f"{where}.end_date", "must not be before start_date"))
        if period.closed and period.spans:
            errors.append(FieldError(f"{where}.spans", "a closed period has no spans"))
        if not period.closed and not period.spans:
            errors.append(
                FieldError(f"{where}.spans", "an open period needs spans (or set closed: true)")
            )
        for number, span in enumerate(period.spans):
            if span.start == span.end:
                errors.append(
                    FieldError(f"{where}.spans[{number}]", "a span must not start where it ends")
                )
            if not span.weekdays:
                errors.append(FieldError(f"{where}.spans[{number}].weekdays", "must not be empty"))
            elif len(set(span.weekdays)) != len(span.weekdays):
                errors.append(
                    FieldError(f"{where}.spans[{number}].weekdays", "must not repeat a weekday")
                )
    if errors:
        raise InvalidRequest("the opening hours contradict themselves", errors=errors)


def winning_period(periods: Iterable[Period], day: date) -> Period | None:
    """The shortest period covering `day`; of equally short ones, the one listed last."""
    winner: Period | None = None
    for period in periods:
        if period.covers(day) and (winner is None or period.length <= winner.length):
            winner = period
    return winner


def winners_by_day(periods: Sequence[Period], first: date, last: date) -> list[Period | None]:
    """`winning_period` for each day from `first` to `last`, all at once.

    Periods are painted over the days from the weakest (longest; of equals, listed first) to the
    strongest, so each day keeps the one that wins it: a year of ten periods in microseconds.
    """
    days = (last - first).days + 1
    winners: list[Period | None] = [None] * days
    ranked = sorted(enumerate(periods), key=lambda item: (-item[1].length, item[0]))
    for _, period in ranked:
        start = max((period.start_date - first).days, 0)
        end = days if period.end_date is None else min((period.end_date - first).days + 1, days)
        if start < end:
            winners[start:end] = [period] * (end - start)
    return winners


def _day_spans(
    hours: OpeningHours, calendar: HolidayCalendar, day: date, period: Period | None
) -> Iterable[tuple[time, time]]:
    if period is None or period.closed:
        return ()
    weekday = day.isoweekday()
    if hours.public_holidays == "closed":
        if day in calendar.days_off:
            return ()
        if day in calendar.workdays:
            weekday = MONDAY
    return ((span.start, span.end) for span in period.spans if weekday in span.weekdays)


def _instant(day: date, wall: time, zone: tzinfo) -> datetime:
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)


def resolve(
    hours: OpeningHours, zone: tzinfo, calendar: HolidayCalendar, window: Interval
) -> list[Interval]:
    """The instants inside `window` when the venue is open: sorted, disjoint, in UTC."""
    first = window.start.astimezone(zone).date() - timedelta(days=1)  # a span from the day before
    last = window.end.astimezone(zone).date()
    found: list[Interval] = []
    one_day = timedelta(days=1)
    for offset, period in enumerate(winners_by_day(hours.periods, first, last)):
        day = first + timedelta(days=offset)
        for start, end in _day_spans(hours, calendar, day, period):
            opens = _instant(day, start, zone)
            closes = _instant(day + one_day if end <= start else day, end, zone)
            if opens < closes and opens < window.end and window.start < closes:
                found.append(Interval(max(opens, window.start), min(closes, window.end)))
    return merge(found)
