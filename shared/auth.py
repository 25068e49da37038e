"""Bearer tokens: checking them, never making them, and the roles of the suite.

Identity alone signs tokens (EdDSA, Ed25519). Every other service verifies them against the keys
identity publishes at `{IDENTITY_URL}/.well-known/jwks.json`, and against the logins and users it
has revoked, which it publishes in Redis for every process to re-read every few seconds. A token
names who acts (`sub`), in which role, for which organisation, under which login (`sid`); services
check rights with plain functions over the `Principal`, so the rules are testable without HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm
from redis.asyncio import Redis

from shared.errors import Forbidden, ServiceUnavailable, Unauthenticated

ALGORITHM = "EdDSA"
# Clocks of the machines in a cluster drift a little: `exp`, `iat` and `nbf` are read with this
# much slack either way.
CLOCK_SKEW_SECONDS = 30
# An unknown `kid` sends a verifier back to identity at most this often, so a flood of made-up
# kids is not a flood of fetches.
REFETCH_INTERVAL_SECONDS = 5.0
# Identity publishes what it revoked in this sorted set: members `sid:<login>` and `sub:<user>`,
# each scored with the Unix time after which no token it covers can still be valid.
REVOKED_KEY = "commonroom:revoked"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "sub", "role", "org", "sid", "jti"]
_log = logging.getLogger("commonroom.auth")


class Role(StrEnum):
    OFFICE = "office"
    VENUE_MANAGER = "venue_manager"
    COMMUNITY_MANAGER = "community_manager"
    LECTURER = "lecturer"
    # A service's own token (client-credentials grant): the calls between services.
    SERVICE = "service"


PERSON_ROLES = (Role.OFFICE, Role.VENUE_MANAGER, Role.COMMUNITY_MANAGER, Role.LECTURER)


class Principal(msgspec.Struct, frozen=True):
    """Who is acting: the verified claims of a token."""

    sub: str
    role: Role
    org: str
    lecturer_id: str | None = None
    # The login (or the operator's grant) the token belongs to; revoking it ends the token.
    sid: str = ""

    @property
    def is_office(self) -> bool:
        """The office, which may do everything."""
        return self.role is Role.OFFICE

    @property
    def is_service(self) -> bool:
        return self.role is Role.SERVICE

    @property
    def is_office_or_service(self) -> bool:
        """The office, or a service's own token: both read everything. A service writes only
        what the contract names for the calls between services (the lecturer service's holds,
        approvals and cancels), each allowed where it is made: a compromised service can do
        no more than its part."""
        return self.role in (Role.OFFICE, Role.SERVICE)

    def require(self, *roles: Role) -> None:
        """Refuse (403) unless the principal holds one of `roles`; office may always act, a
        service only where `Role.SERVICE` is named."""
        if not self.is_office and self.role not in roles:
            raise Forbidden(f"the {self.role.value} role may not do this")

    def require_person(self) -> None:
        """Refuse (403) a service's own token: for what the contract lets no service do."""
        if self.is_service:
            raise Forbidden("a service's token may not do this")


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("an Authorization: Bearer token is required")
    return token.strip()


def _not_valid() -> Unauthenticated:
    return Unauthenticated("the bearer token is not valid")


class _Jwk(msgspec.Struct):
    kty: str
    kid: str = ""
    crv: str = ""
    x: str = ""
    use: str = "sig"
    alg: str = ALGORITHM


class _Jwks(msgspec.Struct):
    keys: list[_Jwk]


