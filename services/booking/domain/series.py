"""Recurring bookings: an RFC 5545 RRULE expanded in the venue's wall-clock time.

A weekly 18:00 booking stays at 18:00 local across a DST change, so occurrences are computed on
naive local times and only then placed in the zone (a skipped time takes the offset before the
change, a repeated one its first occurrence, as opening hours do).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

from shared.errors import FieldError, InvalidRequest
from shared.time import Interval

MAX_OCCURRENCES = 200


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
            except ValueError as exc:
                raise _invalid(f"UNTIL is not a UTC date-time: {value}") from exc
            value = until.astimezone(zone).strftime("%Y%m%dT%H%M%S")
        parts.append(f"{key}={value}")
    return ";".join(parts)


def expand(text: str, first: Interval, zone: ZoneInfo) -> list[Interval]:
    """The occurrences of `first` by the rule, each as long in wall-clock time as the first."""
    local_start = first.start.astimezone(zone).replace(tzinfo=None)
    local_length = first.end.astimezone(zone).replace(tzinfo=None) - local_start
    rule = _parse(_until_as_local(text, zone), local_start)
    try:
        starts = list(itertools.islice(iter(rule), MAX_OCCURRENCES + 1))
    except (ValueError, OverflowError) as exc:
        raise _invalid(f"the RRULE cannot be expanded: {exc}") from exc
    if len(starts) > MAX_OCCURRENCES:
        raise _invalid(
            f"a series has at most {MAX_OCCURRENCES} occurrences", code="too_many_occurrences"
        )
    if not starts:
        raise _invalid("the RRULE yields no occurrence")
    occurrences = []
    for start in starts:
        opens = start.replace(tzinfo=zone).astimezone(UTC)
        closes = (start + local_length).replace(tzinfo=zone).astimezone(UTC)
        if opens < closes:
            occurrences.append(Interval(opens, closes))
    return occurrences
