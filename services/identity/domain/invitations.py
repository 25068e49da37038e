"""Invitations and password resets: the single-use links identity mails, and when they work.

Both are bearer secrets in a URL: stored hashed, usable once, for a short while. An invitation is
closed for good when it is accepted, withdrawn, or voided by a newer one for the same address,
org and role; a reset when it is used or another reset of the same account is.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

import msgspec

from services.identity.domain.accounts import (
    Locale,
    check_membership,
    ensure_can_manage_members,
)
from services.identity.domain.tokens import Membership
from shared.auth import Principal, Role
from shared.errors import Conflict, Forbidden, Gone, Unauthenticated

INVITATION_TTL = timedelta(days=7)
RESET_TTL = timedelta(minutes=30)
# The reset form takes any address: at most this many mails an account in a window, so it
# cannot be used to flood someone's inbox.
MAX_RESETS_PER_WINDOW = 5
RESET_WINDOW = timedelta(hours=1)


class Closed(StrEnum):
    ACCEPTED = "accepted"
    WITHDRAWN = "withdrawn"
    # A newer invitation for the same e-mail, org and role replaced it.
    VOIDED = "voided"


class Invitation(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    email: str
    org: str
    role: Role
    locale: Locale
    invited_by: str
    created_at: datetime
    expires_at: datetime
    name: str | None = None
    lecturer_id: str | None = None
    closed_as: Closed | None = None

    @property
    def membership(self) -> Membership:
        return Membership(org=self.org, role=self.role, lecturer_id=self.lecturer_id)


def is_open(invitation: Invitation, now: datetime) -> bool:
    return invitation.closed_as is None and now < invitation.expires_at


def invitation_gone() -> Gone:
    return Gone(
        "this invitation has been used, withdrawn or replaced, or has expired",
        code="invitation_expired",
    )


def ensure_open(invitation: Invitation, now: datetime) -> None:
    if not is_open(invitation, now):
        raise invitation_gone()


def ensure_can_invite(principal: Principal, org: str, role: Role, lecturer_id: str | None) -> None:
    """Office invites anyone; a venue or community manager to its own org in its own role; a
    service nobody."""
    check_membership(role, lecturer_id)
    ensure_can_manage_members(principal, org, role)


def ensure_can_withdraw(principal: Principal, invitation: Invitation) -> None:
    ensure_can_manage_members(principal, invitation.org, invitation.role)


def ensure_not_member(held: list[Membership], org: str, role: Role) -> None:
    if any(m.org == org and m.role == role for m in held):
        raise Conflict("that address already holds this membership", code="already_member")


def ensure_may_accept(existing_user: str | None, caller: Principal | None) -> None:
    """A new account is made by whoever holds the link; an address that already has an
    account accepts only while signed in as it, so a leaked link cannot add a membership to
    somebody else's account behind their back."""
    if existing_user is None:
        return
    if caller is None:
        raise Unauthenticated("this address already has an account: sign in to accept")
    if caller.sub != existing_user:
        raise Forbidden("this invitation is for another account")


def invite_link(web_url: str, token: str) -> str:
    return f"{web_url.rstrip('/')}/invite/{token}"


def reset_link(web_url: str, token: str) -> str:
    return f"{web_url.rstrip('/')}/reset/{token}"


def reset_gone() -> Gone:
    return Gone("this reset link has been used or has expired", code="reset_expired")


def ensure_reset_usable(*, expires_at: datetime, used_at: datetime | None, now: datetime) -> None:
    if used_at is not None or now >= expires_at:
        raise reset_gone()


def may_send_reset(sent_in_window: int) -> bool:
    return sent_in_window < MAX_RESETS_PER_WINDOW
