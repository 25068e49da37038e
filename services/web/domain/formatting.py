"""Dates, times and numbers in the reader's language, through Babel's CLDR data only.

Never `strftime`: it prints English weekday and month names on a Chinese page. Each function
takes the page's locale (`zh-CN` or `en`) and plain values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

from babel import Locale
from babel.dates import (
    format_date,
    format_datetime,
    format_skeleton,
    format_time,
    get_day_names,
)
from babel.lists import format_list
from babel.numbers import format_decimal, format_percent

from services.web.domain.locales import babel_locale


def long_date(day: date, locale: str) -> str:
    """2026年11月23日星期一 / Monday, November 23, 2026."""
    return format_date(day, "full", locale=babel_locale(locale))


def short_day(day: date, locale: str) -> str:
    """11月23日周一 / Mon, Nov 23: a day of a week grid."""
    return format_skeleton("MMMEd", day, locale=babel_locale(locale))


def clock(moment: datetime, locale: str) -> str:
    """18:00 in both languages' 24-hour form where the locale uses it."""
    return format_time(moment, "HH:mm", locale=babel_locale(locale))


def date_time(moment: datetime, locale: str) -> str:
    """A date and a time, medium length, in the moment's own zone."""
    return format_datetime(moment, "medium", tzinfo=moment.tzinfo, locale=babel_locale(locale))


def number(value: float, locale: str) -> str:
    return format_decimal(value, locale=babel_locale(locale))


def word_list(words: Sequence[str], locale: str) -> str:
    """投影仪、白板和钢琴 / projector, whiteboard, and piano."""
    return format_list(list(words), locale=babel_locale(locale))


def percent(value: float, locale: str) -> str:
    """0.8534 → 85.3%: utilisation, to a tenth of a per cent (a city's rooms are seldom full,
    and 0.4% and 0% are different news)."""
    return format_percent(value, "#,##0.0%", locale=babel_locale(locale))


def weekday_name(iso_weekday: int, locale: str) -> str:
    """1 → 星期一 / Monday (ISO: 1 is Monday)."""
    names: Mapping[int, str] = get_day_names("wide", locale=babel_locale(locale))
    return names[iso_weekday - 1]


def month_name(month: str, locale: str) -> str:
    """`2027-03` → 2027年3月 / March 2027."""
    return format_skeleton("yMMMM", date.fromisoformat(f"{month}-01"), locale=babel_locale(locale))


def language_name(code: str, locale: str) -> str:
    """`wuu` → 吴语 / Wu Chinese: a language a lecturer teaches in, named in the reader's."""
    named: str | None = Locale.parse(babel_locale(locale)).languages.get(code.replace("-", "_"))
    return named or code
