"""The web service's pages, one module per concern."""

from services.web.pages import (
    account,
    approvals,
    auth,
    bookings,
    lecture_requests,
    offers,
    office,
    rooms,
    venues,
)

ROUTES = [
    *auth.ROUTES,
    *account.ROUTES,
    *rooms.ROUTES,
    *bookings.ROUTES,
    *approvals.ROUTES,
    *venues.ROUTES,
    *lecture_requests.ROUTES,
    *offers.ROUTES,
    *office.ROUTES,
]
