"""The opening-hours editor: a period as a person fills it in, the venue's published document
changed by one period at a time, and the weeks it resolves to, with the public holidays and the
make-up working days named.

The registry owns the rules (which period wins, what a holiday closes) and checks the document;
the page sends the whole document back with one period added, replaced or removed, and shows
the registry's refusals beside the fields. The preview's hours are the registry's resolved open
intervals; only the names of the days come from the `holidays` package here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import holidays
import msgspec
from babel.dates import get_day_names

from services.web.clients import HoursDoc, Interval, PeriodDoc, SpanDoc
from services.web.domain.locales import babel_locale

SPAN_ROWS: Final = 3
WEEKDAYS: Final = (1, 2, 3, 4, 5, 6, 7)
PREVIEW_WEEKS: Final = 4
_WEEKDAY_VALUES: Final = frozenset(str(d) for d in WEEKDAYS)
_WALL_TIME: Final = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
# The `holidays` package's languages for the pages' own.
_HOLIDAY_LANGUAGE: Final = {"zh-CN": "zh_CN", "en": "en_US"}
LONGEST_NAME: Final = 200

Form = Mapping[str, Sequence[str]]


def _one(form: Form, key: str) -> str:
    values = form.get(key) or [""]
    return values[0].strip()


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def period_from_form(form: Form) -> tuple[PeriodDoc | None, dict[str, str]]:
    """The period the form describes, or for each field that cannot be read the code of what is
    wrong. Contradictions (an end before the start, an open period without hours) are the
    registry's to find: its words come back beside the same fields."""
    errors: dict[str, str] = {}
    name = _one(form, "name")[:LONGEST_NAME]
    if not name:
        errors["name"] = "required"
    start = _one(form, "start_date")
    if not start:
        errors["start_date"] = "required"
    elif _day(start) is None:
        errors["start_date"] = "not_a_date"
    end = _one(form, "end_date")
    if end and _day(end) is None:
        errors["end_date"] = "not_a_date"
    closed = _one(form, "closed") == "true"
    spans = []
    for row in range(SPAN_ROWS):
        key = f"spans[{row}]"
        weekdays = sorted({int(d) for d in form.get(f"{key}.weekdays", []) if d in _WEEKDAY_VALUES})
        opens, closes = _one(form, f"{key}.start"), _one(form, f"{key}.end")
        if not weekdays and not opens and not closes:
            continue
        for part, text in (("start", opens), ("end", closes)):
            if not text:
                errors[f"{key}.{part}"] = "required"
            elif not _WALL_TIME.match(text):
                errors[f"{key}.{part}"] = "not_a_time"
        spans.append(SpanDoc(weekdays=weekdays, start=opens, end=closes))
    if errors:
        return None, errors
    period = PeriodDoc(
        name=name, start_date=start, end_date=end or None, spans=spans, closed=closed
    )
    return period, {}


def form_of(period: PeriodDoc) -> dict[str, list[str]]:
    """A published period as the form shows it, for editing."""
    form: dict[str, list[str]] = {
        "name": [period.name],
        "start_date": [period.start_date],
        "end_date": [period.end_date or ""],
        "closed": ["true" if period.closed else ""],
    }
    for row, span in enumerate(period.spans[:SPAN_ROWS]):
        form[f"spans[{row}].weekdays"] = [str(d) for d in span.weekdays]
        form[f"spans[{row}].start"] = [span.start]
        form[f"spans[{row}].end"] = [span.end]
    return form


def with_period(hours: HoursDoc, period: PeriodDoc, index: int | None) -> tuple[HoursDoc, int]:
    """The document with `period` in place of the one at `index` (added at the end where
    `index` is None or out of range), and where it stands."""
    periods = list(hours.periods)
    if index is None or not 0 <= index < len(periods):
        periods.append(period)
        index = len(periods) - 1
    else:
        periods[index] = period
    return msgspec.structs.replace(hours, periods=periods), index


def without_period(hours: HoursDoc, index: int) -> HoursDoc:
    periods = [p for n, p in enumerate(hours.periods) if n != index]
    return msgspec.structs.replace(hours, periods=periods)


def with_public_holidays(hours: HoursDoc, choice: str) -> HoursDoc | None:
    if choice not in ("closed", "open"):
        return None
    return msgspec.structs.replace(hours, public_holidays=choice)


class NamedDays(msgspec.Struct, frozen=True):
    """A calendar's public holidays (by name) and make-up working days."""

    holidays: dict[date, str]
    workdays: frozenset[date]


def named_days(calendar: str, years: Iterable[int], locale: str) -> NamedDays:
    """The holidays of `calendar` in `years`, named in the reader's language where the package
    has it (else as the package names them by default), and its make-up working days (weekend
    days worked in exchange for a holiday)."""
    years = sorted(set(years))
    try:
        found = holidays.country_holidays(
            calendar, years=years, language=_HOLIDAY_LANGUAGE.get(locale)
        )
    except NotImplementedError:
        return NamedDays(holidays={}, workdays=frozenset())
    workdays = frozenset(day for day in getattr(found, "weekend_workdays", ()) if day.year in years)
    return NamedDays(holidays=dict(found.items()), workdays=workdays)


class PreviewDay(msgspec.Struct, frozen=True):
    day: date
    # Open stretches of the day in the venue's wall-clock time.
    spans: list[tuple[datetime, datetime]]
    holiday: str | None
    workday: bool


def preview_weeks(
    monday: date, weeks: int, zone: ZoneInfo, opened: list[Interval], named: NamedDays
) -> list[list[PreviewDay]]:
    """`weeks` weeks from `monday`, each day with its open stretches (a stretch past midnight
    shown on each day it covers) and what the calendar calls it."""
    result = []
    for week in range(weeks):
        days = []
        for offset in range(7):
            day = monday + timedelta(days=7 * week + offset)
            day_start = datetime.combine(day, time(0), zone)
            day_end = datetime.combine(day + timedelta(days=1), time(0), zone)
            spans = [
                (max(i.start, day_start).astimezone(zone), min(i.end, day_end).astimezone(zone))
                for i in opened
                if i.start < day_end and day_start < i.end
            ]
            days.append(
                PreviewDay(
                    day=day,
                    spans=spans,
                    holiday=named.holidays.get(day),
                    workday=day in named.workdays,
                )
            )
        result.append(days)
    return result


def weekday_names(weekdays: Iterable[int], locale: str) -> list[str]:
    """ISO weekdays as the reader's language abbreviates them (周一 / Mon)."""
    names = get_day_names("abbreviated", locale=babel_locale(locale))
    return [names[day - 1] for day in weekdays]  # Babel counts from Monday = 0


class PeriodRow(msgspec.Struct, frozen=True):
    """A published period as the editor lists it."""

    index: int
    name: str
    start: date
    end: date | None
    closed: bool
    spans: list[tuple[list[str], str, str]]


def period_rows(hours: HoursDoc, locale: str) -> list[PeriodRow]:
    return [
        PeriodRow(
            index=index,
            name=period.name,
            start=date.fromisoformat(period.start_date),
            end=date.fromisoformat(period.end_date) if period.end_date else None,
            closed=period.closed,
            spans=[
                (weekday_names(span.weekdays, locale), span.start, span.end)
                for span in period.spans
            ],
        )
        for index, period in enumerate(hours.periods)
    ]
