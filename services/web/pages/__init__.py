"""The web service's pages, one module per concern."""

from services.web.pages import account, auth, bookings, offers, office, rooms

ROUTES = [
    *auth.ROUTES,
    *account.ROUTES,
    *rooms.ROUTES,
    *bookings.ROUTES,
    *offers.ROUTES,
    *office.ROUTES,
]
