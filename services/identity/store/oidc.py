"""OpenID Connect: logins sent to the provider, accounts linked there, and the one-time codes a
finished login hands to the web service."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity.store.logins import new_secret_token, token_hash
from services.identity.store.rows import AuthorizationCodeRow

# A code is exchanged by the web service the moment the browser brings it back.
CODE_TTL = timedelta(seconds=60)


async def issue_code(session: AsyncSession, *, user_id: str, now: datetime) -> str:
    code = new_secret_token()
    session.add(
        AuthorizationCodeRow(
            code_hash=token_hash(code), user_id=user_id, created_at=now, expires_at=now + CODE_TTL
        )
    )
    return code


async def redeem_code(session: AsyncSession, code: str, *, now: datetime) -> str | None:
    """The user a code was issued for, once: used, expired or unknown codes give None."""
    user_id: str | None = await session.scalar(
        update(AuthorizationCodeRow)
        .where(
            AuthorizationCodeRow.code_hash == token_hash(code),
            AuthorizationCodeRow.used_at.is_(None),
            AuthorizationCodeRow.expires_at > now,
        )
        .values(used_at=now)
        .returning(AuthorizationCodeRow.user_id)
    )
    return user_id
