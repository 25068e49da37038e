"""Organisations, users and memberships."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.identity.domain.accounts import Locale, Org, OrgKind, User
from services.identity.domain.tokens import Membership
from services.identity.store.rows import MembershipRow, OrgRow, UserRow
from shared.auth import Role
from shared.errors import NotFound
from shared.ids import new_id
from shared.outbox import insert_ignoring_duplicates


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
