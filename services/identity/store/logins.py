"""Logins, their rotating refresh tokens, and revocations published to every verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity.domain.keys import LONGEST_TOKEN
from services.identity.domain.tokens import REFRESH_GRACE, REFRESH_TTL, Membership
from services.identity.store.keys import server_secret
from services.identity.store.rows import LoginRow, RefreshTokenRow, RevocationRow
from shared.auth import REVOKED_KEY, Role
from shared.outbox import insert_ignoring_duplicates

_SUCCESSOR_SECRET = "refresh-successor"  # noqa: S105 (the secret's name, not the secret)


def token_hash(token: str) -> str:
    """How a bearer secret (refresh token, invitation, reset link, code) is stored: hashed."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret_token() -> str:
    return secrets.token_urlsafe(32)


def new_sid() -> str:
    return secrets.token_urlsafe(18)


async def start_login(
    session: AsyncSession, *, sub: str, kind: str, now: datetime, lifetime: timedelta
) -> str:
    """A new login for `sub`; its id is the `sid` of every token it yields."""
    sid = new_sid()
    session.add(LoginRow(sid=sid, sub=sub, kind=kind, created_at=now, expires_at=now + lifetime))
    return sid


async def issue_refresh_token(
    session: AsyncSession, *, sid: str, user_id: str, membership: Membership, now: datetime
) -> str:
    token = new_secret_token()
    await _store_refresh(session, token, sid=sid, user_id=user_id, membership=membership, now=now)
    return token


async def _store_refresh(
    session: AsyncSession,
    token: str,
    *,
    sid: str,
    user_id: str,
    membership: Membership,
    now: datetime,
) -> None:
    # Two tabs refreshing at once derive the same successor: the second insert does nothing.
    await session.execute(
        insert_ignoring_duplicates(session, RefreshTokenRow)
        .values(
            token_hash=token_hash(token),
            sid=sid,
            user_id=user_id,
            org=membership.org,
            role=membership.role.value,
            issued_at=now,
            expires_at=now + REFRESH_TTL,
        )
        .on_conflict_do_nothing()
    )


@dataclass(frozen=True)
class Refreshed:
    """A refresh token's successor, and the login and membership it carries on."""

    refresh_token: str
    sid: str
    user_id: str
    membership: Membership


class Replayed(Exception):
    """A used refresh token came back after the grace period: its login is now revoked."""

    def __init__(self, sid: str) -> None:
        super().__init__(sid)
        self.sid = sid


async def use_refresh_token(
    session: AsyncSession, token: str, *, now: datetime, membership: Membership | None = None
) -> Refreshed | None:
    """The successor of `token`, or None where it is unknown, expired or of an ended login.

    A token works once. Presented again within `REFRESH_GRACE` (two tabs at once) it gives the
    same successor, derived from it with a secret the replicas share, so no successor is ever
    stored in clear; presented later, it raises `Replayed` and the caller revokes the login."""
    row = await session.scalar(
        select(RefreshTokenRow)
        .where(RefreshTokenRow.token_hash == token_hash(token))
        .with_for_update()
    )
    if row is None or row.expires_at <= now:
        return None
    login = await session.get(LoginRow, row.sid)
    if login is None or login.revoked_at is not None:
        return None
    if row.used_at is not None and now - row.used_at > REFRESH_GRACE:
        raise Replayed(row.sid)
    if row.used_at is None:
        row.used_at = now
    carried = membership or Membership(org=row.org, role=Role(row.role))
    successor = await _successor(session, token)
    await _store_refresh(
        session, successor, sid=row.sid, user_id=row.user_id, membership=carried, now=now
    )
    stored = await session.get(RefreshTokenRow, token_hash(successor))
    assert stored is not None
    return Refreshed(
        refresh_token=successor,
        sid=row.sid,
        user_id=row.user_id,
        membership=Membership(org=stored.org, role=Role(stored.role)),
    )


