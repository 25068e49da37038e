"""Organisations, users and memberships, and the rules for passwords and who may manage whom."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta

from services.identity.domain.tokens import Membership
from shared.auth import PERSON_ROLES, Principal, Role
from shared.errors import FieldError, Forbidden, InvalidRequest, NotFound

MIN_PASSWORD_LENGTH = 10
# Long enough for any passphrase, short enough that hashing it is no denial of service.
MAX_PASSWORD_LENGTH = 256
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s.]{1,63}$")


class OrgKind(StrEnum):
    OFFICE = "office"
    SCHOOL = "school"
    COMMUNITY = "community"
    CENTRE = "centre"
    ENTERPRISE = "enterprise"
    LECTURER_CORPS = "lecturer_corps"


class Locale(StrEnum):
    ZH_CN = "zh-CN"
    EN = "en"


# msgspec matches patterns with `re.search`, whose `$` also matches before a final newline:
# `(?!\n)` keeps "org\n" out.
OrgId = Annotated[
    str, Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(?!\n)$")
]
# A name goes into mail headers and pages: no control characters anywhere (CR and LF above all,
# and the Unicode line separators), and not blank.
Name = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        pattern=r"^(?![\s\S]*[\x00-\x1f\x7f-\x9f\u2028\u2029])\s*\S",
    ),
]
Email = Annotated[str, Meta(min_length=3, max_length=320)]
Password = Annotated[str, Meta(max_length=MAX_PASSWORD_LENGTH)]


class Org(msgspec.Struct, frozen=True):
    id: str
    name: str
    kind: OrgKind


class OrgCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    id: OrgId
    name: Name
    kind: OrgKind


class User(msgspec.Struct, frozen=True):
    id: str
    email: str
    name: str
    locale: Locale
    memberships: list[Membership]
    disabled: bool = False


def normalise_email(email: str) -> str:
    """The one spelling an address is stored and looked up by; refuse what is no address."""
    cleaned = email.strip().lower()
    if not _EMAIL.fullmatch(cleaned):
        raise InvalidRequest(
            "not an e-mail address", errors=[FieldError("email", "not an e-mail address")]
        )
    return cleaned


def check_password(password: str, *, email: str, field: str = "password") -> None:
    """At least 10 characters and not the e-mail address."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(
            f"a password has at least {MIN_PASSWORD_LENGTH} characters",
            code="weak_password",
            errors=[FieldError(field, f"at least {MIN_PASSWORD_LENGTH} characters")],
        )
    if password.strip().lower() == email.strip().lower():
        raise InvalidRequest(
            "the password may not be the e-mail address",
            code="weak_password",
            errors=[FieldError(field, "may not be the e-mail address")],
        )


def default_org_kind(role: Role) -> OrgKind:
    """The kind of organisation a role usually belongs to (for the operator's `users add`)."""
    return {
        Role.OFFICE: OrgKind.OFFICE,
        Role.VENUE_MANAGER: OrgKind.SCHOOL,
        Role.COMMUNITY_MANAGER: OrgKind.COMMUNITY,
        Role.LECTURER: OrgKind.LECTURER_CORPS,
    }.get(role, OrgKind.OFFICE)


def pick_membership(
    memberships: list[Membership], *, org: str | None, role: Role | None
) -> Membership:
    """The membership a sign-in acts in: the one asked for, else the first. One the user does
    not hold is 403."""
    for membership in memberships:
        if (org is None or membership.org == org) and (role is None or membership.role == role):
            return membership
    raise Forbidden("you hold no such membership")


def ensure_can_manage_members(principal: Principal, org: str, role: Role) -> None:
    """Office manages anyone; a venue or community manager its own org and its own role; a
    service token, nobody (a compromised service must not make itself accounts)."""
    if principal.is_office:
        return
    managers = (Role.VENUE_MANAGER, Role.COMMUNITY_MANAGER)
    if principal.role in managers and principal.org == org and principal.role == role:
        return
    raise Forbidden("you may not manage members of that organisation in that role")


def ensure_person_role(role: Role) -> None:
    if role not in PERSON_ROLES:
        raise InvalidRequest(
            "a person holds office, venue_manager, community_manager or lecturer",
            errors=[FieldError("role", "not a role a person may hold")],
        )


def is_disabled(disabled_at: datetime | None) -> bool:
    return disabled_at is not None


MANAGERS = (Role.VENUE_MANAGER, Role.COMMUNITY_MANAGER)


def ensure_office_person(principal: Principal) -> None:
    """Organisations are made, and users disabled, by the office itself: not by a manager, and
    not by a service (a compromised service must not grant itself anything)."""
    if not principal.is_office:
        raise Forbidden("only the office may do this")


def visible_org(principal: Principal, asked: str | None) -> str | None:
    """The organisation a list of members or invitations is limited to: office and services see
    every one (or the one `asked`), a manager only its own; anyone else none."""
    if principal.is_office_or_service:
        return asked
    if principal.role in MANAGERS:
        if asked is not None and asked != principal.org:
            raise Forbidden("you may only see your own organisation")
        return principal.org
    raise Forbidden(f"the {principal.role.value} role may not list members")


def shown_to(principal: Principal, user: User) -> User | None:
    """`user` as `principal` may see it, or None where it may not: oneself and office and
    services see everything; a manager sees the members of its own org, and of their
    memberships only those in its org (a teacher's lecturing elsewhere is not its business)."""
    if principal.sub == user.id or principal.is_office_or_service:
        return user
    if principal.role not in MANAGERS:
        return None
    mine = [m for m in user.memberships if m.org == principal.org]
    return msgspec.structs.replace(user, memberships=mine) if mine else None


def check_membership(role: Role, lecturer_id: str | None) -> None:
    """A lecturer's membership names its lecturer record (its tokens must carry it); no other
    role has one."""
    ensure_person_role(role)
    if role is Role.LECTURER and not lecturer_id:
        raise InvalidRequest(
            "a lecturer's membership names its lecturer record",
            errors=[FieldError("lecturer_id", "required for the lecturer role")],
        )
    if role is not Role.LECTURER and lecturer_id:
        raise InvalidRequest(
            "only a lecturer's membership names a lecturer record",
            errors=[FieldError("lecturer_id", "only for the lecturer role")],
        )


def require_current_password(current: str | None) -> str:
    """A new password is set only by one who knows the current one (a stolen access token must
    not take the account over); one who forgot it asks for a reset."""
    if not current:
        raise InvalidRequest(
            "changing the password needs the current one",
            code="current_password_required",
            errors=[FieldError("current_password", "required to change the password")],
        )
    return current


def wrong_current_password() -> InvalidRequest:
    return InvalidRequest(
        "the current password is wrong",
        code="wrong_password",
        errors=[FieldError("current_password", "wrong password")],
    )


def memberships_to_end(
    principal: Principal, held: list[Membership], org: str, role: Role | None
) -> list[Membership]:
    """What ending a user's membership in `org` ends: the one in `role`, else every one the
    user holds there (a manager's own role's only). 403 outside the caller's rights, 404 where
    the user holds none of them."""
    if role is None and not principal.is_office:
        role = principal.role
    if role is not None:
        ensure_can_manage_members(principal, org, role)
    ending = [m for m in held if m.org == org and role in (None, m.role)]
    if not ending:
        raise NotFound("no such membership")
    return ending
