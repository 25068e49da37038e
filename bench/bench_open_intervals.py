"""Resolving one year of open intervals for a venue with 10 periods: the pure domain call.

Term and vacation periods, closed exceptions, a night span across midnight, the Chinese holiday
calendar and a DST zone (Europe/Berlin, the harder case). Target: under 5 ms per year.

    .venv/bin/python bench/bench_open_intervals.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall
from zoneinfo import ZoneInfo

from services.registry.domain.hours import (
    OpeningHours,
    Period,
    holiday_calendar,
    resolve,
)
from shared.time import Interval, WeeklySpan, check_range

WEEKDAYS = (1, 2, 3, 4, 5)
WEEKEND = (6, 7)


def ten_periods() -> OpeningHours:
    term_spans = (
        WeeklySpan(weekdays=WEEKDAYS, start=wall(18), end=wall(21)),
        WeeklySpan(weekdays=WEEKEND, start=wall(8, 30), end=wall(12)),
        WeeklySpan(weekdays=WEEKEND, start=wall(13, 30), end=wall(17)),
        WeeklySpan(weekdays=(5,), start=wall(22), end=wall(1)),
    )
    vacation_spans = (WeeklySpan(weekdays=(1, 2, 3, 4, 5, 6, 7), start=wall(9), end=wall(17)),)
    periods = [
        Period("spring term", date(2026, 2, 23), date(2026, 7, 10), spans=term_spans),
        Period("summer vacation", date(2026, 7, 11), date(2026, 8, 31), spans=vacation_spans),
        Period("autumn term", date(2026, 9, 1), date(2027, 1, 20), spans=term_spans),
        Period("winter vacation", date(2026, 1, 1), date(2026, 2, 22), spans=vacation_spans),
        Period("exam week", date(2026, 6, 22), date(2026, 6, 26), closed=True),
        Period("sports day", date(2026, 10, 16), date(2026, 10, 16), closed=True),
        Period("renovation", date(2026, 8, 10), date(2026, 8, 16), closed=True),
        Period("open day", date(2026, 5, 16), date(2026, 5, 16), spans=vacation_spans),
        Period("exam week", date(2026, 12, 21), date(2026, 12, 25), closed=True),
        Period("standing", date(2020, 1, 1), None, spans=vacation_spans),
    ]
    return OpeningHours(periods=tuple(periods), public_holidays="closed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()

    hours = ten_periods()
    for zone_name in ("Asia/Shanghai", "Europe/Berlin"):
        zone = ZoneInfo(zone_name)
        year = Interval(
            datetime(2026, 1, 1, tzinfo=zone).astimezone(UTC),
            datetime(2027, 1, 1, tzinfo=zone).astimezone(UTC),
        )
        years = range(year.start.year - 1, year.end.year + 1)
        holiday_calendar("CN", years)  # the calendar is cached per year; warm it as a server would
        samples = []
        for _ in range(args.rounds):
            began = time.perf_counter()
            check_range(year)
            intervals = resolve(hours, zone, holiday_calendar("CN", years), year)
            samples.append((time.perf_counter() - began) * 1000)
        open_hours = sum((i.duration for i in intervals), timedelta()) / timedelta(hours=1)
        median = statistics.median(samples)
        print(
            f"{zone_name}: {len(intervals)} intervals, {open_hours:.0f} open hours; "
            f"median {median:.2f} ms, p95 {statistics.quantiles(samples, n=20)[18]:.2f} ms "
            f"over {args.rounds} rounds, target < 5 ms:",
            "PASS" if median < 5 else "FAIL",
        )


if __name__ == "__main__":
    main()
