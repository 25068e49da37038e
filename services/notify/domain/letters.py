"""A letter's words: Jinja2 templates per message type (one `.txt` and one `.html` each), one
gettext catalogue for zh-CN and en, and dates through Babel in the venue's zone and the reader's
locale. The text template also sets the subject, so the two parts never disagree on it.

English is the catalogue's source language: an `en` reader gets the message ids themselves.
"""

from __future__ import annotations

import functools
import io
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec
from babel.dates import format_skeleton, format_time, format_timedelta, get_timezone_name
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from shared.ical import zone_of

PACKAGE: Final = Path(__file__).parent.parent
TEMPLATES: Final = PACKAGE / "templates"
TRANSLATIONS: Final = PACKAGE / "translations"
DEFAULT_LOCALE: Final = "zh-CN"
# The locales a user may choose (identity's `locale`), spelled as Babel's CLDR data names them.
BABEL_LOCALES: Final = {"zh-CN": "zh_Hans_CN", "en": "en"}
EN_DASH: Final = "\u2013"  # between the times of a span, as CLDR's interval formats put it


class Rendered(msgspec.Struct, frozen=True):
    subject: str
    text: str
    html: str
    locale: str


def reader_locale(locale: str | None) -> str:
    """The reader's locale where we write it, else zh-CN."""
    return locale if locale in BABEL_LOCALES else DEFAULT_LOCALE


def render(kind: str, locale: str, values: dict[str, Any]) -> Rendered:
    """The letter `kind` in `locale` (zh-CN where it is none we write)."""
    locale = reader_locale(locale)
    environment = _environment(locale)
    text_module = environment.get_template(f"{kind}.txt").make_module(values)
    html = environment.get_template(f"{kind}.html").render(values)
    subject = str(getattr(text_module, "subject", "")).strip()
    return Rendered(subject=subject, text=str(text_module).strip() + "\n", html=html, locale=locale)


def when(start: datetime, end: datetime, zone_name: str, babel_locale: str) -> str:
    """`2026年11月23日周一 18:00-20:00 (zone)`: the venue's wall clock, in the reader's words."""
    zone = zone_of(zone_name)
    start, end = start.astimezone(zone), end.astimezone(zone)
    day = format_skeleton("yMMMEd", start, locale=babel_locale)
    begins = format_time(start, "HH:mm", locale=babel_locale)
    ends = format_time(end, "HH:mm", locale=babel_locale)
    if end.date() != start.date():
        ends = f"{format_skeleton('yMMMEd', end, locale=babel_locale)} {ends}"
    name = get_timezone_name(zone, "long", locale=babel_locale)
    return f"{day} {begins}{EN_DASH}{ends} ({name})"


def moment(instant: datetime, zone_name: str, babel_locale: str) -> str:
    """`2026年11月23日周一 18:00 (zone)`: one instant on the venue's wall clock."""
    zone = zone_of(zone_name)
    local = instant.astimezone(zone)
    day = format_skeleton("yMMMEd", local, locale=babel_locale)
    name = get_timezone_name(zone, "long", locale=babel_locale)
    return f"{day} {format_time(local, 'HH:mm', locale=babel_locale)} ({name})"


def duration(period: timedelta, babel_locale: str) -> str:
    """`30分钟`, `7 days`: a span in the reader's words, to the unit that says it best."""
    return format_timedelta(period, threshold=1.5, locale=babel_locale)


@functools.cache
def _environment(locale: str) -> Environment:
    babel_locale = BABEL_LOCALES[locale]
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default_for_string=False),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        keep_trailing_newline=True,
    )
    environment.install_gettext_translations(_translations(babel_locale), newstyle=True)  # type: ignore[attr-defined]
    environment.globals["lang"] = locale
    environment.globals["when"] = functools.partial(when, babel_locale=babel_locale)
    environment.globals["duration"] = functools.partial(duration, babel_locale=babel_locale)
    environment.globals["moment"] = functools.partial(moment, babel_locale=babel_locale)
    return environment


def _translations(babel_locale: str) -> NullTranslations:
    """The catalogue for `babel_locale`, compiled from its `.po` as the process starts (a few
    milliseconds), so no build step must remember to compile it."""
    po = TRANSLATIONS / babel_locale / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as source:
        catalog = read_po(source, locale=babel_locale)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)
