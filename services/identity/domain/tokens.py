"""What identity puts in a token, and how long each kind lives."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import msgspec

from services.identity.domain.keys import LONGEST_TOKEN, SigningKey, sign
from shared.auth import Role

USER_ACCESS_TTL = timedelta(minutes=15)
SERVICE_ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=30)
# A refresh token presented again this soon after its first use (two tabs refreshing at once)
# gets the same successor rather than ending the login.
REFRESH_GRACE = timedelta(seconds=30)
OPERATOR_TOKEN_TTL = timedelta(hours=1)
# The org a service's own token names: the suite itself.
SUITE_ORG = "commonroom"


class Membership(msgspec.Struct, frozen=True, omit_defaults=True):
    """One role a user holds in one organisation."""

    org: str
    role: Role
    lecturer_id: str | None = None


def new_token_id() -> str:
    return secrets.token_urlsafe(16)


def access_claims(
    *,
    issuer: str,
    sub: str,
    membership: Membership,
    sid: str,
    now: datetime,
    ttl: timedelta,
) -> dict[str, Any]:
    """The claims of an access token; `ttl` is capped at the longest any token may live."""
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": sub,
        "role": membership.role.value,
        "org": membership.org,
        "sid": sid,
        "iat": issued,
        "exp": issued + int(min(ttl, LONGEST_TOKEN).total_seconds()),
        "jti": new_token_id(),
    }
    if membership.lecturer_id is not None:
        claims["lecturer_id"] = membership.lecturer_id
    return claims


def access_token(
    key: SigningKey,
    *,
    issuer: str,
    sub: str,
    membership: Membership,
    sid: str,
    now: datetime,
    ttl: timedelta = USER_ACCESS_TTL,
) -> str:
    return sign(
        access_claims(issuer=issuer, sub=sub, membership=membership, sid=sid, now=now, ttl=ttl),
        key,
    )


def service_membership() -> Membership:
    return Membership(org=SUITE_ORG, role=Role.SERVICE)
