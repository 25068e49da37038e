"""OpenID Connect: logins sent to the provider, accounts linked there, and the one-time codes a
finished login hands to the web service."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity.domain.accounts import Locale
from services.identity.domain.invitations import Closed
from services.identity.domain.oidc import STATE_TTL, LoginStart, PendingLogin
from services.identity.domain.tokens import Membership
from services.identity.store.accounts import create_user
from services.identity.store.invitations import join
from services.identity.store.logins import new_secret_token, token_hash
from services.identity.store.rows import (
    AuthorizationCodeRow,
    ExternalAccountRow,
    InvitationRow,
    OidcStateRow,
    UserRow,
)
from shared.auth import Role

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


async def save_login(
    session: AsyncSession, login: LoginStart, *, return_to: str, now: datetime
) -> None:
    """Remember a login sent to the provider (its state hashed); forget those that never came
    back."""
    await session.execute(delete(OidcStateRow).where(OidcStateRow.created_at <= now - STATE_TTL))
    session.add(
        OidcStateRow(
            state_hash=token_hash(login.state),
            nonce=login.nonce,
            code_verifier=login.code_verifier,
            return_to=return_to,
            created_at=now,
        )
    )


async def take_login(session: AsyncSession, state: str) -> PendingLogin | None:
    """The login a `state` belongs to, taken so that it works once (deleted in the same
    statement: two callbacks with one state cannot both find it). Unknown states give None;
    the caller checks its age."""
    found = (
        await session.execute(
            delete(OidcStateRow)
            .where(OidcStateRow.state_hash == token_hash(state))
            .returning(
                OidcStateRow.nonce,
                OidcStateRow.code_verifier,
                OidcStateRow.return_to,
                OidcStateRow.created_at,
            )
        )
    ).one_or_none()
    if found is None:
        return None
    return PendingLogin(
        nonce=found.nonce,
        code_verifier=found.code_verifier,
        return_to=found.return_to,
        created_at=found.created_at,
    )


async def linked_user(session: AsyncSession, *, issuer: str, subject: str) -> UserRow | None:
    """The user an account at the provider is linked to, if any."""
    row: UserRow | None = await session.scalar(
        select(UserRow)
        .join(ExternalAccountRow, ExternalAccountRow.user_id == UserRow.id)
        .where(ExternalAccountRow.issuer == issuer, ExternalAccountRow.subject == subject)
    )
    return row


async def has_open_invitation(session: AsyncSession, email: str, *, now: datetime) -> bool:
    found = await session.scalar(select(InvitationRow.id).where(_open_for(email, now)).limit(1))
    return found is not None


def _open_for(email: str, now: datetime) -> ColumnElement[bool]:
    return and_(
        InvitationRow.email == email,
        InvitationRow.closed_at.is_(None),
        InvitationRow.expires_at > now,
    )


async def join_by_invitations(
    session: AsyncSession, *, issuer: str, subject: str, email: str, name: str | None, now: datetime
) -> UserRow | None:
    """A first login through the provider: every open invitation for its verified `email` is
    accepted, a user without a password is made with their memberships, and the provider's
    account is linked to it. None where no invitation is open (taken in one statement, so two
    first logins at once cannot both accept one)."""
    accepted = (
        await session.execute(
            update(InvitationRow)
            .where(_open_for(email, now))
            .values(closed_at=now, closed_as=Closed.ACCEPTED.value)
            .returning(
                InvitationRow.id,
                InvitationRow.org,
                InvitationRow.role,
                InvitationRow.lecturer_id,
                InvitationRow.name,
                InvitationRow.locale,
                InvitationRow.created_at,
            )
        )
    ).all()
    if not accepted:
        return None
    accepted = sorted(accepted, key=lambda row: (row.created_at, row.id))
    first = accepted[0]
    user = await create_user(
        session,
        email=email,
        name=first.name or name or email.split("@", maxsplit=1)[0],
        locale=Locale(first.locale),
        password_hash=None,
        now=now,
    )
    for row in accepted:
        await join(
            session,
            user,
            Membership(org=row.org, role=Role(row.role), lecturer_id=row.lecturer_id),
            invitation_id=row.id,
            new_account=row is first,
            now=now,
        )
    session.add(ExternalAccountRow(issuer=issuer, subject=subject, user_id=user.id, created_at=now))
    return user
