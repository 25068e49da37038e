"""The venue manager's desk: which venues a visitor manages, and the bookings waiting for it.

A venue manager manages the venues its organisation owns; the office manages every venue. The
registry and booking check every change themselves; these rules decide what a page shows, and
that another organisation's venue page is refused rather than shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final, Protocol, TypeVar

import msgspec

from services.web.domain.text import N_

DESK_ROLES: Final = frozenset({"venue_manager", "office"})

PROGRAMME_NAMES: Final = {
    "degree": N_("Degree education"),
    "workforce": N_("Workforce training"),
    "assistance": N_("Assistance programmes"),
    "youth": N_("Youth education"),
    "elderly": N_("Elderly education"),
    "citizen": N_("Citizen education"),
}
REQUEST_STATUS_NAMES: Final = {
    "open": N_("Waiting for a lecturer"),
    "offered": N_("Offered to lecturers"),
    "assigned": N_("Every session accepted"),
    "cancelled": N_("Withdrawn"),
}


class Owned(Protocol):
    @property
    def owner_org(self) -> str: ...


class Booked(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def venue_id(self) -> str: ...
    @property
    def start(self) -> datetime: ...


def uses_desk(role: str) -> bool:
    """Whether the role has the venue manager's pages (the office opens them for any venue)."""
    return role in DESK_ROLES


def may_manage(role: str, org: str, venue: Owned) -> bool:
    return role == "office" or (role == "venue_manager" and venue.owner_org == org)


V = TypeVar("V", bound=Owned)
B = TypeVar("B", bound=Booked)


def managed(role: str, org: str, venues: Iterable[V]) -> list[V]:
    """The venues the visitor manages, in the catalogue's order."""
    return [venue for venue in venues if may_manage(role, org, venue)]


def awaiting(bookings: Iterable[B], venue_ids: Iterable[str]) -> list[B]:
    """The bookings at the given venues, soonest first: the queue a manager works through (a
    venue manager's list also holds its own organisation's bookings at other venues, which are
    not its to approve)."""
    mine = set(venue_ids)
    return sorted((b for b in bookings if b.venue_id in mine), key=lambda b: (b.start, b.id))


class Decision(msgspec.Struct, frozen=True):
    """An approval or a rejection as the form sent it, checked."""

    action: str
    reason: str | None


REASON_LONGEST: Final = 500


def decision(action: str, reason: str) -> tuple[Decision | None, str | None]:
    """The decision, or the code of what is wrong with the reason: a rejection needs one, so
    the booker learns why."""
    reason = reason.strip()
    if action not in ("approve", "reject"):
        return None, "invalid_request"
    if action == "reject" and not reason:
        return None, "reason_required"
    if len(reason) > REASON_LONGEST:
        return None, "reason_too_long"
    return Decision(action=action, reason=reason or None), None
