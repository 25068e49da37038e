"""What the web service keeps in Redis: sessions (encrypted), OpenID Connect sign-ins under way,
and failed sign-ins per client address. It has no database.

A session record is found by a hash of its id, so a copy of Redis holds no cookie value, and is
encrypted with a key of the web service's own (Fernet: AES-CBC and HMAC), since it holds the
login's refresh token. Redis forgets a record when the session's idle or absolute time is up.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis.asyncio import Redis

from services.web.domain.sessions import WebSession, is_over, needs_refresh, seconds_left

_PREFIX: Final = "commonroom:web:"
# A refresh waits this long at most for another request of the same session to finish its own.
REFRESH_LOCK_SECONDS: Final = 15.0
# An OpenID Connect sign-in must come back within this.
OIDC_STATE_SECONDS: Final = 600
# Failed sign-ins from one client address: at most this many in the window, then a wait.
FAILED_LOGINS_PER_ADDRESS: Final = 30
FAILED_LOGINS_WINDOW_SECONDS: Final = 900


def derived_key(secret: str, purpose: bytes) -> bytes:
    """A key for one purpose, derived from the web secret (HKDF-SHA256), so the session records
    and the CSRF tokens never share one."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def _hashed(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionGone(Exception):
    """The session has ended (timed out, signed out, or its login was refused at refresh)."""


Refresher = Callable[[WebSession], Awaitable[WebSession]]


class Sessions:
    """The sessions of every web replica, in Redis."""

    def __init__(self, redis: Redis, secret: str) -> None:
        self.redis = redis
        self._redis = redis
        self._fernet = Fernet(base64.urlsafe_b64encode(derived_key(secret, b"web-session")))

    def _key(self, session_id: str) -> str:
        return f"{_PREFIX}session:{_hashed(session_id)}"

    async def save(self, session_id: str, session: WebSession, *, now: float) -> None:
        sealed = self._fernet.encrypt(msgspec.msgpack.encode(session))
        await self._redis.set(self._key(session_id), sealed, ex=seconds_left(session, now))

    async def load(self, session_id: str, *, now: float) -> WebSession | None:
        """The session, where it exists and has not ended."""
        sealed = await self._redis.get(self._key(session_id))
        if sealed is None:
            return None
        try:
            session = msgspec.msgpack.decode(self._fernet.decrypt(sealed), type=WebSession)
        except (InvalidToken, msgspec.DecodeError, msgspec.ValidationError):
            return None  # made with another key, or by an older build: sign in again
        if is_over(session, now):
            await self.delete(session_id)
            return None
        return session

    async def delete(self, session_id: str) -> None:
        await self._redis.delete(self._key(session_id))

    async def refreshed(
        self, session_id: str, session: WebSession, refresh: Refresher, *, now: float
    ) -> WebSession:
        """The session with a fresh access token. One request of a session refreshes at a time:
        the others wait, then find the token the first one got (two tabs must not both present
        the same refresh token, which identity would count as a replay after 30 seconds)."""
        if not needs_refresh(session, now):
            return session
        lock = self._redis.lock(
            f"{_PREFIX}refresh:{_hashed(session_id)}",
            timeout=REFRESH_LOCK_SECONDS,
            blocking_timeout=REFRESH_LOCK_SECONDS,
        )
        async with lock:
            latest = await self.load(session_id, now=now)
            if latest is None:
                raise SessionGone
            if not needs_refresh(latest, now):
                return latest
            fresh = await refresh(latest)
            await self.save(session_id, fresh, now=now)
            return fresh

    async def start_oidc(self, state: str, next_path: str) -> None:
        await self._redis.set(f"{_PREFIX}oidc:{_hashed(state)}", next_path, ex=OIDC_STATE_SECONDS)

    async def take_oidc(self, state: str) -> str | None:
        """Where an OpenID Connect sign-in started from; once only."""
        found: bytes | None = await self._redis.getdel(f"{_PREFIX}oidc:{_hashed(state)}")
        return None if found is None else found.decode()


class LoginThrottle:
    """Failed sign-ins counted per client address, on top of identity's count per account: one
    address trying many accounts is slowed down too."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def _key(self, address: str) -> str:
        return f"{_PREFIX}failed-logins:{address}"

    async def wait_seconds(self, address: str) -> int:
        """0, or how long the address must wait before its next try."""
        key = self._key(address)
        count = await self._redis.get(key)
        if count is None or int(count) < FAILED_LOGINS_PER_ADDRESS:
            return 0
        return max(1, int(await self._redis.ttl(key)))

    async def failed(self, address: str) -> None:
        key = self._key(address)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, FAILED_LOGINS_WINDOW_SECONDS, nx=True)
            await pipe.execute()


# A booking's confirmation outlives its POST by this long: the page the browser is sent to after
# it (Post/Redirect/Get) reads it, and a reload within the hour shows it again.
CONFIRMATION_SECONDS: Final = 3600


class Confirmations:
    """What a booking form made, kept for the confirmation page after the redirect: the booking
    service does not keep the dates a repeat skipped, so the page could not ask it again. Kept
    per session and per form (its idempotency key), so nobody else's link shows it."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    def _key(self, session_id: str, form_key: str) -> str:
        return f"{_PREFIX}made:{_hashed(session_id)}:{_hashed(form_key)}"

    async def keep(self, session_id: str, form_key: str, made: bytes) -> None:
        await self._redis.set(self._key(session_id, form_key), made, ex=CONFIRMATION_SECONDS)

    async def find(self, session_id: str, form_key: str) -> bytes | None:
        found: bytes | None = await self._redis.get(self._key(session_id, form_key))
        return found
