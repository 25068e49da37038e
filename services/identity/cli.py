"""Identity's operator commands: tokens for scripts, the first accounts, key rotation.

They act on identity's own database and key file directly (an operator's tools, run where
identity's secrets are), never through another service.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.identity.domain.accounts import (
    Locale,
    check_password,
    default_org_kind,
    ensure_person_role,
    normalise_email,
)
from services.identity.domain.keys import LONGEST_TOKEN, SigningKey, signing_key
from services.identity.domain.passwords import Passwords
from services.identity.domain.tokens import OPERATOR_TOKEN_TTL, Membership, access_token
from services.identity.store import accounts, logins
from services.identity.store.keys import add_rotated_key, read_key_file, rotated_keys
from shared.auth import Role
from shared.config import Settings
from shared.db import Database, connect


@dataclass(frozen=True)
class OperatorToken:
    token: str
    sid: str
    expires_at: datetime


async def _keys(database: Database, settings: Settings) -> list[SigningKey]:
    async with database.read() as session:
        return [read_key_file(settings.signing_key_file), *await rotated_keys(session)]


async def issue_operator_tokens(
    settings: Settings,
    requests: list[tuple[Membership, str]],
    *,
    ttl: timedelta = OPERATOR_TOKEN_TTL,
) -> list[OperatorToken]:
    """Tokens for (membership, sub) pairs, signed with identity's active key, each its own login
    (so each can be revoked by its `sid`)."""
    ttl = min(ttl, LONGEST_TOKEN)
    database = connect(settings.database_url("identity"))
    try:
        now = datetime.now(UTC)
        key = signing_key(await _keys(database, settings), now)
        made = []
        async with database.write() as session:
            for membership, sub in requests:
                sid = await logins.start_login(
                    session, sub=sub, kind="operator", now=now, lifetime=ttl
                )
                token = access_token(
                    key,
                    issuer=settings.issuer,
                    sub=sub,
                    membership=membership,
                    sid=sid,
                    now=now,
                    ttl=ttl,
                )
                made.append(OperatorToken(token=token, sid=sid, expires_at=now + ttl))
        return made
    finally:
        await database.dispose()


def operator_token(
    settings: Settings, membership: Membership, sub: str, *, ttl: timedelta
) -> OperatorToken:
    return asyncio.run(issue_operator_tokens(settings, [(membership, sub)], ttl=ttl))[0]


async def _revoke(settings: Settings, sid: str) -> bool:
    from redis.asyncio import Redis

    database = connect(settings.database_url("identity"))
    redis = Redis.from_url(settings.redis_url)
    try:
        now = datetime.now(UTC)
        async with database.write() as session:
            members = await logins.revoke_logins(session, [sid], now=now)
            live = await logins.live_revocations(session, now)
        await logins.publish_revocations(redis, {m: live[m] for m in members if m in live})
        return bool(members)
    finally:
        await redis.aclose()
        await database.dispose()


def revoke_token(settings: Settings, sid: str) -> bool:
    """End every token of the login or operator grant `sid`."""
    return asyncio.run(_revoke(settings, sid))


async def add_user(
    settings: Settings,
    *,
    email: str,
    password: str | None,
    membership: Membership,
    name: str = "",
    org_name: str | None = None,
    locale: Locale = Locale.ZH_CN,
) -> str:
    """An account with a membership (its organisation made where missing); an existing account
    gets the membership and keeps its password. Returns the user's id."""
    ensure_person_role(membership.role)
    address = normalise_email(email)
    if password is not None:
        check_password(password, email=address)
    passwords = Passwords(workers=1)
    database = connect(settings.database_url("identity"))
    try:
        hashed = None if password is None else await passwords.hash(password)
        now = datetime.now(UTC)
        async with database.write() as session:
            await accounts.ensure_org(
                session,
                org_id=membership.org,
                name=org_name or membership.org,
                kind=default_org_kind(membership.role),
                now=now,
            )
            row = await accounts.user_row_by_email(session, address)
            if row is None:
                row = await accounts.create_user(
                    session,
                    email=address,
                    name=name or address.split("@")[0],
                    locale=locale,
                    password_hash=hashed,
                    now=now,
                )
            elif row.password_hash is None:
                row.password_hash = hashed  # an existing account's password is never changed
            await accounts.add_membership(session, user_id=row.id, membership=membership, now=now)
            return row.id
    finally:
        passwords.close()
        await database.dispose()


async def _rotate(settings: Settings) -> SigningKey:
    database = connect(settings.database_url("identity"))
    try:
        async with database.write() as session:
            return await add_rotated_key(
                session,
                now=datetime.now(UTC),
                jwks_max_age=timedelta(seconds=settings.jwks_max_age_seconds),
            )
    finally:
        await database.dispose()


def rotate_keys(settings: Settings) -> SigningKey:
    return asyncio.run(_rotate(settings))


def membership_of(role: str, org: str, lecturer_id: str | None) -> Membership:
    return Membership(org=org, role=Role(role), lecturer_id=lecturer_id)
