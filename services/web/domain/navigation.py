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
_ROLE_PAGES: Final[dict[str, tuple[NavItem, ...]]] = {
    "office": (_ROOMS,),
    "venue_manager": (_ROOMS,),
    "community_manager": (_ROOMS,),
    "lecturer": (_ROOMS,),
}

# The venue manager's desk: its approvals, its venues (rooms, equipment, hours) and its venues'
# lecture requests. The office opens the same pages for every venue.
_VENUE_DESK = (
    NavItem("/approvals", N_("Approvals")),
    NavItem("/venues", N_("Venues")),
    NavItem("/requests", N_("Lecture requests")),
)
for _role in ("venue_manager", "office"):
    _ROLE_PAGES[_role] = (*_ROLE_PAGES[_role], *_VENUE_DESK)


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
