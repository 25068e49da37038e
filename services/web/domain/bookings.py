"""The booking form as a person fills it in, the API's refusals put back beside its fields, and
the list of one's bookings split into upcoming, past and cancelled.

Pure: the page passes in the venue's zone, the room's rules, the reader's locale and `now`.
Words are message ids of the one catalogue (translated when the page is rendered); the values
they name (times, dates, durations) are formatted here through Babel in the reader's locale.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec
from babel.dates import format_timedelta

from services.web.domain import formatting
from services.web.domain.fields import whole_number
from services.web.domain.locales import babel_locale
from services.web.domain.text import N_
from shared.contracts import Rules

PROGRAMMES: Final = {
    "degree": N_("Degree education"),
    "workforce": N_("Workforce training"),
    "assistance": N_("Assistance education"),
    "youth": N_("Youth education"),
    "elderly": N_("Elderly education"),
    "citizen": N_("Citizen literacy"),
}
MODES: Final = ("skip_conflicts", "all_or_nothing")
# The roles whose pages these are: the office, and the managers who book for their organisation.
BOOKING_ROLES: Final = frozenset({"office", "venue_manager", "community_manager"})
# The booking service expands at most this many occurrences of a series.
MOST_OCCURRENCES: Final = 200
LONGEST_PURPOSE: Final = 500
MOST_ATTENDEES: Final = 100_000


class Problem(msgspec.Struct, frozen=True):
    """What is wrong, beside which field of the form: a message id and the values it names."""

    field: str
    message: str
    params: dict[str, str] = msgspec.field(default_factory=dict)


class BookingDraft(msgspec.Struct, frozen=True):
    """A booking form that reads well: what the booking service is asked to make."""

    resource_ids: tuple[str, ...]
    start: datetime
    end: datetime
    purpose: str
    programme: str | None = None
    attendees: int | None = None
    rrule: str | None = None
    mode: str = "skip_conflicts"

    def body(self) -> dict[str, Any]:
        """The body of `POST /v1/bookings`."""
        body: dict[str, Any] = {
            "resource_ids": list(self.resource_ids),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "purpose": self.purpose,
        }
        if self.programme is not None:
            body["programme"] = self.programme
        if self.attendees is not None:
            body["attendees"] = self.attendees
        if self.rrule is not None:
            body["series"] = {"rrule": self.rrule, "mode": self.mode}
        return body


def _first(form: Mapping[str, Sequence[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0].strip()


def _instant(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def form_times(start: datetime, end: datetime, zone: ZoneInfo) -> dict[str, str]:
    """The typed fields (`date`, `start_time`, `end_time`) showing an interval in the venue's
    wall-clock time: the week grid's links give instants, the form shows what a person types.
    Instants without an offset name no time: no fields."""
    if start.tzinfo is None or end.tzinfo is None:
        return {}
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    return {
        "date": local_start.date().isoformat(),
        "start_time": local_start.time().isoformat(timespec="minutes"),
        "end_time": local_end.time().isoformat(timespec="minutes"),
    }


def _interval(
    form: Mapping[str, Sequence[str]], zone: ZoneInfo, problems: list[Problem]
) -> tuple[datetime | None, datetime | None]:
    """`date` with `start_time` and `end_time` in the venue's zone, or else the instants
    `start` and `end` as the week grid's links give them."""
    if not _first(form, "date") and _first(form, "start") and _first(form, "end"):
        start, end = _instant(_first(form, "start")), _instant(_first(form, "end"))
        if start is None or end is None:
            problems.append(Problem("date", N_("Enter a date such as 2026-11-23.")))
            return None, None
    else:
        day_text = _first(form, "date")
        day = None
        try:
            day = date.fromisoformat(day_text) if day_text else None
        except ValueError:
            problems.append(Problem("date", N_("Enter a date such as 2026-11-23.")))
        if not day_text:
            problems.append(Problem("date", N_("This field is required.")))
        clocks: list[time | None] = []
        for name in ("start_time", "end_time"):
            text = _first(form, name)
            try:
                clocks.append(time.fromisoformat(text) if text else None)
            except ValueError:
                clocks.append(None)
                problems.append(Problem(name, N_("Enter a time such as 18:00.")))
                continue
            if not text:
                problems.append(Problem(name, N_("This field is required.")))
        opens, closes = clocks
        if day is None or opens is None or closes is None:
            return None, None
        start = datetime.combine(day, opens, zone)
        end = datetime.combine(day, closes, zone)
    if end <= start:
        problems.append(Problem("end_time", N_("The end must come after the start.")))
        return None, None
    return start, end


