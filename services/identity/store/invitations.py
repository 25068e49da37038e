"""The links identity mails: invitations and password resets, stored by the hash of their token.

A link's token exists in clear only in the event that takes it to notify (the relay scrubs it
from the outbox once sent) and in the mail. Using a link is one conditional UPDATE, so of two
requests racing with the same link only one wins, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity.domain.accounts import Locale, User
from services.identity.domain.invitations import (
    INVITATION_TTL,
    RESET_TTL,
    RESET_WINDOW,
    Closed,
    Invitation,
    ensure_open,
    ensure_reset_usable,
    invitation_gone,
    invite_link,
    may_send_reset,
    reset_gone,
    reset_link,
)
from services.identity.domain.tokens import Membership
from services.identity.store import accounts, logins
from services.identity.store.logins import new_secret_token, token_hash
from services.identity.store.rows import (
    SOURCE,
    InvitationRow,
    OrgRow,
    PasswordResetRow,
    UserRow,
    tables,
)
from shared.auth import Role
from shared.contracts import PasswordResetRequested, UserInvited, UserJoined
from shared.errors import Conflict, FieldError, InvalidRequest, NotFound
from shared.ids import new_id
from shared.outbox import publish


def invitation_of(row: InvitationRow) -> Invitation:
    return Invitation(
        id=row.id,
        email=row.email,
        org=row.org,
        role=Role(row.role),
        locale=Locale(row.locale),
        invited_by=row.invited_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        name=row.name,
        lecturer_id=row.lecturer_id,
        closed_as=None if row.closed_as is None else Closed(row.closed_as),
    )


async def _org_to_invite_to(session: AsyncSession, org_id: str) -> OrgRow:
    """The organisation, held (PostgreSQL's FOR UPDATE) until the transaction ends, so two
    invitations to it are made one after the other and the second voids the first."""
    query = select(OrgRow).where(OrgRow.id == org_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        raise InvalidRequest(
            f"no organisation {org_id}",
            code="unknown_org",
            errors=[FieldError("org", "no such organisation")],
        )
    return row


async def create_invitation(
    session: AsyncSession,
    *,
    email: str,
    name: str | None,
    org: str,
    role: Role,
    lecturer_id: str | None,
    locale: Locale,
    invited_by: str,
    web_url: str,
    now: datetime,
) -> Invitation:
    """A new invitation, voiding any open one for the same address, org and role, and its
    `user.invited` event carrying the link in clear."""
    org_row = await _org_to_invite_to(session, org)
    await session.execute(
        update(InvitationRow)
        .where(
            InvitationRow.email == email,
            InvitationRow.org == org,
            InvitationRow.role == role.value,
            InvitationRow.closed_at.is_(None),
        )
        .values(closed_at=now, closed_as=Closed.VOIDED.value)
    )
    token = new_secret_token()
    row = InvitationRow(
        id=new_id(),
        token_hash=token_hash(token),
        email=email,
        name=name,
        org=org,
        role=role.value,
        lecturer_id=lecturer_id,
        locale=locale.value,
        invited_by=invited_by,
        created_at=now,
        expires_at=now + INVITATION_TTL,
    )
    session.add(row)
    await session.flush()
    invitation = invitation_of(row)
    await publish(
        session,
        tables,
        source=SOURCE,
        type="user.invited",
        data=UserInvited(
            invitation_id=invitation.id,
            email=email,
            name=name,
            org=org,
            org_name=org_row.name,
            role=role.value,
            lecturer_id=lecturer_id,
            locale=locale.value,
            invited_by=invited_by,
            expires_at=invitation.expires_at,
            token=token,
            link=invite_link(web_url, token),
        ),
        now=now,
    )
    return invitation


async def list_open_invitations(
    session: AsyncSession, *, org: str | None, now: datetime, after: str | None, limit: int
) -> list[Invitation]:
    query = (
        select(InvitationRow)
        .where(InvitationRow.closed_at.is_(None), InvitationRow.expires_at > now)
        .order_by(InvitationRow.id)
        .limit(limit + 1)
    )
    if org is not None:
        query = query.where(InvitationRow.org == org)
    if after is not None:
        query = query.where(InvitationRow.id > after)
    return [invitation_of(row) for row in await session.scalars(query)]


async def get_invitation(session: AsyncSession, invitation_id: str) -> Invitation:
    row = await session.get(InvitationRow, invitation_id)
    if row is None:
        raise NotFound(f"no invitation {invitation_id}")
    return invitation_of(row)


async def withdraw_invitation(
    session: AsyncSession, invitation: Invitation, *, now: datetime
) -> None:
    """Close an open invitation for good; one withdrawn already stays so, any other closed or
    expired one is 410."""
    if invitation.closed_as is Closed.WITHDRAWN:
        return
    ensure_open(invitation, now)
    closed = await session.execute(
        update(InvitationRow)
        .where(InvitationRow.id == invitation.id, InvitationRow.closed_at.is_(None))
        .values(closed_at=now, closed_as=Closed.WITHDRAWN.value)
        .returning(InvitationRow.id)
    )
    if closed.first() is None:  # accepted or replaced a moment ago
        raise invitation_gone()


async def invitation_by_token(session: AsyncSession, token: str) -> Invitation:
    """The invitation a link names, open or not; 404 for a token that never was one."""
    row = await session.scalar(
        select(InvitationRow).where(InvitationRow.token_hash == token_hash(token))
    )
    if row is None:
        raise NotFound("no such invitation")
    return invitation_of(row)


async def org_name(session: AsyncSession, org_id: str) -> str:
    return (await accounts.get_org(session, org_id)).name


async def accept_invitation(
    session: AsyncSession,
    token: str,
    *,
    name: str | None,
    password_hash: str | None,
    existing_user: str | None,
    now: datetime,
) -> User:
    """Use an invitation: its membership for the account `existing_user` (which keeps its
    password), or for a new account with `password_hash`. The claim comes first and is
    conditional, so a link works once however many requests race with it."""
    claimed = await session.scalar(
        update(InvitationRow)
        .where(
            InvitationRow.token_hash == token_hash(token),
            InvitationRow.closed_at.is_(None),
            InvitationRow.expires_at > now,
        )
        .values(closed_at=now, closed_as=Closed.ACCEPTED.value)
        .returning(InvitationRow.id)
    )
    if claimed is None:
        await invitation_by_token(session, token)  # 404 for an unknown token
        raise invitation_gone()
    invitation = await get_invitation(session, claimed)
    row = await accounts.user_row_by_email(session, invitation.email)
    if row is not None and row.id != existing_user:
        # The address got an account after the page was read: accept again, signed in.
        raise Conflict(
            "an account for this address was made meanwhile: sign in and accept again",
            code="account_exists",
        )
    if row is None:
        if password_hash is None:
            raise InvalidRequest(
                "a new account needs a password",
                errors=[FieldError("password", "required for a new account")],
            )
        row = await accounts.create_user(
            session,
            email=invitation.email,
            name=name or invitation.name or invitation.email.split("@")[0],
            locale=invitation.locale,
            password_hash=password_hash,
            now=now,
        )
    await join(
        session,
        row,
        invitation.membership,
        invitation_id=invitation.id,
        new_account=existing_user is None,
        now=now,
    )
    return await accounts.user_of(session, row)


# Password resets


async def request_reset(session: AsyncSession, *, email: str, web_url: str, now: datetime) -> bool:
    """A reset link for the active account of `email`, and its `password.reset_requested`
    event; nothing for an unknown or disabled address, or one sent too many links lately.
    Whether one was made is for tests and logs, never for the answer."""
    user = await accounts.user_row_by_email(session, email)
    if user is None or user.disabled_at is not None:
        return False
    recent = await session.scalar(
        select(func.count())
        .select_from(PasswordResetRow)
        .where(
            PasswordResetRow.user_id == user.id, PasswordResetRow.created_at > now - RESET_WINDOW
        )
    )
    if not may_send_reset(int(recent or 0)):
        return False
    token = new_secret_token()
    expires_at = now + RESET_TTL
    session.add(
        PasswordResetRow(
            token_hash=token_hash(token), user_id=user.id, created_at=now, expires_at=expires_at
        )
    )
    await publish(
        session,
        tables,
        source=SOURCE,
        type="password.reset_requested",
        data=PasswordResetRequested(
            user_id=user.id,
            email=user.email,
            name=user.name,
            locale=user.locale,
            expires_at=expires_at,
            token=token,
            link=reset_link(web_url, token),
        ),
        now=now,
    )
    return True


async def reset_by_token(
    session: AsyncSession, token: str, *, now: datetime
) -> tuple[UserRow, datetime]:
    """The account a usable reset link is for, and when the link expires: 404 for an unknown
    token, 410 `reset_expired` for a used or expired one, or one of an account disabled since."""
    row = await session.get(PasswordResetRow, token_hash(token))
    if row is None:
        raise NotFound("no such reset link")
    ensure_reset_usable(expires_at=row.expires_at, used_at=row.used_at, now=now)
    user = await accounts.user_row(session, row.user_id)
    if user.disabled_at is not None:
        raise reset_gone()
    return user, row.expires_at


async def use_reset(
    session: AsyncSession, token: str, *, password_hash: str, now: datetime
) -> list[str]:
    """Set the password a reset link was sent for, once; every login of the account ends, and
    its other reset links with it. Returns the revocations to publish."""
    user_id = await session.scalar(
        update(PasswordResetRow)
        .where(
            PasswordResetRow.token_hash == token_hash(token),
            PasswordResetRow.used_at.is_(None),
            PasswordResetRow.expires_at > now,
        )
        .values(used_at=now)
        .returning(PasswordResetRow.user_id)
    )
    if user_id is None:
        await reset_by_token(session, token, now=now)  # 404 or 410, as the case is
        raise reset_gone()
    user = await accounts.user_row(session, user_id)
    if user.disabled_at is not None:
        raise reset_gone()
    user.password_hash = password_hash
    await accounts.end_resets(session, user_id, now=now)
    return await logins.revoke_logins(session, await logins.logins_of(session, user_id), now=now)


async def join(
    session: AsyncSession,
    user: UserRow,
    membership: Membership,
    *,
    invitation_id: str,
    new_account: bool,
    now: datetime,
) -> None:
    """An invitation's membership granted, and `user.joined` said (notify greets the member),
    whether it was accepted by its link or by a first city login."""
    await accounts.add_membership(session, user_id=user.id, membership=membership, now=now)
    await publish(
        session,
        tables,
        source=SOURCE,
        type="user.joined",
        data=UserJoined(
            user_id=user.id,
            email=user.email,
            name=user.name,
            locale=user.locale,
            org=membership.org,
            role=membership.role.value,
            lecturer_id=membership.lecturer_id,
            invitation_id=invitation_id,
            new_account=new_account,
        ),
        now=now,
    )
