"""The weekly share of a venue, with plain values: weeks in the venue's zone, what fits, why not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from services.booking.domain.fair_use import (
    WeekCharge,
    bound,
    charges,
    share_exceeded,
    used_by,
    week_of,
    weeks_of,
    within_share,
)
from shared.auth import Principal, Role
from shared.time import Interval

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def at(day: int, hour: int, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime(2026, 12, day, hour, tzinfo=zone)  # 2026-12-07 is a Monday


def hours(day: int, start: int, end: int) -> Interval:
    return Interval(at(day, start), at(day, end))


def test_a_week_runs_from_local_monday_midnight() -> None:
    week = week_of(at(9, 23), SHANGHAI)
    assert (week.start, week.end) == (at(7, 0), at(14, 0))
    # Sunday 23:00 in Shanghai is Sunday 15:00 UTC: still that week, though UTC says the same.
    assert week_of(at(13, 23).astimezone(UTC), SHANGHAI) == week


def test_a_week_across_the_autumn_change_is_168_hours_plus_one() -> None:
    week = week_of(datetime(2026, 10, 21, 12, tzinfo=BERLIN), BERLIN)  # clocks go back on the 25th
    assert week.duration == timedelta(hours=169)


def test_only_the_booking_roles_are_held_to_a_share() -> None:
    def principal(role: Role) -> Principal:
        return Principal(sub="s", role=role, org="o", lecturer_id="l")

    assert bound(principal(Role.COMMUNITY_MANAGER), 10)
    assert bound(principal(Role.VENUE_MANAGER), 10)
    assert not bound(principal(Role.OFFICE), 10)
    assert not bound(principal(Role.COMMUNITY_MANAGER), 0)


def test_what_is_held_counts_and_the_share_may_be_filled_exactly() -> None:
    held = [hours(7, 8, 12)]  # 4 h on Monday
    fits, over = within_share(
        [hours(8, 8, 10), hours(9, 8, 10)], used_by(held, SHANGHAI), SHANGHAI, 8
    )
    assert fits == [hours(8, 8, 10), hours(9, 8, 10)]
    assert over == []
    fits, over = within_share(
        [hours(8, 8, 10), hours(9, 8, 11)], used_by(held, SHANGHAI), SHANGHAI, 8
    )
    assert fits == [hours(8, 8, 10)]
    assert [item.interval for item in over] == [hours(9, 8, 11)]
    assert over[0].held_hours == 6


def test_the_next_week_has_its_own_share() -> None:
    fits, over = within_share([hours(7, 8, 16), hours(14, 8, 16)], {}, SHANGHAI, 8)
    assert len(fits) == 2
    assert over == []


def test_a_booking_over_midnight_on_sunday_counts_in_both_weeks() -> None:
    late = Interval(at(13, 22), at(14, 2))
    assert weeks_of([late], SHANGHAI) == [
        week_of(at(13, 0), SHANGHAI),
        week_of(at(14, 0), SHANGHAI),
    ]
    _, over = within_share([late], used_by([hours(14, 8, 15)], SHANGHAI), SHANGHAI, 8.5)
    assert [item.week.start for item in over] == [at(14, 0)]


def test_a_booking_charges_each_local_week_it_falls_in_by_its_seconds() -> None:
    late = Interval(at(13, 22), at(14, 2))  # Sunday 22:00 to Monday 02:00 in Shanghai
    assert charges(late, SHANGHAI) == [
        WeekCharge(at(7, 0).date(), 2 * 3600),
        WeekCharge(at(14, 0).date(), 2 * 3600),
    ]
    # The same instants are another week's in Berlin, seven hours behind.
    assert charges(late, BERLIN) == [WeekCharge(at(7, 0).date(), 4 * 3600)]
    assert used_by([late, hours(8, 8, 9)], SHANGHAI) == {
        at(7, 0).date(): 3 * 3600,
        at(14, 0).date(): 2 * 3600,
    }


def test_the_answer_says_when_to_come_back_and_which_week() -> None:
    _, over = within_share([hours(9, 8, 20)], {}, SHANGHAI, 8)
    refused = share_exceeded(over, 8, now=at(9, 0))
    assert (refused.status, refused.code) == (429, "fair_use_exceeded")
    assert refused.headers["Retry-After"] == str(5 * 24 * 3600)
    assert "2026-12-07" in refused.detail


@given(
    st.lists(st.tuples(st.integers(7, 20), st.integers(0, 22), st.integers(1, 6)), max_size=30),
    st.floats(0.5, 30),
)
def test_what_fits_never_passes_the_share_of_any_week(
    asked: list[tuple[int, int, int]], share: float
) -> None:
    wanted = [
        Interval(at(day, hour), at(day, hour) + timedelta(hours=length))
        for day, hour, length in asked
    ]
    fits, over = within_share(wanted, {}, SHANGHAI, share)
    assert len(fits) + len(over) == len(wanted)
    for week in weeks_of(fits, SHANGHAI):
        used = sum(
            (part.duration for item in fits if (part := item.clip(week)) is not None),
            timedelta(),
        )
        assert used <= timedelta(hours=share) + timedelta(microseconds=1)
