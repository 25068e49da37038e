"""The one gettext catalogue of the pages, and the language of the request being rendered.

The catalogues are the `.po` files under `translations/`, compiled in memory when the app starts:
no binary `.mo` in git and no build step to forget (Babel reads a catalogue of this size in a few
milliseconds). `pybabel extract -F babel.cfg` over the Python and the templates makes
`messages.pot`; `tests/unit/test_web_catalogue.py` fails where a message lacks a translation.
"""

from __future__ import annotations

import gettext
from collections.abc import Iterable
from contextvars import ContextVar
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import Environment

from services.web.domain import formatting
from services.web.domain.locales import DEFAULT, LOCALES, babel_locale
from services.web.domain.text import FEATURE_NAMES

TRANSLATIONS = Path(__file__).parent / "translations"
DOMAIN = "messages"
_current: ContextVar[str] = ContextVar("locale", default=DEFAULT)


def po_file(locale: str) -> Path:
    return TRANSLATIONS / babel_locale(locale) / "LC_MESSAGES" / f"{DOMAIN}.po"


def load_catalogues() -> dict[str, gettext.GNUTranslations]:
    """Every language's catalogue, compiled from its `.po` file."""
    loaded = {}
    for locale in LOCALES:
        with po_file(locale).open("rb") as source:
            catalogue = read_po(source, locale=babel_locale(locale))
        compiled = BytesIO()
        write_mo(compiled, catalogue)
        compiled.seek(0)
        loaded[locale] = gettext.GNUTranslations(compiled)
    return loaded


def current_locale() -> str:
    return _current.get()


def use_locale(locale: str) -> None:
    """Render the rest of this request in `locale` (each request runs in a context of its own)."""
    _current.set(locale)


class Translator:
    """The catalogues, and `_`/`ngettext` that answer in the current request's language."""

    def __init__(self) -> None:
        self.catalogues = load_catalogues()

    def gettext(self, message: str) -> str:
        return self.catalogues[current_locale()].gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.catalogues[current_locale()].ngettext(singular, plural, n)

    def features(self, codes: Iterable[str]) -> str:
        """A resource's features in words, as one list in the reader's language."""
        return formatting.word_list(
            [
                self.gettext(FEATURE_NAMES[code]) if code in FEATURE_NAMES else code
                for code in codes
            ],
            current_locale(),
        )

    def install(self, environment: Environment) -> None:
        """Give templates `_`, `{% trans %}` and Babel's formats in the request's language."""
        environment.add_extension("jinja2.ext.i18n")
        environment.install_gettext_callables(  # type: ignore[attr-defined]
            self.gettext, self.ngettext, newstyle=True
        )
        filters: dict[str, Any] = {
            "long_date": lambda day: formatting.long_date(day, current_locale()),
            "short_day": lambda day: formatting.short_day(day, current_locale()),
            "clock": lambda moment: formatting.clock(moment, current_locale()),
            "date_time": lambda moment: formatting.date_time(moment, current_locale()),
            "number": lambda value: formatting.number(value, current_locale()),
            "features": self.features,
            "percent": lambda value: formatting.percent(value, current_locale()),
            "weekday_name": lambda day: formatting.weekday_name(day, current_locale()),
            "month_name": lambda month: formatting.month_name(month, current_locale()),
            "language_name": lambda code: formatting.language_name(code, current_locale()),
        }
        environment.filters.update(filters)