def weekly_rule(*, until: date | None, count: int | None) -> str:
    """The RFC 5545 RRULE of a weekly repeat from the first booking, ending on a date (its last
    minute, in the venue's wall-clock time, as booking reads a floating UNTIL) or after a count."""
    if count is not None:
        return f"FREQ=WEEKLY;COUNT={count}"
    assert until is not None
    return f"FREQ=WEEKLY;UNTIL={until.isoformat().replace('-', '')}T235959"


def _repeat(
    form: Mapping[str, Sequence[str]],
    start: datetime | None,
    zone: ZoneInfo,
    problems: list[Problem],
) -> tuple[str | None, str]:
    mode = _first(form, "mode") or "skip_conflicts"
    if mode not in MODES:
        problems.append(Problem("mode", N_("Please check what you entered.")))
    if _first(form, "repeat") != "weekly":
        return None, mode
    until_text, count_text = _first(form, "until"), _first(form, "count")
    until = count = None
    if count_text:
        count = whole_number(count_text, low=2, high=MOST_OCCURRENCES)
        if count is None:
            problems.append(
                Problem(
                    "count",
                    N_("Enter how many times, from 2 to %(num)s."),
                    {"num": str(MOST_OCCURRENCES)},
                )
            )
    elif until_text:
        try:
            until = date.fromisoformat(until_text)
        except ValueError:
            problems.append(Problem("until", N_("Enter a date such as 2026-11-23.")))
        if until is not None and start is not None and until < start.astimezone(zone).date():
            problems.append(Problem("until", N_("The last date must not come before the first.")))
            until = None
    else:
        problems.append(Problem("until", N_("Give the last date, or how many times.")))
    if start is None or (until is None and count is None):
        return None, mode
    return weekly_rule(until=until, count=count), mode


def read_booking_form(
    form: Mapping[str, Sequence[str]], zone: ZoneInfo
) -> tuple[BookingDraft | None, list[Problem]]:
    """The draft a form describes, or what is wrong with it, field by field."""
    problems: list[Problem] = []
    resource_ids = tuple(
        dict.fromkeys(v.strip() for v in form.get("resource_ids", []) if v.strip())
    )
    if not resource_ids:
        problems.append(Problem("resource_ids", N_("Choose a room or an item to book.")))
    start, end = _interval(form, zone, problems)
    purpose = _first(form, "purpose")
    if not purpose:
        problems.append(Problem("purpose", N_("This field is required.")))
    elif len(purpose) > LONGEST_PURPOSE:
        problems.append(
            Problem("purpose", N_("At most %(num)s characters."), {"num": str(LONGEST_PURPOSE)})
        )
    programme = _first(form, "programme") or None
    if programme is not None and programme not in PROGRAMMES:
        problems.append(Problem("programme", N_("Please check what you entered.")))
    attendees = None
    if _first(form, "attendees"):
        attendees = whole_number(_first(form, "attendees"), low=0, high=MOST_ATTENDEES)
        if attendees is None:
            problems.append(Problem("attendees", N_("Enter a whole number, such as 30.")))
    rrule, mode = _repeat(form, start, zone, problems)
    if problems or start is None or end is None:
        return None, problems
    return (
        BookingDraft(
            resource_ids=resource_ids,
            start=start,
            end=end,
            purpose=purpose,
            programme=programme,
            attendees=attendees,
            rrule=rrule,
            mode=mode,
        ),
        problems,
    )


# The booking service's refusals, beside the field a person would change.

_FIELD_OF_CODE: Final = {
    "outside_opening_hours": "start_time",
    "too_short": "end_time",
    "too_long": "end_time",
    "not_on_slot": "start_time",
    "too_soon": "date",
    "too_far": "date",
    "over_capacity": "attendees",
    "mixed_venues": "resource_ids",
    "unknown_resource": "resource_ids",
    "conflict": "start_time",
    "fair_use_exceeded": "date",
    "invalid_rrule": "until",
    "too_many_occurrences": "count",
}
# Where a series fails, the dates that failed are listed beside the repeat.
SERIES_FIELD: Final = "repeat"
FORM_FIELD: Final = "form"

