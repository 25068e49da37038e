"""Fair use (OWASP API6, "reserve all the slots"): no organisation holds more than its share of a
venue, however fast it books.

The share is hours of live (pending or confirmed) bookings per venue per week, the venue's local
ISO week (Monday 00:00 to Monday 00:00 in its zone). It binds the organisations that book (community
and venue managers); the office, and the services acting for it, are not held to it. Pure: the
service passes in what the organisation already holds and the occurrences it asks for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec

from shared.auth import Principal, Role
from shared.errors import FieldError, TooManyRequests
from shared.time import Interval

BOUND_ROLES = frozenset({Role.COMMUNITY_MANAGER, Role.VENUE_MANAGER})


def bound(principal: Principal, hours_per_week: float) -> bool:
    """Whether the caller's bookings count against its organisation's weekly share."""
    return hours_per_week > 0 and principal.role in BOUND_ROLES


def week_of(instant: datetime, tz: ZoneInfo) -> Interval:
    """The venue-local ISO week holding `instant`: its Monday midnight to the next one."""
    local = instant.astimezone(tz).date()
    monday = local - timedelta(days=local.weekday())
    start = datetime.combine(monday, time(), tzinfo=tz)
    return Interval(start, datetime.combine(monday + timedelta(days=7), time(), tzinfo=tz))


def weeks_of(intervals: Iterable[Interval], tz: ZoneInfo) -> list[Interval]:
    """Every local week the intervals touch, in order."""
    weeks: dict[datetime, Interval] = {}
    for interval in intervals:
        week = week_of(interval.start, tz)
        while week.start < interval.end:
            weeks.setdefault(week.start, week)
            week = week_of(week.end, tz)
    return [weeks[start] for start in sorted(weeks)]


class Overdrawn(msgspec.Struct, frozen=True):
    """An occurrence that would take the organisation past its share of the week."""

    interval: Interval
    week: Interval
    held_hours: float


def _seconds_in(interval: Interval, week: Interval) -> float:
    part = interval.clip(week)
    return 0.0 if part is None else part.duration.total_seconds()


def within_share(
    wanted: Sequence[Interval], held: Iterable[Interval], tz: ZoneInfo, hours_per_week: float
) -> tuple[list[Interval], list[Overdrawn]]:
    """The occurrences that fit the weekly share beside what is held (taken in time order, so
    the earliest fit), and those that do not."""
    cap = hours_per_week * 3600
    used: dict[datetime, float] = defaultdict(float)
    for interval in held:
        for week in weeks_of([interval], tz):
            used[week.start] += _seconds_in(interval, week)
    fits: list[Interval] = []
    over: list[Overdrawn] = []
    for interval in sorted(wanted):
        weeks = weeks_of([interval], tz)
        full = next(
            (w for w in weeks if used[w.start] + _seconds_in(interval, w) > cap + 1e-6), None
        )
        if full is not None:
            over.append(Overdrawn(interval, full, used[full.start] / 3600))
            continue
        for week in weeks:
            used[week.start] += _seconds_in(interval, week)
        fits.append(interval)
    return fits, over


def share_exceeded(
    over: Sequence[Overdrawn], hours_per_week: float, now: datetime
) -> TooManyRequests:
    """429 `fair_use_exceeded`. Retry-After points at the end of the first full week: until then
    only cancellations free a share, and after it the week is past."""
    first = min(over, key=lambda item: item.week.start)
    wait = max(1, int((first.week.end - now).total_seconds()))
    return TooManyRequests(
        f"the organisation holds {first.held_hours:g} of its {hours_per_week:g} hours at this "
        f"venue in the week from {first.week.start.date().isoformat()}",
        code="fair_use_exceeded",
        errors=[
            FieldError(
                "start",
                f"{item.interval.start.isoformat()} would pass the weekly share of the week "
                f"from {item.week.start.date().isoformat()}",
            )
            for item in over
        ],
        headers={"Retry-After": str(wait)},
    )
