"""The request and response shapes of identity's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from services.identity.domain.accounts import Email, Locale, Name, OrgId, Password
from services.identity.domain.tokens import Membership
from shared.auth import Role
from shared.ids import Id

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


class TokenAnswer(msgspec.Struct):
    access_token: str
    expires_in: int
    memberships: list[Membership]
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (the scheme, not a token)
    # Left out of a service's answer, which has no refresh token.
    refresh_token: str | msgspec.UnsetType = msgspec.UNSET


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


# Accounts: oneself, and invitations and password resets (the links identity mails).


class MeUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a user changes of its own account; a new `password` needs `current_password`."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    locale: Locale | msgspec.UnsetType = msgspec.UNSET
    password: Password | msgspec.UnsetType = msgspec.UNSET
    current_password: Password | msgspec.UnsetType = msgspec.UNSET


class InvitationCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email
    org: OrgId
    role: Role
    name: Name | None = None
    lecturer_id: Id | None = None
    # The language of the invitation mail and of the account it makes.
    locale: Locale = Locale.ZH_CN


class InvitationPreview(msgspec.Struct, frozen=True):
    """What the invitation page shows before the invitee accepts."""

    email: str
    org: str
    org_name: str
    role: Role
    expires_at: datetime
    # The address has an account already: accept while signed in as it, no password is set.
    existing_user: bool
    name: str | None
    locale: Locale


class InvitationAccept(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`password` makes the new account's; an existing account keeps its own and needs none."""

    password: Password | None = None
    name: Name | None = None


class PasswordResetCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    email: Email


class PasswordResetPreview(msgspec.Struct, frozen=True):
    """What the reset page shows before a new password is typed."""

    email: str
    expires_at: datetime


class PasswordResetConfirm(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    password: Password
