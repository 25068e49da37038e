"""Where a page may send the browser after sign-in: back to a page of this site only."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

HOME = "/"
# The pages a visitor is never sent back to: signing in again, or out.
_NOT_BACK_TO = ("/login", "/logout", "/auth/")


def local_path(wanted: str | None) -> str:
    """`wanted` where it is a path of this site (with its query), else the start page.

    A scheme, a host, a protocol-relative `//host`, a backslash (which browsers read as a
    slash) or a control character could send the browser elsewhere: an open redirect."""
    if not wanted or not wanted.startswith("/") or len(wanted) > 2000:
        return HOME
    if wanted.startswith("//") or "\\" in wanted or any(ord(c) < 0x20 for c in wanted):
        return HOME
    parts = urlsplit(wanted)
    if parts.scheme or parts.netloc:
        return HOME
    if parts.path.startswith(_NOT_BACK_TO):
        return HOME
    return wanted


def with_lang(path: str, query: str, locale: str) -> str:
    """The same page in another language: its query kept, `lang` replaced."""
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "lang"]
    return f"{path}?{urlencode([*kept, ('lang', locale)])}"
