"""Bearer tokens (HS256 JWTs) and the four roles of the suite.

A token names who acts (`sub`), in which role, for which organisation. Services check rights with
plain functions over the `Principal`, so the rules are testable without HTTP.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt
import msgspec

from shared.errors import Forbidden, Unauthenticated

ALGORITHM = "HS256"


class Role(StrEnum):
    OFFICE = "office"
    VENUE_MANAGER = "venue_manager"
    COMMUNITY_MANAGER = "community_manager"
    LECTURER = "lecturer"


class Principal(msgspec.Struct, frozen=True):
    """Who is acting: the verified claims of a token."""

    sub: str
    role: Role
    org: str
    lecturer_id: str | None = None

    @property
    def is_office(self) -> bool:
        return self.role is Role.OFFICE

    def require(self, *roles: Role) -> None:
        """Refuse (403) unless the principal holds one of `roles`; office may always act."""
        if not self.is_office and self.role not in roles:
            raise Forbidden(f"the {self.role.value} role may not do this")


def issue_token(
    secret: str,
    *,
    role: Role,
    org: str,
    sub: str,
    lecturer_id: str | None = None,
    ttl: timedelta = timedelta(days=30),
    now: datetime | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "sub": sub,
        "role": role.value,
        "org": org,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    if lecturer_id is not None:
        claims["lecturer_id"] = lecturer_id
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def service_token(secret: str, service: str) -> str:
    """The token one service presents to another: office rights, `sub` naming the caller."""
    return issue_token(secret, role=Role.OFFICE, org="commonroom", sub=service)


def verify_token(secret: str, token: str) -> Principal:
    """The principal a token stands for; any defect (signature, expiry, claims) is 401."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "role", "org"]},
        )
        principal = msgspec.convert(claims, Principal, strict=True)
    except (jwt.PyJWTError, msgspec.ValidationError) as exc:
        raise Unauthenticated("the bearer token is not valid") from exc
    if principal.role is Role.LECTURER and not principal.lecturer_id:
        raise Unauthenticated("a lecturer token must name its lecturer_id")
    return principal


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("an Authorization: Bearer token is required")
    return token.strip()


class TokenVerifier:
    """The principal of an `Authorization: Bearer` header, remembering tokens until they expire.

    A client sends the same token with every request, and checking its signature costs a tenth
    of a cheap request; a token is immutable, so what it said once it says until `exp`.
    """

    def __init__(self, secret: str, *, size: int = 10_000) -> None:
        self._secret = secret
        self._size = size
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    def __call__(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        known = self._verified.get(token)
        if known is not None and time.time() < known[1]:
            return known[0]
        principal = verify_token(self._secret, token)
        expires = float(jwt.decode(token, options={"verify_signature": False})["exp"])
        self._verified[token] = (principal, expires)
        if len(self._verified) > self._size:
            self._verified.popitem(last=False)
        return principal
