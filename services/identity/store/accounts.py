"""Organisations, users and memberships."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity.domain.accounts import Locale, Org, OrgCreate, OrgKind, User
from services.identity.domain.tokens import Membership
from services.identity.store import logins
from services.identity.store.rows import (
    SOURCE,
    LoginRow,
    MembershipRow,
    OrgRow,
    PasswordResetRow,
    RefreshTokenRow,
    UserRow,
    tables,
)
from shared.auth import Role
from shared.contracts import UserDisabled
from shared.errors import Conflict, NotFound
from shared.ids import new_id
from shared.outbox import insert_ignoring_duplicates, publish


def org_of(row: OrgRow) -> Org:
    return Org(id=row.id, name=row.name, kind=OrgKind(row.kind))


async def get_org(session: AsyncSession, org_id: str) -> Org:
    row = await session.get(OrgRow, org_id)
    if row is None:
        raise NotFound(f"no organisation {org_id}")
    return org_of(row)


async def ensure_org(
    session: AsyncSession, *, org_id: str, name: str, kind: OrgKind, now: datetime
) -> None:
    """The organisation, made where it does not exist yet (an existing one is left as it is)."""
    await session.execute(
        insert_ignoring_duplicates(session, OrgRow)
        .values(id=org_id, name=name, kind=kind.value, created_at=now)
        .on_conflict_do_nothing()
    )


async def memberships_of(session: AsyncSession, user_id: str) -> list[Membership]:
    rows = await session.scalars(
        select(MembershipRow)
        .where(MembershipRow.user_id == user_id)
        .order_by(MembershipRow.created_at, MembershipRow.org, MembershipRow.role)
    )
    return [
        Membership(org=row.org, role=Role(row.role), lecturer_id=row.lecturer_id) for row in rows
    ]


async def user_of(session: AsyncSession, row: UserRow) -> User:
    return User(
        id=row.id,
        email=row.email,
        name=row.name,
        locale=Locale(row.locale),
        memberships=await memberships_of(session, row.id),
        disabled=row.disabled_at is not None,
    )


async def user_row_by_email(session: AsyncSession, email: str) -> UserRow | None:
    row: UserRow | None = await session.scalar(select(UserRow).where(UserRow.email == email))
    return row


async def user_row(session: AsyncSession, user_id: str) -> UserRow:
    row = await session.get(UserRow, user_id)
    if row is None:
        raise NotFound(f"no user {user_id}")
    return row


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    locale: Locale,
    password_hash: str | None,
    now: datetime,
) -> UserRow:
    row = UserRow(
        id=new_id(),
        email=email,
        name=name,
        locale=locale.value,
        password_hash=password_hash,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def add_membership(
    session: AsyncSession, *, user_id: str, membership: Membership, now: datetime
) -> None:
    """Grant a membership; one the user already holds is left as it is."""
    await session.execute(
        insert_ignoring_duplicates(session, MembershipRow)
        .values(
            user_id=user_id,
            org=membership.org,
            role=membership.role.value,
            lecturer_id=membership.lecturer_id,
            created_at=now,
        )
        .on_conflict_do_nothing()
    )


def _org_exists(org_id: str) -> Conflict:
    return Conflict(f"an organisation {org_id} exists already", code="org_exists")


async def create_org(session: AsyncSession, data: OrgCreate, *, now: datetime) -> Org:
    if await session.get(OrgRow, data.id) is not None:
        raise _org_exists(data.id)
    session.add(OrgRow(id=data.id, name=data.name, kind=data.kind.value, created_at=now))
    try:
        await session.flush()
    except IntegrityError as exc:  # made by a request that committed since the look above
        raise _org_exists(data.id) from exc
    return Org(id=data.id, name=data.name, kind=data.kind)


async def list_orgs(session: AsyncSession, *, after: str | None, limit: int) -> list[Org]:
    query = select(OrgRow).order_by(OrgRow.id).limit(limit + 1)
    if after is not None:
        query = query.where(OrgRow.id > after)
    return [org_of(row) for row in await session.scalars(query)]


async def users_of(session: AsyncSession, rows: Sequence[UserRow]) -> list[User]:
    """Users with their memberships, read in one query for the lot."""
    held: dict[str, list[Membership]] = {row.id: [] for row in rows}
    if held:
        found = await session.scalars(
            select(MembershipRow)
            .where(MembershipRow.user_id.in_(list(held)))
            .order_by(MembershipRow.created_at, MembershipRow.org, MembershipRow.role)
        )
        for membership in found:
            held[membership.user_id].append(
                Membership(
                    org=membership.org,
                    role=Role(membership.role),
                    lecturer_id=membership.lecturer_id,
                )
            )
    return [
        User(
            id=row.id,
            email=row.email,
            name=row.name,
            locale=Locale(row.locale),
            memberships=held[row.id],
            disabled=row.disabled_at is not None,
        )
        for row in rows
    ]


async def get_user(session: AsyncSession, user_id: str) -> User:
    return await user_of(session, await user_row(session, user_id))


async def list_users(
    session: AsyncSession,
    *,
    org: str | None,
    role: Role | None,
    ids: list[str],
    lecturer_ids: list[str],
    after: str | None,
    limit: int,
) -> list[User]:
    """Users in id order; `org`, `role` and `lecturer_ids` filter on one membership they hold."""
    query = select(UserRow).order_by(UserRow.id).limit(limit + 1)
    if ids:
        query = query.where(UserRow.id.in_(ids))
    held = []
    if org is not None:
        held.append(MembershipRow.org == org)
    if role is not None:
        held.append(MembershipRow.role == role.value)
    if lecturer_ids:
        held.append(MembershipRow.lecturer_id.in_(lecturer_ids))
    if held:
        query = query.where(UserRow.id.in_(select(MembershipRow.user_id).where(*held)))
    if after is not None:
        query = query.where(UserRow.id > after)
    return await users_of(session, (await session.scalars(query)).all())


async def memberships_of_email(session: AsyncSession, email: str) -> list[Membership]:
    row = await user_row_by_email(session, email)
    return [] if row is None else await memberships_of(session, row.id)


async def end_resets(session: AsyncSession, user_id: str, *, now: datetime) -> None:
    """Void every reset link of the user still out: its password changed, or it was disabled."""
    await session.execute(
        update(PasswordResetRow)
        .where(PasswordResetRow.user_id == user_id, PasswordResetRow.used_at.is_(None))
        .values(used_at=now)
    )


async def update_user(
    session: AsyncSession,
    user_id: str,
    *,
    name: str | None,
    locale: Locale | None,
    password_hash: str | None,
    keep_sid: str,
    now: datetime,
) -> tuple[User, list[str]]:
    """Change a user's own account. A new password ends every login of the user but `keep_sid`
    (the one that changed it) and voids its reset links; returns the revocations to publish."""
    row = await user_row(session, user_id)
    if name is not None:
        row.name = name
    if locale is not None:
        row.locale = locale.value
    revoked: list[str] = []
    if password_hash is not None:
        row.password_hash = password_hash
        others = [sid for sid in await logins.logins_of(session, user_id) if sid != keep_sid]
        revoked = await logins.revoke_logins(session, others, now=now)
        await end_resets(session, user_id, now=now)
    await session.flush()
    return await user_of(session, row), revoked


async def disable_user(
    session: AsyncSession, user_id: str, *, by: str, now: datetime
) -> tuple[User, list[str]]:
    """Disable an account: every login and token of it ends, refresh tokens at once. Disabling
    it again changes nothing and publishes nothing. Returns the revocations to publish."""
    row = await user_row(session, user_id)
    if row.disabled_at is not None:
        return await user_of(session, row), []
    row.disabled_at = now
    revoked = await logins.revoke_user(session, user_id, now=now)
    await end_resets(session, user_id, now=now)
    await publish(
        session,
        tables,
        source=SOURCE,
        type="user.disabled",
        data=UserDisabled(user_id=row.id, email=row.email, disabled_by=by),
        now=now,
    )
    return await user_of(session, row), revoked


async def logins_acting_in(
    session: AsyncSession, user_id: str, memberships: Sequence[Membership]
) -> list[str]:
    """The live logins of a user that have acted in any of `memberships`: a login that acts in
    one now, or did within an access token's life, holds tokens that carry it. (A login that
    switched away long ago is ended too: it signs in again, the safe side.)"""
    if not memberships:
        return []
    acted = or_(
        *(
            (RefreshTokenRow.org == m.org) & (RefreshTokenRow.role == m.role.value)
            for m in memberships
        )
    )
    sids = await session.scalars(
        select(RefreshTokenRow.sid)
        .join(LoginRow, LoginRow.sid == RefreshTokenRow.sid)
        .where(RefreshTokenRow.user_id == user_id, LoginRow.revoked_at.is_(None), acted)
        .distinct()
    )
    return list(sids)


async def end_memberships(
    session: AsyncSession, user_id: str, memberships: Sequence[Membership], *, now: datetime
) -> list[str]:
    """End memberships and the logins acting in them; returns the revocations to publish."""
    sids = await logins_acting_in(session, user_id, memberships)
    for membership in memberships:
        await session.execute(
            delete(MembershipRow).where(
                MembershipRow.user_id == user_id,
                MembershipRow.org == membership.org,
                MembershipRow.role == membership.role.value,
            )
        )
    return await logins.revoke_logins(session, sids, now=now)
