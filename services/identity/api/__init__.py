"""Identity's HTTP routes, one module per concern."""

from services.identity.api import accounts, invitations, oidc, tokens

ROUTES = [*oidc.ROUTES, *tokens.ROUTES, *accounts.ROUTES, *invitations.ROUTES]
