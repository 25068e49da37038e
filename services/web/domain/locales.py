"""The two languages of the pages, and which one a request is answered in.

HTML and identity spell a language `zh-CN`/`en`; Babel's CLDR data and the gettext catalogue
spell Chinese as written in mainland China `zh_Hans_CN`.
"""

from __future__ import annotations

from typing import Final

DEFAULT: Final = "zh-CN"
LOCALES: Final = ("zh-CN", "en")
_BABEL = {"zh-CN": "zh_Hans_CN", "en": "en"}


def babel_locale(locale: str) -> str:
    """The Babel (and catalogue) name of one of `LOCALES`."""
    return _BABEL[locale]


def known(locale: str | None) -> str | None:
    """`locale` where it is one of the pages' languages (case aside), else None."""
    if locale is None:
        return None
    for candidate in LOCALES:
        if candidate.lower() == locale.strip().lower():
            return candidate
    return None


def chosen_locale(*, asked: str | None, cookie: str | None, account: str | None) -> str:
    """The language of a page: what `?lang=` asks for now, else what the cookie kept, else the
    signed-in account's own, else Chinese, the suite's default."""
    return known(asked) or known(cookie) or known(account) or DEFAULT