_REFUSALS: Final = {
    "outside_opening_hours": N_(
        "The room is not open all that time. Its week shows when it is open."
    ),
    "too_short": N_("Too short: this room is booked for at least %(minutes)s minutes."),
    "too_long": N_("Too long: this room is booked for at most %(minutes)s minutes."),
    "not_on_slot": N_(
        "Start and end must fall on the %(minutes)s-minute grid, counted from the hour."
    ),
    "too_soon": N_("Too soon: this room must be booked at least %(ahead)s ahead."),
    "too_far": N_("Too far ahead: this room can be booked at most %(days)s days ahead."),
    "over_capacity": N_("More people than the room holds: it has room for %(capacity)s."),
    "mixed_venues": N_("The equipment must belong to the room's own venue."),
    "unknown_resource": N_("This room or item is no longer in the catalogue."),
    "conflict": N_("The time is taken: another booking (with its turnover time) holds %(when)s."),
    "conflict_unknown": N_("The time is taken by another booking or the turnover time after one."),
    "fair_use_exceeded": N_(
        "Your organisation would pass its weekly share of hours at this venue in the week "
        "from %(week)s."
    ),
    "rate_limited": N_("Too many bookings in a short time. Wait a minute and try again."),
    "invalid_rrule": N_("This repeat cannot be read. Check the last date or the count."),
    "too_many_occurrences": N_("A repeat has at most %(num)s dates."),
    "idempotency_key_reused": N_(
        "This form had already been sent with other details. Check them and send it again."
    ),
    "forbidden": N_("You may not do this in your current role."),
    "invalid_transition": N_("This booking has changed meanwhile. Look at it again."),
    "invalid_request": N_("Please check what you entered."),
}
# Why a date of a repeat was left out, in a few words.
_SKIPPED: Final = {
    "conflict": N_("taken by another booking"),
    "outside_opening_hours": N_("the room is closed then"),
    "fair_use_exceeded": N_("over your organisation's weekly share"),
    "too_far": N_("too far ahead"),
    "too_soon": N_("too soon"),
    "over_capacity": N_("more people than the room holds"),
}
_SKIPPED_OTHER: Final = N_("against the room's rules")

_HOLDS = re.compile(r"holds \S+ from (\S+) to (\S+)")
_SERIES_DATE = re.compile(r"^(\w+): (\S+) to (\S+)")
_WEEK_FROM = re.compile(r"week from (\d{4}-\d{2}-\d{2})")


def refusal_words(code: str) -> str:
    """The message id for a refusal code of the booking service; never the code itself."""
    return _REFUSALS.get(code, _REFUSALS["invalid_request"])


def skipped_words(code: str) -> str:
    return _SKIPPED.get(code, _SKIPPED_OTHER)


def _span_words(start: datetime, end: datetime, zone: ZoneInfo, locale: str) -> str:
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    day = formatting.short_day(local_start.date(), locale)
    times = (
        f"{formatting.clock(local_start, locale)}\N{EN DASH}{formatting.clock(local_end, locale)}"
    )
    return f"{day} {times}"


def _spans(errors: Sequence[Any], pattern: re.Pattern[str]) -> list[tuple[datetime, datetime]]:
    found = []
    for error in errors:
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
        if (match := pattern.search(message)) is not None:
            start, end = _instant(match.group(1)), _instant(match.group(2))
            if start is not None and end is not None:
                found.append((start, end))
    return found


class SeriesFailure(msgspec.Struct, frozen=True):
    """A date of an all-or-nothing repeat that could not be booked, and why (in words)."""

    when: str
    reason: str


def _series_failures(errors: Sequence[Any], zone: ZoneInfo, locale: str) -> list[SeriesFailure]:
    failures = []
    for error in errors:
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
        found = _SERIES_DATE.search(message)
        if found is None:
            continue
        start, end = _instant(found.group(2)), _instant(found.group(3))
        if start is not None and end is not None:
            failures.append(
                SeriesFailure(
                    when=_span_words(start, end, zone, locale),
                    reason=skipped_words(found.group(1)),
                )
            )
    return failures


def _week_from(errors: Sequence[Any], detail: str, locale: str) -> str:
    """The week a share would be passed in, from `detail` or the field errors."""
    texts = [detail] + [str(e.get("message", "")) for e in errors if isinstance(e, dict)]
    for text in texts:
        if (week := _WEEK_FROM.search(text)) is not None:
            return formatting.long_date(date.fromisoformat(week.group(1)), locale)
    return ""


class _Refused(msgspec.Struct, frozen=True):
    """A refusal and what its message may quote: the room's rules and capacity, the venue's
    zone."""

    errors: Sequence[Any]
    detail: str
    rules: Rules
    capacity: int | None
    zone: ZoneInfo
    locale: str

    def number(self, value: int) -> str:
        return formatting.number(value, self.locale)


def _conflict_params(refused: _Refused) -> dict[str, str]:
    spans = sorted(set(_spans(refused.errors, _HOLDS)))
    if not spans:
        return {}
    return {"when": "; ".join(_span_words(s, e, refused.zone, refused.locale) for s, e in spans)}


