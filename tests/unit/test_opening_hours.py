"""Opening-hours resolution with plain values: periods, exceptions, holidays, midnight and DST."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.registry.domain.hours import (
    HolidayCalendar,
    OpeningHours,
    Period,
    holiday_calendar,
    resolve,
    validate_opening_hours,
    winners_by_day,
    winning_period,
)
from shared.errors import InvalidRequest
from shared.time import Interval, WeeklySpan, check_range

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NO_HOLIDAYS = HolidayCalendar()
EVERY_DAY = (1, 2, 3, 4, 5, 6, 7)


def at(zone: ZoneInfo, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def local_window(zone: ZoneInfo, first: date, last: date) -> Interval:
    """From the start of `first` to the end of `last`, local time."""
    return Interval(at(zone, first, 0), at(zone, last + timedelta(days=1), 0))


def evenings(*periods: Period, public_holidays: str = "closed") -> OpeningHours:
    return OpeningHours(periods=periods, public_holidays=public_holidays)  # type: ignore[arg-type]


TERM = Period(
    name="term",
    start_date=date(2026, 9, 1),
    end_date=date(2027, 1, 20),
    spans=(
        WeeklySpan(weekdays=(1, 2, 3, 4, 5), start=time(18), end=time(21)),
        WeeklySpan(weekdays=(6, 7), start=time(8, 30), end=time(17)),
    ),
)


def open_days(intervals: list[Interval], zone: ZoneInfo) -> set[date]:
    return {interval.start.astimezone(zone).date() for interval in intervals}


def test_weekday_evenings_and_weekend_days_resolve_to_utc_instants() -> None:
    week = local_window(SHANGHAI, date(2026, 9, 7), date(2026, 9, 13))  # Monday to Sunday
    resolved = resolve(evenings(TERM), SHANGHAI, NO_HOLIDAYS, week)
    assert len(resolved) == 7
    assert resolved[0] == Interval(
        datetime(2026, 9, 7, 10, tzinfo=UTC), datetime(2026, 9, 7, 13, tzinfo=UTC)
    )
    assert resolved[-1] == Interval(
        datetime(2026, 9, 13, 0, 30, tzinfo=UTC), datetime(2026, 9, 13, 9, tzinfo=UTC)
    )
    assert all(interval.start.tzinfo is UTC for interval in resolved)


def test_the_window_clips_the_intervals_at_both_ends() -> None:
    window = Interval(at(SHANGHAI, date(2026, 9, 7), 19), at(SHANGHAI, date(2026, 9, 8), 20))
    resolved = resolve(evenings(TERM), SHANGHAI, NO_HOLIDAYS, window)
    assert resolved == [
        Interval(at(SHANGHAI, date(2026, 9, 7), 19), at(SHANGHAI, date(2026, 9, 7), 21)),
        Interval(at(SHANGHAI, date(2026, 9, 8), 18), at(SHANGHAI, date(2026, 9, 8), 20)),
    ]


def test_nothing_is_open_outside_every_period() -> None:
    summer = local_window(SHANGHAI, date(2026, 8, 1), date(2026, 8, 31))
    assert resolve(evenings(TERM), SHANGHAI, NO_HOLIDAYS, summer) == []


def test_a_shorter_period_wins_where_periods_overlap() -> None:
    exam_week = Period(
        name="exam week", start_date=date(2026, 9, 7), end_date=date(2026, 9, 9), closed=True
    )
    late_evening = Period(
        name="late",
        start_date=date(2026, 9, 10),
        end_date=date(2026, 9, 10),
        spans=(WeeklySpan(weekdays=(4,), start=time(20), end=time(22, 30)),),
    )
    week = local_window(SHANGHAI, date(2026, 9, 7), date(2026, 9, 11))
    resolved = resolve(evenings(TERM, exam_week, late_evening), SHANGHAI, NO_HOLIDAYS, week)
    assert open_days(resolved, SHANGHAI) == {date(2026, 9, 10), date(2026, 9, 11)}
    assert resolved[0] == Interval(
        at(SHANGHAI, date(2026, 9, 10), 20), at(SHANGHAI, date(2026, 9, 10), 22, 30)
    )


def test_of_two_equally_short_periods_the_later_listed_wins() -> None:
    first = Period("a", date(2026, 9, 7), date(2026, 9, 7), closed=True)
    second = Period("b", date(2026, 9, 7), date(2026, 9, 7), spans=TERM.spans)
    assert winning_period((TERM, first, second), date(2026, 9, 7)) is second
    assert winning_period((TERM, second, first), date(2026, 9, 7)) is first


def test_a_period_without_end_runs_on_and_loses_to_any_that_ends() -> None:
    forever = Period("standing", date(2020, 1, 1), None, spans=TERM.spans)
    assert winning_period((forever,), date(2099, 5, 5)) is forever
    assert winning_period((forever, TERM), date(2026, 10, 12)) is TERM


def test_a_span_across_midnight_belongs_to_the_day_it_starts() -> None:
    night = Period(
        "night",
        date(2026, 9, 1),
        None,
        spans=(WeeklySpan(weekdays=(5,), start=time(22), end=time(2)),),
    )
    # Saturday 00:00 to 03:00: only the tail of Friday's night is inside.
    window = Interval(at(SHANGHAI, date(2026, 9, 12), 0), at(SHANGHAI, date(2026, 9, 12), 3))
    assert resolve(evenings(night), SHANGHAI, NO_HOLIDAYS, window) == [
        Interval(at(SHANGHAI, date(2026, 9, 12), 0), at(SHANGHAI, date(2026, 9, 12), 2))
    ]


def test_spans_that_touch_merge_into_one_interval() -> None:
    split = Period(
        "split",
        date(2026, 9, 1),
        None,
        spans=(
            WeeklySpan(weekdays=(1,), start=time(8), end=time(12)),
            WeeklySpan(weekdays=(1,), start=time(12), end=time(0)),
            WeeklySpan(weekdays=(2,), start=time(0), end=time(6)),
        ),
    )
    monday = local_window(SHANGHAI, date(2026, 9, 7), date(2026, 9, 8))
    assert resolve(evenings(split), SHANGHAI, NO_HOLIDAYS, monday) == [
        Interval(at(SHANGHAI, date(2026, 9, 7), 8), at(SHANGHAI, date(2026, 9, 8), 6))
    ]


# The 2026 Chinese calendar, straight from the `holidays` package.

CN_2026 = holiday_calendar("CN", [2026])


def test_national_day_week_is_closed_every_day_including_its_weekend() -> None:
    golden_week = local_window(SHANGHAI, date(2026, 10, 1), date(2026, 10, 7))
    assert resolve(evenings(TERM), SHANGHAI, CN_2026, golden_week) == []
    after = local_window(SHANGHAI, date(2026, 10, 8), date(2026, 10, 8))
    assert len(resolve(evenings(TERM), SHANGHAI, CN_2026, after)) == 1


def test_the_make_up_saturday_is_a_working_day_with_mondays_hours() -> None:
    assert date(2026, 10, 10) in CN_2026.workdays  # a Saturday worked for the national day
    saturday = local_window(SHANGHAI, date(2026, 10, 10), date(2026, 10, 10))
    assert resolve(evenings(TERM), SHANGHAI, CN_2026, saturday) == [
        Interval(at(SHANGHAI, date(2026, 10, 10), 18), at(SHANGHAI, date(2026, 10, 10), 21))
    ]


def test_the_make_up_sunday_before_national_day_is_a_working_day() -> None:
    assert date(2026, 9, 20) in CN_2026.workdays
    sunday = local_window(SHANGHAI, date(2026, 9, 20), date(2026, 9, 20))
    assert resolve(evenings(TERM), SHANGHAI, CN_2026, sunday) == [
        Interval(at(SHANGHAI, date(2026, 9, 20), 18), at(SHANGHAI, date(2026, 9, 20), 21))
    ]


def test_a_venue_that_opens_on_holidays_ignores_the_calendar() -> None:
    hours = evenings(TERM, public_holidays="open")
    national_day = local_window(SHANGHAI, date(2026, 10, 1), date(2026, 10, 1))
    make_up = local_window(SHANGHAI, date(2026, 10, 10), date(2026, 10, 10))
    assert len(resolve(hours, SHANGHAI, CN_2026, national_day)) == 1
    weekend_day = resolve(hours, SHANGHAI, CN_2026, make_up)
    assert weekend_day[0].start == at(SHANGHAI, date(2026, 10, 10), 8, 30)


def test_other_countries_come_from_the_same_package() -> None:
    germany = holiday_calendar("DE", [2026])
    assert date(2026, 12, 25) in germany.days_off
    assert not germany.workdays


def test_an_unknown_calendar_is_refused() -> None:
    with pytest.raises(InvalidRequest) as refused:
        holiday_calendar("XX", [2026])
    assert refused.value.code == "invalid_holiday_calendar"


# Daylight saving time in Europe/Berlin: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00.

ALL_YEAR_EVENINGS = Period(
    "year",
    date(2026, 1, 1),
    None,
    spans=(WeeklySpan(weekdays=EVERY_DAY, start=time(18), end=time(21)),),
)


def test_berlin_evenings_move_in_utc_across_both_dst_changes() -> None:
    around_spring = local_window(BERLIN, date(2026, 3, 28), date(2026, 3, 29))
    spring = resolve(evenings(ALL_YEAR_EVENINGS), BERLIN, NO_HOLIDAYS, around_spring)
    assert [interval.start for interval in spring] == [
        datetime(2026, 3, 28, 17, tzinfo=UTC),  # CET, UTC+1
        datetime(2026, 3, 29, 16, tzinfo=UTC),  # CEST, UTC+2
    ]
    around_autumn = local_window(BERLIN, date(2026, 10, 24), date(2026, 10, 25))
    autumn = resolve(evenings(ALL_YEAR_EVENINGS), BERLIN, NO_HOLIDAYS, around_autumn)
    assert [interval.start for interval in autumn] == [
        datetime(2026, 10, 24, 16, tzinfo=UTC),
        datetime(2026, 10, 25, 17, tzinfo=UTC),
    ]
    assert all(interval.duration == timedelta(hours=3) for interval in spring + autumn)


def test_a_night_span_over_a_dst_change_lasts_the_real_time_that_passes() -> None:
    night = Period(
        "night",
        date(2026, 1, 1),
        None,
        spans=(WeeklySpan(weekdays=(6,), start=time(22), end=time(6)),),
    )
    spring_night = local_window(BERLIN, date(2026, 3, 28), date(2026, 3, 29))
    autumn_night = local_window(BERLIN, date(2026, 10, 24), date(2026, 10, 25))
    assert resolve(evenings(night), BERLIN, NO_HOLIDAYS, spring_night)[0].duration == timedelta(
        hours=7
    )
    assert resolve(evenings(night), BERLIN, NO_HOLIDAYS, autumn_night)[0].duration == timedelta(
        hours=9
    )


def test_a_span_starting_in_the_skipped_hour_opens_when_the_clock_reaches_it() -> None:
    early = Period(
        "early",
        date(2026, 1, 1),
        None,
        spans=(WeeklySpan(weekdays=(7,), start=time(2, 30), end=time(5)),),
    )
    spring_sunday = local_window(BERLIN, date(2026, 3, 29), date(2026, 3, 29))
    (interval,) = resolve(evenings(early), BERLIN, NO_HOLIDAYS, spring_sunday)
    assert interval.start == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert interval.end == datetime(2026, 3, 29, 3, tzinfo=UTC)  # 05:00 CEST


# Validation


def test_contradictory_hours_are_refused_with_every_field_named() -> None:
    hours = evenings(
        Period("inverted", date(2026, 9, 1), date(2026, 8, 1), spans=TERM.spans),
        Period("closed with spans", date(2026, 9, 1), None, spans=TERM.spans, closed=True),
        Period("open without spans", date(2026, 9, 1), None),
        Period(
            "bad spans",
            date(2026, 9, 1),
            None,
            spans=(
                WeeklySpan(weekdays=(), start=time(8), end=time(9)),
                WeeklySpan(weekdays=(1, 1), start=time(8), end=time(9)),
                WeeklySpan(weekdays=(1,), start=time(8), end=time(8)),
            ),
        ),
    )
    with pytest.raises(InvalidRequest) as refused:
        validate_opening_hours(hours)
    assert {error.field for error in refused.value.errors} == {
        "periods[0].end_date",
        "periods[1].spans",
        "periods[2].spans",
        "periods[3].spans[0].weekdays",
        "periods[3].spans[1].weekdays",
        "periods[3].spans[2]",
    }


def test_a_range_longer_than_a_year_is_refused() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    check_range(Interval(start, start + timedelta(days=366)))
    with pytest.raises(InvalidRequest) as refused:
        check_range(Interval(start, start + timedelta(days=400)))
    assert refused.value.code == "range_too_long"


# Properties

ZONES = st.sampled_from(
    [ZoneInfo(name) for name in ("Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC")]
)
times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
spans = st.builds(
    WeeklySpan,
    weekdays=st.lists(st.integers(1, 7), min_size=1, max_size=7, unique=True).map(tuple),
    start=times,
    end=times,
).filter(lambda span: span.start != span.end)
days = st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 6, 30))


@st.composite
def periods(draw: st.DrawFn) -> Period:
    start = draw(days)
    end = draw(st.none() | st.integers(0, 120).map(lambda n: start + timedelta(days=n)))
    closed = draw(st.booleans().map(lambda b: b and draw(st.integers(0, 3)) == 0))
    return Period(
        name="p",
        start_date=start,
        end_date=end,
        spans=() if closed else tuple(draw(st.lists(spans, min_size=1, max_size=4))),
        closed=closed,
    )


hours_strategy = st.builds(
    OpeningHours,
    periods=st.lists(periods(), min_size=1, max_size=6).map(tuple),
    public_holidays=st.sampled_from(["closed", "open"]),
)


@st.composite
def windows(draw: st.DrawFn) -> Interval:
    start = datetime.combine(draw(days), time(), tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(0, 24 * 60 - 1))
    )
    return Interval(start, start + timedelta(hours=draw(st.integers(1, 24 * 60))))


@settings(max_examples=200, deadline=None)
@given(hours=hours_strategy, zone=ZONES, window=windows())
def test_resolved_intervals_are_sorted_disjoint_and_inside_the_window(
    hours: OpeningHours, zone: ZoneInfo, window: Interval
) -> None:
    resolved = resolve(hours, zone, CN_BOTH_YEARS, window)
    assert all(window.contains(interval) for interval in resolved)
    assert all(a.end < b.start for a, b in itertools.pairwise(resolved))
    assert all(interval.start.utcoffset() == timedelta(0) for interval in resolved)


CN_BOTH_YEARS = holiday_calendar("CN", [2025, 2026, 2027])


@settings(max_examples=200, deadline=None)
@given(hours=hours_strategy, zone=ZONES, window=windows())
def test_no_interval_starts_on_a_closed_day(
    hours: OpeningHours, zone: ZoneInfo, window: Interval
) -> None:
    """A day is closed when its winning period is closed or absent, or it is a day off."""
    for interval in resolve(hours, zone, CN_BOTH_YEARS, window):
        # Every open instant belongs to a span of some open day: that day or the one before it.
        local = interval.start.astimezone(zone).date()
        candidates = [local, local - timedelta(days=1)]
        assert any(_is_open_day(hours, day) for day in candidates)


def _is_open_day(hours: OpeningHours, day: date) -> bool:
    period = winning_period(hours.periods, day)
    if period is None or period.closed:
        return False
    return not (hours.public_holidays == "closed" and day in CN_BOTH_YEARS.days_off)


@settings(max_examples=100, deadline=None)
@given(hours=hours_strategy, zone=ZONES, window=windows(), data=st.data())
def test_an_exception_period_decides_its_days(
    hours: OpeningHours, zone: ZoneInfo, window: Interval, data: st.DataObject
) -> None:
    """A one-day closed exception added anywhere leaves that day without a single open minute."""
    local_day = window.start.astimezone(zone).date()
    day = local_day + timedelta(days=data.draw(st.integers(0, 3)))
    closed = Period("exception", day, day, closed=True)
    with_exception = OpeningHours(
        periods=(*hours.periods, closed), public_holidays=hours.public_holidays
    )
    day_window = local_window(zone, day, day)
    for interval in resolve(with_exception, zone, CN_BOTH_YEARS, day_window):
        # Only a span from the evening before may reach past midnight into the closed day.
        assert interval.start == day_window.start


@settings(max_examples=200, deadline=None)
@given(found=st.lists(periods(), min_size=1, max_size=8), first=days, length=st.integers(0, 60))
def test_winners_of_a_range_agree_with_the_winner_of_each_day(
    found: list[Period], first: date, length: int
) -> None:
    last = first + timedelta(days=length)
    winners = winners_by_day(found, first, last)
    assert len(winners) == length + 1
    for offset, winner in enumerate(winners):
        assert winner is winning_period(found, first + timedelta(days=offset))
