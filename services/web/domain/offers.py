"""The lecturer's page in plain values: which offers wait for an answer and which lectures are to
be given, how long an offer stays open in words, the calendar's links, and what the forms that
change one's availability and blackout dates send.

Pure: the clock is passed in, and words come from Babel's CLDR data in the page's locale.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import msgspec
from babel.dates import format_timedelta, get_day_names

from services.web.domain.locales import babel_locale

# The lecturer service keeps at most this many blackout dates and weekly spans (its own limits).
MAX_BLACKOUTS = 366
MAX_SPANS = 50
WEEKDAYS = range(1, 8)  # ISO: 1 is Monday


class WeeklySpan(msgspec.Struct, frozen=True):
    """A weekly span of availability: ISO weekdays (1 = Monday) and wall-clock `HH:MM` times."""

    weekdays: list[int]
    start: str
    end: str


class Timed(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def expires_at(self) -> datetime: ...


T = TypeVar("T", bound=Timed)


def to_answer(offers: Iterable[T], now: datetime) -> list[T]:
    """The offers still open to an answer, the one that closes first first."""
    return sorted(
        (o for o in offers if o.status == "offered" and now < o.expires_at),
        key=lambda o: o.expires_at,
    )


def to_give(offers: Iterable[T], now: datetime) -> list[T]:
    """The accepted lectures not yet over, the next first."""
    return sorted(
        (o for o in offers if o.status == "accepted" and now < o.end), key=lambda o: o.start
    )


def closes_in(expires_at: datetime, now: datetime, locale: str) -> str:
    """How long an offer stays open, in words: "2天后" / "in 2 days", "3小时后" / "in 3 hours"."""
    return format_timedelta(
        expires_at - now,
        granularity="minute",
        threshold=1.0,
        add_direction=True,
        locale=babel_locale(locale),
    )


def webcal_url(feed_url: str) -> str:
    """The feed's address for a calendar app to subscribe to (`webcal://`, same host and path)."""
    parts = urlsplit(feed_url)
    return urlunsplit(("webcal", parts.netloc, parts.path, parts.query, ""))


def weekday_names(weekdays: Sequence[int], locale: str) -> str:
    """ "周一、周三" / "Mon, Wed": ISO weekdays in the locale's own short names, in week order."""
    names = get_day_names("abbreviated", locale=babel_locale(locale))
    separator = "、" if locale.startswith("zh") else ", "
    return separator.join(names[day - 1] for day in sorted(set(weekdays)))


def parse_date(text: str | None) -> tuple[date | None, str | None]:
    """A date typed or picked as `YYYY-MM-DD`, or the code of what is wrong with it."""
    if not text or not text.strip():
        return None, "required"
    try:
        return date.fromisoformat(text.strip()), None
    except ValueError:
        return None, "not_a_date"


def with_blackout(dates: Iterable[date], day: date) -> list[date]:
    """The blackout dates with `day` among them, each once, in order."""
    return sorted({*dates, day})


def without_blackout(dates: Iterable[date], day: date) -> list[date]:
    return sorted(set(dates) - {day})


def _clock(text: str | None) -> time | None:
    try:
        parsed = time.fromisoformat((text or "").strip())
    except ValueError:
        return None
    return parsed if len((text or "").strip()) == 5 else None


def parse_span(
    weekdays: Sequence[str], start: str | None, end: str | None
) -> tuple[WeeklySpan | None, dict[str, str]]:
    """A weekly span from the form (`weekdays` repeated, `start`, `end` as `HH:MM`), or by field
    the code of what is wrong."""
    errors: dict[str, str] = {}
    days = sorted({int(day) for day in weekdays if day.isdigit() and int(day) in WEEKDAYS})
    if not days:
        errors["weekdays"] = "choose_weekdays"
    begins, ends = _clock(start), _clock(end)
    if begins is None:
        errors["start"] = "required" if not (start or "").strip() else "not_a_time"
    if ends is None:
        errors["end"] = "required" if not (end or "").strip() else "not_a_time"
    if begins is not None and ends is not None and ends <= begins:
        errors["end"] = "end_before_start"
    if errors:
        return None, errors
    assert begins is not None
    assert ends is not None
    return WeeklySpan(
        days, begins.isoformat(timespec="minutes"), ends.isoformat(timespec="minutes")
    ), {}


def span_body(spans: Iterable[WeeklySpan]) -> list[Mapping[str, object]]:
    """Spans as the lecturer service's PATCH takes them."""
    return [msgspec.to_builtins(span) for span in spans]
