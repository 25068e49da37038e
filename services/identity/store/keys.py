"""Signing keys (the file's, and those rotated into the database) and the replicas' secrets."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity.domain.keys import (
    IDENTITY_REREAD,
    KeyFileError,
    SigningKey,
    file_key,
    jwks,
    new_private_key_pem,
    private_key_from_pem,
    rotated_key,
    signing_key,
)
from services.identity.store.rows import ServerSecretRow, SigningKeyRow
from shared.db import Database
from shared.outbox import insert_ignoring_duplicates


def read_key_file(path: Path) -> SigningKey:
    """The first key, from its PEM file; a missing or unfit file says which and why."""
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"COMMONROOM_SIGNING_KEY_FILE {path} cannot be read: {exc}") from exc
    try:
        return file_key(private_key_from_pem(pem))
    except KeyFileError as exc:
        raise KeyFileError(f"COMMONROOM_SIGNING_KEY_FILE {path}: {exc}") from exc


async def rotated_keys(session: AsyncSession) -> list[SigningKey]:
    rows = (await session.scalars(select(SigningKeyRow))).all()
    return [
        SigningKey(
            kid=row.kid,
            private=private_key_from_pem(row.private_pem),
            published_from=row.published_from,
            sign_from=row.sign_from,
        )
        for row in rows
    ]


async def add_rotated_key(
    session: AsyncSession, *, now: datetime, jwks_max_age: timedelta
) -> SigningKey:
    """A new key, published now and signing once every verifier has seen it."""
    pem = new_private_key_pem()
    key = rotated_key(private_key_from_pem(pem), now=now, jwks_max_age=jwks_max_age)
    session.add(
        SigningKeyRow(
            kid=key.kid,
            private_pem=pem,
            published_from=key.published_from,
            sign_from=key.sign_from,
        )
    )
    return key


async def server_secret(session: AsyncSession, name: str) -> bytes:
    """A random secret every replica shares, made by whichever asks first."""
    await session.execute(
        insert_ignoring_duplicates(session, ServerSecretRow)
        .values(name=name, value=secrets.token_bytes(32))
        .on_conflict_do_nothing()
    )
    value = await session.scalar(select(ServerSecretRow.value).where(ServerSecretRow.name == name))
    assert value is not None  # inserted just now, or by another replica before
    return value


class Keyring:
    """The keys this identity process signs with and publishes: the file's, and the rotated ones
    in the database, re-read every few seconds so every replica follows a rotation."""

    def __init__(self, first: SigningKey, database: Database) -> None:
        self._first = first
        self._database = database
        self._reread_seconds = IDENTITY_REREAD.total_seconds()
        self._rotated: list[SigningKey] = []
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def keys(self) -> list[SigningKey]:
        if self._read_at is None or time.monotonic() - self._read_at >= self._reread_seconds:
            async with self._lock:
                if (
                    self._read_at is None
                    or time.monotonic() - self._read_at >= self._reread_seconds
                ):
                    async with self._database.read() as session:
                        self._rotated = await rotated_keys(session)
                    self._read_at = time.monotonic()
        return [self._first, *self._rotated]

    async def signing_key(self, now: datetime) -> SigningKey:
        return signing_key(await self.keys(), now)

    async def jwks(self, now: datetime) -> bytes:
        return msgspec.json.encode(jwks(await self.keys(), now))
