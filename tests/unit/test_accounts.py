"""Identity's account rules over plain values: who may see and manage whom, when a mailed link
still works, and what of its event the outbox keeps once relayed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from services.identity.domain.accounts import (
    Locale,
    Name,
    OrgId,
    User,
    check_membership,
    memberships_to_end,
    shown_to,
    visible_org,
)
from services.identity.domain.invitations import (
    Closed,
    Invitation,
    ensure_can_invite,
    ensure_may_accept,
    ensure_open,
    ensure_reset_usable,
    invite_link,
    may_send_reset,
)
from services.identity.domain.tokens import Membership
from shared.auth import Principal, Role
from shared.errors import Forbidden, Gone, InvalidRequest, NotFound, Unauthenticated
from shared.events import Event, decode, encode, scrubbed

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
OFFICE = Principal(sub="o", role=Role.OFFICE, org="city")
SERVICE = Principal(sub="notify", role=Role.SERVICE, org="commonroom")
MANAGER = Principal(sub="m", role=Role.VENUE_MANAGER, org="school-a")
LECTURER = Principal(sub="l", role=Role.LECTURER, org="corps", lecturer_id="l-1")


def invitation(**changes: object) -> Invitation:
    made = Invitation(
        id="i",
        email="a@example.org",
        org="school-a",
        role=Role.VENUE_MANAGER,
        locale=Locale.ZH_CN,
        invited_by="o",
        created_at=NOW,
        expires_at=NOW + timedelta(days=7),
    )
    return msgspec.structs.replace(made, **changes)


def test_an_invitation_works_until_it_is_closed_or_expires() -> None:
    ensure_open(invitation(), NOW)
    for closed in Closed:
        with pytest.raises(Gone) as gone:
            ensure_open(invitation(closed_as=closed), NOW)
        assert gone.value.code == "invitation_expired"
    with pytest.raises(Gone):
        ensure_open(invitation(), NOW + timedelta(days=7))


def test_a_reset_link_works_once_for_thirty_minutes() -> None:
    ensure_reset_usable(expires_at=NOW + timedelta(minutes=30), used_at=None, now=NOW)
    for used_at, now in ((NOW, NOW), (None, NOW + timedelta(minutes=30))):
        with pytest.raises(Gone) as gone:
            ensure_reset_usable(expires_at=NOW + timedelta(minutes=30), used_at=used_at, now=now)
        assert gone.value.code == "reset_expired"
    assert may_send_reset(4)
    assert not may_send_reset(5)


def test_managers_invite_to_their_own_org_and_role_and_services_never() -> None:
    ensure_can_invite(MANAGER, "school-a", Role.VENUE_MANAGER, None)
    ensure_can_invite(OFFICE, "corps", Role.LECTURER, "l-9")
    for principal, org, role in (
        (MANAGER, "school-b", Role.VENUE_MANAGER),
        (MANAGER, "school-a", Role.COMMUNITY_MANAGER),
        (SERVICE, "school-a", Role.VENUE_MANAGER),
        (LECTURER, "corps", Role.VENUE_MANAGER),
    ):
        with pytest.raises(Forbidden):
            ensure_can_invite(principal, org, role, None)


def test_a_lecturer_membership_and_only_it_names_a_lecturer() -> None:
    check_membership(Role.LECTURER, "l-1")
    check_membership(Role.OFFICE, None)
    for role, lecturer_id in (
        (Role.LECTURER, None),
        (Role.OFFICE, "l-1"),
        (Role.SERVICE, None),
    ):
        with pytest.raises(InvalidRequest):
            check_membership(role, lecturer_id)


def test_an_existing_account_accepts_only_as_itself() -> None:
    ensure_may_accept(None, None)
    ensure_may_accept("u-1", Principal(sub="u-1", role=Role.LECTURER, org="c", lecturer_id="l"))
    with pytest.raises(Unauthenticated):
        ensure_may_accept("u-1", None)
    with pytest.raises(Forbidden):
        ensure_may_accept("u-1", MANAGER)


def test_who_sees_which_members() -> None:
    assert visible_org(OFFICE, None) is None
    assert visible_org(SERVICE, "school-b") == "school-b"
    assert visible_org(MANAGER, None) == "school-a"
    with pytest.raises(Forbidden):
        visible_org(MANAGER, "school-b")
    with pytest.raises(Forbidden):
        visible_org(LECTURER, None)

    both = User(
        id="u",
        email="u@example.org",
        name="王芳",
        locale=Locale.ZH_CN,
        memberships=[
            Membership(org="school-a", role=Role.VENUE_MANAGER),
            Membership(org="corps", role=Role.LECTURER, lecturer_id="l-2"),
        ],
    )
    assert shown_to(OFFICE, both) == both
    assert shown_to(MANAGER, both) == msgspec.structs.replace(
        both, memberships=[Membership(org="school-a", role=Role.VENUE_MANAGER)]
    )
    assert shown_to(LECTURER, both) is None
    assert shown_to(Principal(sub="u", role=Role.LECTURER, org="corps", lecturer_id="l-2"), both)


def test_ending_memberships_takes_the_role_asked_or_the_managers_own() -> None:
    held = [
        Membership(org="school-a", role=Role.VENUE_MANAGER),
        Membership(org="school-a", role=Role.COMMUNITY_MANAGER),
        Membership(org="school-b", role=Role.VENUE_MANAGER),
    ]
    assert memberships_to_end(OFFICE, held, "school-a", None) == held[:2]
    assert memberships_to_end(MANAGER, held, "school-a", None) == held[:1]
    with pytest.raises(Forbidden):
        memberships_to_end(MANAGER, held, "school-a", Role.COMMUNITY_MANAGER)
    with pytest.raises(Forbidden):
        memberships_to_end(SERVICE, held, "school-a", None)
    with pytest.raises(NotFound):
        memberships_to_end(OFFICE, held, "school-c", None)


@pytest.mark.parametrize("name", ["a\r\nBcc: x@y.example", "a\n", "\t", "   ", "a\u2028b", ""])
def test_a_name_has_no_line_breaks_or_control_characters(name: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(name, Name)


def test_names_in_any_script_pass_and_org_ids_have_no_trailing_newline() -> None:
    assert msgspec.convert("王芳 Wang Fang", Name) == "王芳 Wang Fang"
    assert msgspec.convert("school-1.a_b", OrgId) == "school-1.a_b"
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert("school-1\n", OrgId)


def test_a_relayed_events_secret_fields_are_scrubbed_and_the_rest_kept() -> None:
    token = "secret-token"
    event = Event(
        id="e",
        type="user.invited",
        source="identity",
        occurred_at=NOW,
        data={"email": "a@example.org", "token": token, "link": invite_link("https://w/", token)},
        request_id="r",
    )
    clean = scrubbed("user.invited", encode(event))
    assert clean is not None
    assert decode(clean) == msgspec.structs.replace(event, data={"email": "a@example.org"})
    assert token.encode() not in clean
    assert scrubbed("booking.created", encode(event)) is None
