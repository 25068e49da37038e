"""The web service's pages, one module per concern."""

from services.web.pages import account, auth, office, rooms

ROUTES = [*auth.ROUTES, *account.ROUTES, *rooms.ROUTES, *office.ROUTES]