def public_keys_of(document: bytes) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 signing keys of a JWKS document, by `kid`; keys of other kinds are ignored."""
    found: dict[str, Ed25519PublicKey] = {}
    for jwk in msgspec.json.decode(document, type=_Jwks).keys:
        if jwk.kty != "OKP" or jwk.crv != "Ed25519" or jwk.use != "sig" or not jwk.kid:
            continue
        key = OKPAlgorithm.from_jwk(msgspec.to_builtins(jwk))
        if isinstance(key, Ed25519PublicKey):
            found[jwk.kid] = key
    return found


class PublishedKeys:
    """Identity's published keys as this process last read them.

    The set is read again once it is `max_age` old (so a retired key stops being accepted), and
    at once for an unknown `kid`, but no more often than every `refetch_interval`. While identity
    cannot be reached, keys already known keep working and an unknown `kid` is 503
    `identity_unavailable`: a page must not sign everyone out because identity restarts.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[bytes]],
        *,
        max_age: float,
        refetch_interval: float = REFETCH_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at: float | None = None
        self._tried_at: float | None = None
        self._reachable = True
        self._lock = asyncio.Lock()

    def known(self, kid: str) -> Ed25519PublicKey | None:
        """The key for `kid` if it is known and the set is fresh: the path of almost every call."""
        fetched = self._fetched_at
        if fetched is None or self._clock() - fetched >= self._max_age:
            return None
        return self._keys.get(kid)

    async def key(self, kid: str) -> Ed25519PublicKey:
        known = self.known(kid)
        if known is not None:
            return known
        async with self._lock:  # one fetch, however many requests wait for it
            known = self.known(kid)
            if known is None and self._may_try():
                await self._refresh()
            key = self._keys.get(kid)
        if key is not None:
            return key
        if not self._reachable:
            raise ServiceUnavailable(
                "the identity service cannot be reached to check this token's key",
                code="identity_unavailable",
            )
        raise _not_valid()

    def _may_try(self) -> bool:
        """Whether to ask identity now: a stale set is read again at once after a good read
        (so the cache age holds), an unknown kid or a failed read waits out the interval."""
        tried = self._tried_at
        if tried is None or self._clock() - tried >= self._refetch_interval:
            return True
        fetched = self._fetched_at
        return self._reachable and fetched is not None and self._clock() - fetched >= self._max_age

    async def _refresh(self) -> None:
        self._tried_at = self._clock()
        try:
            keys = public_keys_of(await self._fetch())
        except Exception:  # identity away or answering nonsense: keep what is known
            _log.warning("identity's keys could not be read", exc_info=True)
            self._reachable = False
            return
        self._keys = keys
        self._fetched_at = self._clock()
        self._reachable = True


class Revocations:
    """The logins (`sid`) and users (`sub`) identity has revoked, as this process last read them.

    Read from Redis every few seconds by a background task (`poll`), never per request: a Redis
    round trip costs a fifth of a booking. While Redis is away the last set read stays in force.
    """

    def __init__(self) -> None:
        self._sids: frozenset[str] = frozenset()
        self._subs: frozenset[str] = frozenset()

    def revoked(self, principal: Principal) -> bool:
        return principal.sid in self._sids or principal.sub in self._subs

    def replace(self, members: list[str]) -> None:
        self._sids = frozenset(m[4:] for m in members if m.startswith("sid:"))
        self._subs = frozenset(m[4:] for m in members if m.startswith("sub:"))

    async def refresh(self, redis: Redis) -> None:
        members = await redis.zrangebyscore(REVOKED_KEY, time.time(), "+inf")
        self.replace([m.decode() if isinstance(m, bytes) else str(m) for m in members])

    async def poll(self, redis: Redis, every: float) -> None:
        """Re-read the set every `every` seconds until cancelled."""
        while True:
            try:
                await self.refresh(redis)
            except Exception:  # Redis away: what was read last stays in force
                _log.warning("revocations could not be read from redis", exc_info=True)
            await asyncio.sleep(every)


class TokenVerifier:
    """The principal of an `Authorization: Bearer` header.

    A client sends the same token with every request and checking its signature costs a tenth of
    a cheap request, so a token is checked once and remembered until it expires; only the
    revocations, held in this process, are looked at again each time.
    """

    def __init__(
        self,
        keys: PublishedKeys,
        revocations: Revocations,
        *,
        issuer: str,
        size: int = 10_000,
    ) -> None:
        self._keys = keys
        self._revocations = revocations
        self._issuer = issuer
        self._size = size
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    async def __call__(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        known = self._verified.get(token)
        if known is not None and time.time() < known[1] + CLOCK_SKEW_SECONDS:
            principal = known[0]
        else:
            principal, expires = await self._verify(token)
            self._verified[token] = (principal, expires)
            if len(self._verified) > self._size:
                self._verified.popitem(last=False)
        if self._revocations.revoked(principal):
            raise Unauthenticated("the bearer token has been revoked")
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _not_valid() from exc
        kid = header.get("kid")
        # Only EdDSA, only with a kid: no `none`, no HS256 with a published key as its secret.
        if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
            raise _not_valid()
        key = await self._keys.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": REQUIRED_CLAIMS, "verify_aud": False},
            )
            principal = msgspec.convert(claims, Principal, strict=True)
        except (jwt.PyJWTError, msgspec.ValidationError) as exc:
            raise _not_valid() from exc
        if principal.role is Role.LECTURER and not principal.lecturer_id:
            raise Unauthenticated("a lecturer token must name its lecturer_id")
        return principal, float(claims["exp"])
