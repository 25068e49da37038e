"""Recurring bookings: an RFC 5545 RRULE expanded in the venue's wall-clock time.

A weekly 18:00 booking stays at 18:00 local across a DST change, so occurrences are computed on
naive local times and only then placed in the zone: a repeated time is its first occurrence, as
in opening hours, and an occurrence starting at a time the clock skips is read at the offset
before the change (RFC 5545), so it starts later by the gap and keeps its length.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from shared.errors import FieldError, InvalidRequest
from shared.time import Interval

MAX_OCCURRENCES = 200
# dateutil looks for the next occurrence period by period and only stops at year 9999, so a rule
# that no date satisfies (30 February) would cost seconds of CPU per request. Its search is pure
# Python, so it is bounded by counting the interpreter's trace events: a day examined costs about
# thirty, so this is a search of some nine years of days, and at most ~30 ms of CPU.
SEARCH_STEPS = 100_000


class _SearchTooLong(Exception):
    pass


def _first_starts(rule: rrule, count: int) -> list[datetime]:
    """Up to `count` starts of `rule`, or `_SearchTooLong` once the search exceeds its budget."""
    steps = 0

    def count_steps(_frame: FrameType, _event: str, _arg: Any) -> Any:
        nonlocal steps
        steps += 1
        if steps > SEARCH_STEPS:
            raise _SearchTooLong
        return count_steps

    starts: Iterator[datetime] = iter(rule)
    previous = sys.gettrace()
    sys.settrace(count_steps)
    try:
        return list(itertools.islice(starts, count))
    finally:
        sys.settrace(previous)


def _invalid(message: str, code: str = "invalid_rrule") -> InvalidRequest:
    return InvalidRequest(message, code=code, errors=[FieldError("series.rrule", message)])


def _parse(text: str, first_start: datetime) -> rrule:
    body = text.strip().removeprefix("RRULE:")
    upper = body.upper()
    if "COUNT=" not in upper and "UNTIL=" not in upper:
        raise _invalid("an RRULE needs COUNT or UNTIL")
    if any(part in upper for part in ("DTSTART", "\n", "EXDATE", "RDATE")):
        raise _invalid("only the RRULE itself is accepted; the series starts at `start`")
    try:
        rule = rrulestr(body, dtstart=first_start)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _invalid(f"not an RRULE: {exc}") from exc
    if not isinstance(rule, rrule):
        raise _invalid("one RRULE, not a set")
    intervals = [part.split("=", 1)[1] for part in upper.split(";") if part.startswith("INTERVAL=")]
    if any(not value.isdigit() or int(value) < 1 for value in intervals):
        raise _invalid("INTERVAL must be a positive integer")
    return rule


def _until_as_local(text: str, zone: ZoneInfo) -> str:
    """dateutil wants UNTIL naive when DTSTART is; an UNTIL in UTC (`Z`) is turned local."""
    parts = []
    for part in text.strip().removeprefix("RRULE:").split(";"):
        key, _, value = part.partition("=")
        if key.upper() == "UNTIL" and value.upper().endswith("Z"):
            try:
                until = datetime.strptime(value.upper(), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
                # Inside the try: the end of year 9999 in UTC is past it in a zone east of UTC.
                value = until.astimezone(zone).strftime("%Y%m%dT%H%M%S")
            except (ValueError, OverflowError) as exc:
                raise _invalid(
                    f"UNTIL is not a UTC date-time this calendar holds: {value}"
                ) from exc
        parts.append(f"{key}={value}")
    return ";".join(parts)


def expand(text: str, first: Interval, zone: ZoneInfo) -> list[Interval]:
    """The occurrences of `first` by the rule, each as long in wall-clock time as the first."""
    local_start = first.start.astimezone(zone).replace(tzinfo=None)
    local_length = first.end.astimezone(zone).replace(tzinfo=None) - local_start
    rule = _parse(_until_as_local(text, zone), local_start)
    try:
        starts = _first_starts(rule, MAX_OCCURRENCES + 1)
    except (ValueError, OverflowError) as exc:
        raise _invalid(f"the RRULE cannot be expanded: {exc}") from exc
    except _SearchTooLong:
        raise _invalid("the RRULE's occurrences are too rare (or never happen) to book") from None
    if len(starts) > MAX_OCCURRENCES:
        raise _invalid(
            f"a series has at most {MAX_OCCURRENCES} occurrences", code="too_many_occurrences"
        )
    if not starts:
        raise _invalid("the RRULE yields no occurrence")
    occurrences = []
    for start in starts:
        if start == local_start:  # the requested interval itself, in the repeated hour too
            occurrences.append(first)
            continue
        opens = start.replace(tzinfo=zone).astimezone(UTC)
        if _exists(start, zone):
            closes = (start + local_length).replace(tzinfo=zone).astimezone(UTC)
        else:
            # RFC 5545 reads a skipped wall time at the offset before the gap: the occurrence
            # moves later by the gap and keeps its length, rather than shrink or vanish.
            closes = opens + local_length
        occurrences.append(Interval(opens, closes))
    return occurrences


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    """Whether the clock in `zone` ever shows `wall` (it does not in a spring-forward gap)."""
    placed = wall.replace(tzinfo=zone)
    return placed.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall
