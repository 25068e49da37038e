"""The request and response shapes of identity's HTTP API."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from services.identity.domain.accounts import Password
from services.identity.domain.tokens import Membership
from shared.auth import Role

Secret = Annotated[str, Meta(min_length=1, max_length=500)]
Username = Annotated[str, Meta(min_length=1, max_length=320)]
OrgName = Annotated[str, Meta(min_length=1, max_length=100)]


class PasswordGrant(msgspec.Struct, tag_field="grant_type", tag="password", frozen=True):
    username: Username
    password: Password
    org: OrgName | None = None
    role: Role | None = None


class RefreshGrant(msgspec.Struct, tag_field="grant_type", tag="refresh_token", frozen=True):
    refresh_token: Secret
    org: OrgName | None = None
    role: Role | None = None


class ClientCredentialsGrant(
    msgspec.Struct, tag_field="grant_type", tag="client_credentials", frozen=True
):
    client_id: Secret
    client_secret: Secret


class AuthorizationCodeGrant(
    msgspec.Struct, tag_field="grant_type", tag="authorization_code", frozen=True
):
    code: Secret
    client_id: Secret
    client_secret: Secret
    org: OrgName | None = None
    role: Role | None = None


Grant = PasswordGrant | RefreshGrant | ClientCredentialsGrant | AuthorizationCodeGrant


class TokenAnswer(msgspec.Struct, omit_defaults=True):
    access_token: str
    expires_in: int
    memberships: list[Membership]
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (the scheme, not a token)
    refresh_token: str | None = None


class Logout(msgspec.Struct, frozen=True):
    refresh_token: Secret


class Jwk(msgspec.Struct):
    kty: str
    crv: str
    x: str
    kid: str
    use: str
    alg: str


class Jwks(msgspec.Struct):
    keys: list[Jwk]