async def _successor(session: AsyncSession, token: str) -> str:
    key = await server_secret(session, _SUCCESSOR_SECRET)
    digest = hmac.new(key, token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def owner_of_refresh_token(session: AsyncSession, token: str) -> str | None:
    row = await session.get(RefreshTokenRow, token_hash(token))
    return None if row is None else row.user_id


async def login_of_refresh_token(session: AsyncSession, token: str) -> str | None:
    row = await session.get(RefreshTokenRow, token_hash(token))
    return None if row is None else row.sid


async def revoke_logins(session: AsyncSession, sids: list[str], *, now: datetime) -> list[str]:
    """End logins: their refresh tokens stop at once, their access tokens once every verifier
    has read the revocation. Returns the revocation members to publish."""
    if not sids:
        return []
    await session.execute(
        update(LoginRow)
        .where(LoginRow.sid.in_(sids), LoginRow.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return await _revoke(session, [f"sid:{sid}" for sid in sids], now=now)


async def revoke_user(session: AsyncSession, user_id: str, *, now: datetime) -> list[str]:
    """End every login of a user and every token naming it, an operator's included."""
    sids = list(
        (
            await session.scalars(
                select(LoginRow.sid).where(LoginRow.sub == user_id, LoginRow.revoked_at.is_(None))
            )
        ).all()
    )
    members = await revoke_logins(session, sids, now=now)
    return members + await _revoke(session, [f"sub:{user_id}"], now=now)


async def logins_of(session: AsyncSession, user_id: str) -> list[str]:
    return list(
        (
            await session.scalars(
                select(LoginRow.sid).where(LoginRow.sub == user_id, LoginRow.revoked_at.is_(None))
            )
        ).all()
    )


async def _revoke(session: AsyncSession, members: list[str], *, now: datetime) -> list[str]:
    # Until no token it covers can be valid: the longest a token lives, and the clock skew.
    until = now + LONGEST_TOKEN + timedelta(minutes=1)
    for member in members:
        await session.execute(
            insert_ignoring_duplicates(session, RevocationRow)
            .values(member=member, until=until)
            .on_conflict_do_nothing()
        )
    return members


async def live_revocations(session: AsyncSession, now: datetime) -> dict[str, datetime]:
    rows = await session.execute(
        select(RevocationRow.member, RevocationRow.until).where(RevocationRow.until > now)
    )
    # Rows are tuples (`Result.tuples()` is deprecated in SQLAlchemy 2.1).
    return dict(rows.all())


async def publish_revocations(redis: Redis, revocations: dict[str, datetime]) -> None:
    """Tell every verifier (they re-read the set every few seconds); expired entries go."""
    async with redis.pipeline(transaction=True) as pipe:
        if revocations:
            pipe.zadd(REVOKED_KEY, {m: until.timestamp() for m, until in revocations.items()})
        pipe.zremrangebyscore(REVOKED_KEY, "-inf", time.time())
        await pipe.execute()


# Failed sign-ins are counted per submitted username (whether it exists or not) over a window.
FAILURE_WINDOW_SECONDS = 15 * 60
MAX_FAILURES = 10


def _failures_key(username: str) -> str:
    return f"commonroom:identity:failures:{token_hash(username)}"


async def seconds_until_allowed(redis: Redis, username: str, *, now: float) -> int:
    """0 where `username` may try to sign in; else how long until its oldest failure in the
    window ages out."""
    key = _failures_key(username)
    await redis.zremrangebyscore(key, "-inf", now - FAILURE_WINDOW_SECONDS)
    recent = await redis.zrange(key, 0, -1, withscores=True)
    if len(recent) < MAX_FAILURES:
        return 0
    oldest = float(recent[-MAX_FAILURES][1])
    return max(1, int(oldest + FAILURE_WINDOW_SECONDS - now) + 1)


async def record_failure(redis: Redis, username: str, *, now: float) -> None:
    key = _failures_key(username)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zadd(key, {secrets.token_hex(8): now})
        pipe.expire(key, FAILURE_WINDOW_SECONDS)
        await pipe.execute()


async def forget_failures(redis: Redis, username: str) -> None:
    await redis.delete(_failures_key(username))
