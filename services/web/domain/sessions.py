"""A signed-in browser's session, as the web service keeps it in Redis, and its clock rules.

The browser holds only the session's id. The record holds the tokens identity gave for the login
(a refresh token among them, so the record is stored encrypted) and the few facts every page
shows. Shared computers in schools: a session ends after 2 hours unused, and 12 hours after
sign-in whatever happens.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import msgspec

IDLE: Final = timedelta(hours=2)
ABSOLUTE: Final = timedelta(hours=12)
# An access token is refreshed this long before it expires, so no call goes out on a dying one.
REFRESH_MARGIN_SECONDS: Final = 60.0
# Seen-at is written back at most this often: one Redis write a minute, not one per page.
TOUCH_EVERY_SECONDS: Final = 60.0


class Membership(msgspec.Struct, frozen=True):
    org: str
    role: str
    lecturer_id: str | None = None


class WebSession(msgspec.Struct, frozen=True):
    """One sign-in. Times are Unix seconds."""

    user_id: str
    created_at: float
    seen_at: float
    access_token: str
    # When this process stops using `access_token` and refreshes it.
    refresh_at: float
    refresh_token: str
    membership: Membership
    memberships: tuple[Membership, ...] = ()
    name: str = ""
    email: str = ""
    locale: str | None = None


def refresh_at(now: float, expires_in: float, use_for: float) -> float:
    """When to refresh a token that expires `expires_in` seconds after `now`: a minute early, or
    after `use_for` seconds where that is set and sooner."""
    by_expiry = now + max(expires_in - REFRESH_MARGIN_SECONDS, 0.0)
    return min(by_expiry, now + use_for) if use_for > 0 else by_expiry


def is_over(session: WebSession, now: float) -> bool:
    """Whether the session has ended: unused too long, or signed in too long ago."""
    return (
        now - session.seen_at >= IDLE.total_seconds()
        or now - session.created_at >= ABSOLUTE.total_seconds()
    )


def seconds_left(session: WebSession, now: float) -> int:
    """How long the record must be kept: until the sooner of its two ends (at least a second)."""
    idle_end = session.seen_at + IDLE.total_seconds()
    absolute_end = session.created_at + ABSOLUTE.total_seconds()
    return max(1, int(min(idle_end, absolute_end) - now) + 1)


def needs_touch(session: WebSession, now: float) -> bool:
    return now - session.seen_at >= TOUCH_EVERY_SECONDS


def needs_refresh(session: WebSession, now: float) -> bool:
    return now >= session.refresh_at