# The values each refusal's message names, in the reader's locale.
_PARAMS: Final[dict[str, Callable[[_Refused], dict[str, str]]]] = {
    "too_short": lambda r: {"minutes": r.number(r.rules.min_minutes)},
    "too_long": lambda r: {"minutes": r.number(r.rules.max_minutes)},
    "not_on_slot": lambda r: {"minutes": r.number(r.rules.slot_minutes)},
    "too_soon": lambda r: {
        "ahead": format_timedelta(
            timedelta(minutes=r.rules.lead_minutes), threshold=2, locale=babel_locale(r.locale)
        )
    },
    "too_far": lambda r: {"days": r.number(r.rules.horizon_days)},
    "over_capacity": lambda r: {"capacity": r.number(r.capacity or 0)},
    "too_many_occurrences": lambda r: {"num": r.number(MOST_OCCURRENCES)},
    "fair_use_exceeded": lambda r: {"week": _week_from(r.errors, r.detail, r.locale)},
    "conflict": _conflict_params,
}


def explain_refusal(
    code: str,
    errors: Sequence[Any],
    detail: str,
    *,
    rules: Rules,
    capacity: int | None,
    zone: ZoneInfo,
    locale: str,
) -> tuple[list[Problem], list[SeriesFailure]]:
    """The booking service's refusal (its `code`, `errors` and `detail`) as a message beside
    the field a person would change, and for a repeat refused as a whole, each failing date in
    words. Never the code itself: a code without words of its own gets the general message."""
    if any(isinstance(e, dict) and e.get("field") == "series" for e in errors):
        problem = Problem(SERIES_FIELD, N_("None of the dates was booked: some of them cannot be."))
        return [problem], _series_failures(errors, zone, locale)
    refused = _Refused(
        errors=errors, detail=detail, rules=rules, capacity=capacity, zone=zone, locale=locale
    )
    params = _PARAMS[code](refused) if code in _PARAMS else {}
    message = refusal_words(code)
    if code == "conflict" and not params:
        message = _REFUSALS["conflict_unknown"]
    return [Problem(_FIELD_OF_CODE.get(code, FORM_FIELD), message, params)], []


def problems_by_field(problems: Sequence[Problem]) -> dict[str, Problem]:
    """The first problem of each field: the one the form shows beside it."""
    found: dict[str, Problem] = {}
    for problem in problems:
        found.setdefault(problem.field, problem)
    return found


# The list of bookings.


class Listed(msgspec.Struct, frozen=True):
    """A booking as the list reads it."""

    id: str
    resource_ids: list[str]
    venue_id: str
    org: str
    start: datetime
    end: datetime
    status: str
    purpose: str
    programme: str | None = None
    attendees: int | None = None
    attended: int | None = None
    series_id: str | None = None
    hold: bool = False
    reason: str | None = None


class Sections(msgspec.Struct, frozen=True):
    upcoming: list[Listed]
    past: list[Listed]
    cancelled: list[Listed]


SECTIONS: Final = ("upcoming", "past", "cancelled")
STATUS_WORDS: Final = {
    "pending": N_("Awaiting approval"),
    "confirmed": N_("Confirmed"),
    "cancelled": N_("Cancelled"),
    "rejected": N_("Declined by the venue"),
}
LIVE: Final = frozenset({"pending", "confirmed"})


def sections(bookings: Sequence[Listed], now: datetime) -> Sections:
    """Live bookings not yet ended (soonest first), ended ones (latest first), and the
    cancelled or rejected ones (latest first)."""
    upcoming = sorted((b for b in bookings if b.status in LIVE and b.end > now), key=_when)
    past = sorted((b for b in bookings if b.status in LIVE and b.end <= now), key=_when)
    gone = sorted((b for b in bookings if b.status not in LIVE), key=_when)
    return Sections(upcoming=upcoming, past=past[::-1], cancelled=gone[::-1])


def _when(booking: Listed) -> tuple[datetime, str]:
    return booking.start, booking.id


def place_of(
    booking: Listed, resource_names: Mapping[str, str], venue_names: Mapping[str, str]
) -> str:
    """The booked room and items, then the venue: 书法教室、投影仪 · 城东社区教育中心."""
    names = [resource_names[r] for r in booking.resource_ids if r in resource_names]
    venue = venue_names.get(booking.venue_id)
    return " · ".join(part for part in ("、".join(names), venue) if part)


def may_cancel(booking: Listed, now: datetime) -> bool:
    """A live booking that has not ended may be cancelled."""
    return booking.status in LIVE and booking.end > now


def may_record_attendance(booking: Listed, now: datetime) -> bool:
    """The head count that came is recorded for a confirmed booking after its end."""
    return booking.status == "confirmed" and booking.end <= now


def read_attendance(text: str) -> int | None:
    return whole_number(text.strip(), low=0, high=MOST_ATTENDEES)


LONGEST_REASON: Final = 2000


def read_reason(text: str) -> str | None:
    """A cancellation's reason, trimmed; None for an empty one (the API takes it as optional)."""
    reason = text.strip()[:LONGEST_REASON]
    return reason or None
