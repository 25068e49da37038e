"""What each role finds in the navigation: the pages of this build that the role may open."""

from __future__ import annotations

from typing import Final

import msgspec

from services.web.domain.text import N_


class NavItem(msgspec.Struct, frozen=True):
    path: str
    # A message id of the catalogue, translated when the page is rendered.
    label: str


_START = NavItem("/", N_("Start"))
_ME = NavItem("/me", N_("My account"))
_ROOMS = NavItem("/rooms", N_("Find rooms"))
_BOOKINGS = NavItem("/bookings", N_("Bookings"))
_APPROVALS = NavItem("/approvals", N_("Approvals"))
_VENUES = NavItem("/venues", N_("Venues"))
_REQUESTS = NavItem("/requests", N_("Lecture requests"))
_OFFERS = NavItem("/offers", N_("Offers and lectures"))
_REPORTS = NavItem("/reports", N_("Reports"))
_LECTURERS = NavItem("/lecturers", N_("Lecturers"))
_RUNS = NavItem("/runs", N_("Matching runs"))
_USERS = NavItem("/users", N_("Members and invitations"))
# API.md § Web: the pages each role opens, in the order of its day's work. The office opens the
# venue manager's desk (approvals, venues, requests) for every venue.
_ROLE_PAGES: Final[dict[str, tuple[NavItem, ...]]] = {
    "office": (
        _ROOMS,
        _BOOKINGS,
        _APPROVALS,
        _VENUES,
        _REQUESTS,
        _REPORTS,
        _LECTURERS,
        _RUNS,
        _USERS,
    ),
    "venue_manager": (_APPROVALS, _VENUES, _REQUESTS, _ROOMS, _BOOKINGS, _REPORTS, _USERS),
    "community_manager": (_ROOMS, _BOOKINGS, _USERS),
    "lecturer": (_OFFERS, _ROOMS),
}


def navigation(role: str) -> tuple[NavItem, ...]:
    """The links of the navigation for `role`, start page first and one's account last."""
    return (_START, *_ROLE_PAGES.get(role, ()), _ME)


def current(items: tuple[NavItem, ...], path: str) -> str | None:
    """The item the page at `path` belongs to (the longest matching prefix), for aria-current."""
    matching = [
        item.path
        for item in items
        if path == item.path or (item.path != "/" and path.startswith(item.path + "/"))
    ]
    return max(matching, key=len, default=None)
