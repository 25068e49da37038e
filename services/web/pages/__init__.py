"""The web service's pages, one module per concern."""

from services.web.pages import account, auth, rooms

ROUTES = [*auth.ROUTES, *account.ROUTES, *rooms.ROUTES]

# The venue manager's desk: approvals, its venues' rooms and hours, its lecture requests.
from services.web.pages import approvals, lecture_requests, venues  # noqa: E402

ROUTES += [*approvals.ROUTES, *venues.ROUTES, *lecture_requests.ROUTES]
