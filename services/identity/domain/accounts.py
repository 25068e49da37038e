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
from shared.errors import FieldError, Forbidden, InvalidRequest

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


OrgId = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
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
    if principal.is_office_person:
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
