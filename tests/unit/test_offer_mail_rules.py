"""The pure rules behind offer mail, reminders and who cancelled: plain values, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.booking.domain.bookings import actor_of
from services.lecturers.domain.links import answer_links, link_key, verify, web_link_pages
from services.notify.domain.delivery import why_not_send
from services.notify.domain.plans import (
    lecturer_reader,
    offer_letter,
    reminder_key,
    wants_nudge,
)
from shared.auth import Principal, Role
from shared.contracts import Membership, OfferChanged, Person
from shared.ical import offer_uid
from tests.conftest import TEST_LINK_SECRET

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 6, 10, tzinfo=UTC)


def an_offer(status: str = "offered", version: int = 0, **more: object) -> OfferChanged:
    start = datetime(2027, 1, 12, 18, tzinfo=SHANGHAI)
    fields: dict[str, object] = {
        "id": "o-1",
        "request_id": "r-1",
        "lecturer_id": "l-1",
        "venue_id": "v-1",
        "booking_id": "b-1",
        "start": start,
        "end": start + timedelta(minutes=90),
        "status": status,
        "expires_at": NOW + timedelta(hours=48),
        "created_at": NOW,
        "version": version,
        "timezone": "Asia/Shanghai",
        "topic": "law",
        "lecturer_email": "record@example.org",
        "lecturer_name": "王老师",
    }
    return OfferChanged(**{**fields, **more})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("principal", "actor"),
    [
        (Principal(sub="booker", role=Role.COMMUNITY_MANAGER, org="org-a"), "booker"),
        (Principal(sub="colleague", role=Role.COMMUNITY_MANAGER, org="org-a"), "booker"),
        (Principal(sub="manager", role=Role.VENUE_MANAGER, org="org-v"), "venue"),
        (Principal(sub="clerk", role=Role.OFFICE, org="office"), "office"),
        (Principal(sub="lecturers", role=Role.SERVICE, org="office"), "service"),
    ],
)
def test_a_change_names_its_actor(principal: Principal, actor: str) -> None:
    assert actor_of(principal, "booker", "org-v") == actor


def test_a_message_about_what_moved_on_is_moot_and_says_so() -> None:
    assert (
        why_not_send(
            now=NOW,
            created_at=NOW,
            moot_at=None,
            calendar_sequence=None,
            last_sent_sequence=None,
            while_status="offered",
            status_now="accepted",
        )
        == "moot: it is accepted now"
    )
    assert (
        why_not_send(
            now=NOW,
            created_at=NOW,
            moot_at=None,
            calendar_sequence=None,
            last_sent_sequence=None,
            while_status="offered",
            status_now="offered",
        )
        is None
    )


def test_a_reminder_s_key_is_the_same_wherever_it_is_planned() -> None:
    at = datetime(2027, 1, 12, 18, tzinfo=SHANGHAI)
    key = reminder_key("lecture", "o-1", at)
    assert key == reminder_key("lecture", "o-1", at.astimezone(UTC))
    assert key != reminder_key("booking", "o-1", at)
    assert key != reminder_key("lecture", "o-1", at + timedelta(hours=1))
    assert len(key) == 36


def test_an_offer_made_with_little_time_to_answer_gets_no_nudge() -> None:
    assert wants_nudge(an_offer())
    assert not wants_nudge(an_offer(expires_at=NOW + timedelta(hours=10)))


def test_the_lecturer_is_written_at_its_account_else_at_its_record() -> None:
    account = Person(
        id="u-1",
        email="account@example.org",
        locale="en",
        memberships=[Membership(org="corps", role="lecturer", lecturer_id="l-1")],
    )
    assert lecturer_reader(an_offer(), {"l-1": account}) == account
    from_record = lecturer_reader(an_offer(), {})
    assert from_record is not None
    assert (from_record.email, from_record.name, from_record.locale) == (
        "record@example.org",
        "王老师",
        "zh-CN",
    )
    assert lecturer_reader(an_offer(lecturer_email=None), {}) is None
    disabled = Person(id="u-2", email="gone@example.org", disabled=True)
    assert lecturer_reader(an_offer(), {"l-1": disabled}) is None


@pytest.mark.parametrize(
    ("event_type", "status", "method", "part_status"),
    [
        ("offer.created", "offered", "REQUEST", "TENTATIVE"),
        ("offer.accepted", "accepted", "REQUEST", "CONFIRMED"),
        ("offer.declined", "declined", "CANCEL", "CANCELLED"),
        ("offer.expired", "expired", "CANCEL", "CANCELLED"),
        ("offer.cancelled", "cancelled", "CANCEL", "CANCELLED"),
    ],
)
def test_each_offer_event_is_a_part_of_the_feed_s_uid_at_the_offer_s_version(
    event_type: str, status: str, method: str, part_status: str
) -> None:
    to = Person(id="u-1", email="a@example.org")
    letter = offer_letter(event_type, an_offer(status, version=3), to, "https://web.test")
    assert letter.calendar is not None
    assert (letter.calendar.method, letter.calendar.status) == (method, part_status)
    assert (letter.calendar.uid, letter.calendar.sequence) == (offer_uid("o-1"), 3)
    assert not letter.calendar.rsvp
    # Only the offer's own links are secret, and moot once it is answered.
    made = event_type == "offer.created"
    assert letter.secret is made
    assert letter.while_status == ("offered" if made else None)


def test_the_one_click_links_are_signed_tokens_on_the_web_pages() -> None:
    key = link_key(TEST_LINK_SECRET)
    links = answer_links(key, web_link_pages("https://web.test"), "o-1", 2, NOW)
    assert set(links) == {"accept_url", "decline_url"}
    for name, answer in (("accept_url", "accept"), ("decline_url", "decline")):
        base, _, token = links[name].rpartition("/")
        assert base == "https://web.test/offers/links"
        claim = verify(key, token)
        assert (claim.offer_id, claim.answer, claim.sequence) == ("o-1", answer, 2)
