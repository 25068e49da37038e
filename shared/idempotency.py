"""Idempotency-Key handling for creating writes, usable by any service.

The first request with a key claims it inside its own transaction and stores its response there;
a retry with the same key and body gets that response again, byte for byte, and creates nothing.
A concurrent duplicate waits on the claim (PostgreSQL's unique index, SQLite's write lock) and
then replays. Keys live 24 hours.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.errors import FieldError, InvalidRequest
from shared.outbox import insert_ignoring_duplicates

KEY_LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 200


class Replay(msgspec.Struct, frozen=True):
    status: int
    body: bytes


class Keyed(msgspec.Struct, frozen=True):
    """A request's Idempotency-Key: whose and which call it keys (`scope`), and the body's
    fingerprint, so the key cannot answer another request."""

    scope: str
    key: str
    fingerprint: str


def fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def check_key(key: str) -> None:
    """422 unless the key is 1 to 200 characters."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidRequest(
            "the Idempotency-Key must be 1 to 200 characters",
            errors=[FieldError("Idempotency-Key", "1 to 200 characters")],
        )


async def claim(
    session: AsyncSession,
    table: Table,
    *,
    scope: str,
    key: str,
    body_fingerprint: str,
    now: datetime,
) -> Replay | None:
    """Claim `key` for this request, or return the response of the request that claimed it."""
    check_key(key)
    await _drop_expired(session, table, scope=scope, key=key, now=now)
    inserted = await session.execute(
        insert_ignoring_duplicates(session, table)
        .values(scope=scope, key=key, fingerprint=body_fingerprint, created_at=now)
        .on_conflict_do_nothing()
        .returning(table.c.key)
    )
    if inserted.first() is not None:
        return None
    return await _kept(session, table, scope=scope, key=key, body_fingerprint=body_fingerprint)


async def answered(
    session: AsyncSession,
    table: Table,
    *,
    scope: str,
    key: str,
    body_fingerprint: str,
    now: datetime,
) -> Replay | None:
    """The response kept under `key`, for a request that kept its response with its change
    (instead of claiming the key first); None where there is none, or it expired (then dropped)."""
    await _drop_expired(session, table, scope=scope, key=key, now=now)
    return await _kept(session, table, scope=scope, key=key, body_fingerprint=body_fingerprint)


async def _drop_expired(
    session: AsyncSession, table: Table, *, scope: str, key: str, now: datetime
) -> None:
    this_key = (table.c.scope == scope) & (table.c.key == key)
    await session.execute(delete(table).where(this_key, table.c.created_at < now - KEY_LIFETIME))


async def _kept(
    session: AsyncSession, table: Table, *, scope: str, key: str, body_fingerprint: str
) -> Replay | None:
    """The response kept under `key`; 422 when it was the answer to another request body."""
    row = (
        await session.execute(
            select(table.c.fingerprint, table.c.status, table.c.body).where(
                table.c.scope == scope, table.c.key == key
            )
        )
    ).first()
    if row is None:
        return None
    if row.fingerprint != body_fingerprint:
        raise InvalidRequest(
            "this Idempotency-Key was used with another request body",
            code="idempotency_key_reused",
            errors=[FieldError("Idempotency-Key", "already used with another body")],
        )
    return Replay(status=row.status, body=row.body)


async def remember(
    session: AsyncSession, table: Table, *, scope: str, key: str, status: int, body: bytes
) -> None:
    await session.execute(
        update(table)
        .where(table.c.scope == scope, table.c.key == key)
        .values(status=status, body=body)
    )
