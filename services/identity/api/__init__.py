"""Identity's HTTP routes, one module per concern."""

from services.identity.api import tokens

ROUTES = [*tokens.ROUTES]
