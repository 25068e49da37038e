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
_OFFERS = NavItem("/offers", N_("Offers and lectures"))
_BOOKINGS = NavItem("/bookings", N_("Bookings"))
_ROLE_PAGES: Final[dict[str, tuple[NavItem, ...]]] = {
    "office": (_ROOMS, _BOOKINGS),
    "venue_manager": (_ROOMS, _BOOKINGS),
    "community_manager": (_ROOMS, _BOOKINGS),
    "lecturer": (_OFFERS, _ROOMS),
}
# The office's pages, and the managers' share of them (reports, members).
_REPORTS = NavItem("/reports", N_("Reports"))
_USERS = NavItem("/users", N_("Members and invitations"))
_OFFICE_PAGES: Final[dict[str, tuple[NavItem, ...]]] = {
    "office": (
        _REPORTS,
        NavItem("/lecturers", N_("Lecturers")),
        NavItem("/runs", N_("Matching runs")),
        _USERS,
    ),
    "venue_manager": (_REPORTS, _USERS),
    "community_manager": (_USERS,),
}


def navigation(role: str) -> tuple[NavItem, ...]:
    """The links of the navigation for `role`, start page first and one's account last."""
    return (_START, *_ROLE_PAGES.get(role, ()), *_OFFICE_PAGES.get(role, ()), _ME)


def current(items: tuple[NavItem, ...], path: str) -> str | None:
    """The item the page at `path` belongs to (the longest matching prefix), for aria-current."""
    matching = [
        item.path
        for item in items
        if path == item.path or (item.path != "/" and path.startswith(item.path + "/"))
    ]
    return max(matching, key=len, default=None)
