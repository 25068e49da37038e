"""Free time: a resource's open intervals minus its live bookings and their turnover buffers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from shared.time import Interval, subtract


def free_intervals(
    open_intervals: Iterable[Interval], booked: Iterable[Interval], buffer_minutes: int
) -> list[Interval]:
    """Where a new booking may lie: a booking needs `buffer_minutes` clear on either side."""
    buffer = timedelta(minutes=buffer_minutes)
    return subtract(
        open_intervals,
        (Interval(booking.start - buffer, booking.end + buffer) for booking in booked),
    )


def stretches_of(free: Iterable[Interval], minutes: int) -> list[Interval]:
    """The free intervals long enough for a booking of `minutes`."""
    need = timedelta(minutes=minutes)
    return [interval for interval in free if interval.duration >= need]
