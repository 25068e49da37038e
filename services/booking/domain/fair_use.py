"""Fair use (OWASP API6, "reserve all the slots"): no organisation holds more than its share of a
venue, however fast it books.

The share is hours of live (pending or confirmed) bookings per venue per week, the venue's local
ISO week (Monday 00:00 to Monday 00:00 in its zone). It binds the organisations that book (community
and venue managers); the office, and the services acting for it, are not held to it, though what
they book for an organisation counts towards its share. Each booking charges the weeks it falls in
(`charges`): the store keeps the sum per organisation, venue and week, so the share is checked by
the booking's own statement. Pure: the service passes in what the organisation already holds and
the occurrences it asks for.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec

from shared.auth import Principal, Role
from shared.errors import FieldError, TooManyRequests
from shared.time import Interval

BOUND_ROLES = frozenset({Role.COMMUNITY_MANAGER, Role.VENUE_MANAGER})


def bound(principal: Principal, hours_per_week: float) -> bool:
    """Whether the caller's bookings are held to its organisation's weekly share."""
    return hours_per_week > 0 and principal.role in BOUND_ROLES


def share_seconds(hours_per_week: float) -> int:
    """The share in whole seconds, rounded down: never more than the hours set (the nudge
    only keeps a float's 2.3 h from counting as 8,279.999... s)."""
    return math.floor(hours_per_week * 3600 + 1e-6)


def week_of(instant: datetime, tz: ZoneInfo) -> Interval:
    """The venue-local ISO week holding `instant`: its Monday midnight to the next one."""
    local = instant.astimezone(tz).date()
    monday = local - timedelta(days=local.weekday())
    start = datetime.combine(monday, time(), tzinfo=tz)
    return Interval(start, datetime.combine(monday + timedelta(days=7), time(), tzinfo=tz))


def week_from(monday: date, tz: ZoneInfo) -> Interval:
    """The venue-local week that begins on `monday`."""
    return week_of(datetime.combine(monday, time(), tzinfo=tz), tz)


def weeks_of(intervals: Iterable[Interval], tz: ZoneInfo) -> list[Interval]:
    """Every local week the intervals touch, in order."""
    weeks: dict[datetime, Interval] = {}
    for interval in intervals:
        week = week_of(interval.start, tz)
        while week.start < interval.end:
            weeks.setdefault(week.start, week)
            week = week_of(week.end, tz)
    return [weeks[start] for start in sorted(weeks)]


class WeekCharge(msgspec.Struct, frozen=True, order=True):
    """What a booking takes of one week's share: the week's local Monday, and its seconds."""

    week: date
    seconds: int


def charges(interval: Interval, tz: ZoneInfo) -> list[WeekCharge]:
    """The weeks `interval` falls in, in order, and its seconds in each."""
    return [
        WeekCharge(week.start.date(), int(part.duration.total_seconds()))
        for week in weeks_of([interval], tz)
        if (part := interval.clip(week)) is not None
    ]


def used_by(held: Iterable[Interval], tz: ZoneInfo) -> dict[date, int]:
    """The seconds of each week that `held` takes."""
    used: dict[date, int] = defaultdict(int)
    for interval in held:
        for charge in charges(interval, tz):
            used[charge.week] += charge.seconds
    return dict(used)


def overdrawn(
    charged: Iterable[WeekCharge], used: Mapping[date, int], cap: int
) -> WeekCharge | None:
    """The first of a booking's charges that would take its week past `cap` seconds beside the
    seconds `used`: the share's rule, which the booking's statement applies in SQL."""
    return next((c for c in charged if used.get(c.week, 0) + c.seconds > cap), None)


class Overdrawn(msgspec.Struct, frozen=True):
    """An occurrence that would take the organisation past its share of the week."""

    interval: Interval
    week: Interval
    held_hours: float


def within_share(
    wanted: Sequence[Interval], used: Mapping[date, int], tz: ZoneInfo, hours_per_week: float
) -> tuple[list[Interval], list[Overdrawn]]:
    """The occurrences that fit the weekly share beside the seconds `used` of each week (taken
    in time order, so the earliest fit), and those that do not."""
    cap = share_seconds(hours_per_week)
    taken: dict[date, int] = defaultdict(int, used)
    fits: list[Interval] = []
    over: list[Overdrawn] = []
    for interval in sorted(wanted):
        charged = charges(interval, tz)
        full = overdrawn(charged, taken, cap)
        if full is not None:
            over.append(Overdrawn(interval, week_from(full.week, tz), taken[full.week] / 3600))
            continue
        for charge in charged:
            taken[charge.week] += charge.seconds
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
