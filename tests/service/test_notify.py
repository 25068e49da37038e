"""Notify against real parts: its own database (SQLite and PostgreSQL), a real identity process
that names the recipients, and a real SMTP server (aiosmtpd on loopback) that answers 250, 451
or 550 as a test asks. Every message is parsed back with the standard library's `email`, and
every calendar part with icalendar."""

from __future__ import annotations

import asyncio
import stat
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import icalendar
import msgspec
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from services.identity.domain.accounts import Locale
from services.identity.store import tables as identity_tables
from services.notify import store
from services.notify.app import create_app
from services.notify.mailer import FolderMailer, SmtpMailer
from services.notify.worker import send_due
from shared.auth import Role
from shared.contracts import BookingChanged
from shared.db import connect
from shared.events import Event, decode
from shared.ids import new_id
from tests.conftest import Tokens, free_port
from tests.service.conftest import MailServer, Notify, People, parsed

SHANGHAI = ZoneInfo("Asia/Shanghai")
WEB = "https://web.commonroom.test"


# --- events and messages -----------------------------------------------------------------------


def booking_event(
    event_type: str,
    *,
    booking_id: str | None = None,
    owner_org: str = "org-v",
    booked_by: str = "",
    status: str = "pending",
    purpose: str = "书法课",
    version: int = 1,
    hold: bool = False,
    start: datetime | None = None,
) -> Event:
    start = start or (datetime.now(SHANGHAI) + timedelta(days=3)).replace(
        hour=18, minute=0, second=0, microsecond=0
    )
    data = BookingChanged(
        id=booking_id or new_id(),
        venue_id=new_id(),
        resource_ids=[new_id()],
        start=start,
        end=start + timedelta(hours=2),
        status=status,
        org="org-c",
        owner_org=owner_org,
        booked_by=booked_by,
        hold=hold,
        purpose=purpose,
        version=version,
        timezone="Asia/Shanghai",
    )
    return Event(
        id=new_id(),
        type=event_type,
        source="booking",
        occurred_at=datetime.now(UTC),
        data=msgspec.to_builtins(data),
    )


def confirmed(booker: str, **fields: Any) -> Event:
    """`booking.confirmed` of a booking `booker` made (version 2: made, then approved)."""
    return booking_event(
        "booking.confirmed", booked_by=booker, status="confirmed", **{"version": 2, **fields}
    )


def cancelled(booker: str, booking_id: str, version: int = 3) -> Event:
    return booking_event(
        "booking.cancelled",
        booking_id=booking_id,
        booked_by=booker,
        status="cancelled",
        version=version,
    )


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def calendar_of(message: EmailMessage) -> tuple[str, icalendar.Calendar]:
    """The calendar part's `method` parameter and its calendar, parsed with icalendar."""
    parts = [part for part in message.walk() if part.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    part = parts[0]
    return str(part.get_param("method")), icalendar.Calendar.from_ical(part.get_content())


def unique_org() -> str:
    return f"org-v-{uuid.uuid4().hex[:8]}"


# --- what is sent ------------------------------------------------------------------------------


async def test_a_pending_booking_mails_each_venue_manager_in_their_own_language(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    org = unique_org()
    _, chinese = await people.add(org, Role.VENUE_MANAGER, Locale.ZH_CN)
    _, english = await people.add(org, Role.VENUE_MANAGER, Locale.EN)
    await people.add(org, Role.COMMUNITY_MANAGER)  # not a manager of the venue: not told

    assert await notify.deliver(booking_event("booking.created", owner_org=org))
    assert await notify.send() == 2

    assert len(smtp.received) == 2
    (zh,) = smtp.messages_to(chinese)
    (en,) = smtp.messages_to(english)
    assert zh["Subject"] == "待审批\uff1a书法课"  # a full-width colon, as Chinese writes it
    assert en["Subject"] == "To approve: 书法课"
    assert zh["Content-Language"] == "zh-CN"
    assert en["Content-Language"] == "en"
    zh_text, en_text = text_of(zh), text_of(en)
    # The action first: the approval page's link is on the first line.
    assert f"{WEB}/approvals" in zh_text.splitlines()[0]
    assert f"{WEB}/approvals" in en_text.splitlines()[0]
    # The date in the venue's zone and the reader's words: no English weekday in Chinese.
    assert "18:00" in zh_text
    assert "日周" in zh_text
    assert not any(day in zh_text for day in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
    assert "18:00" in en_text
    assert any(day in en_text for day in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
    html = zh.get_body(("html",))
    assert html is not None
    assert f'href="{WEB}/approvals"' in html.get_content()  # type: ignore[attr-defined]


async def test_a_hold_is_not_mailed_as_a_request(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    org = unique_org()
    await people.add(org, Role.VENUE_MANAGER)
    assert await notify.deliver(booking_event("booking.created", owner_org=org, hold=True))
    assert await notify.send() == 0
    assert smtp.received == []


async def test_a_closure_over_a_booking_tells_its_booker_and_the_venue_s_managers_once(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    org = unique_org()
    _, manager = await people.add(org, Role.VENUE_MANAGER, Locale.EN)
    booker, address = await people.add("org-c", Role.COMMUNITY_MANAGER)
    await notify.deliver(
        booking_event(
            "booking.outside_opening_hours",
            owner_org=org,
            booked_by=booker,
            status="confirmed",
            version=3,
        )
    )
    assert await notify.send() == 2
    (to_manager,) = smtp.messages_to(manager)
    (to_booker,) = smtp.messages_to(address)
    assert to_manager["Subject"] == "Closed at the booked time: 书法课"
    assert to_booker["Subject"].startswith("预约时段场地关闭")
    # No calendar part: the booking still stands until someone cancels it.
    assert not [p for p in to_booker.walk() if p.get_content_type() == "text/calendar"]


async def test_confirmed_then_cancelled_is_a_request_then_a_cancel_of_the_same_uid(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    booker, address = await people.add("org-c", Role.COMMUNITY_MANAGER, name="王老师")
    booking_id = new_id()
    await notify.deliver(confirmed(booker, booking_id=booking_id))
    await notify.send()
    await notify.deliver(cancelled(booker, booking_id))
    await notify.send()

    request, cancel = smtp.messages_to(address)
    method, calendar = calendar_of(request)
    assert method == "REQUEST"
    assert calendar["METHOD"] == "REQUEST"
    (event,) = calendar.walk("VEVENT")
    assert event["UID"] == f"{booking_id}@booking.commonroom"
    assert event["SEQUENCE"] == 2
    assert event["STATUS"] == "CONFIRMED"
    assert str(event["ORGANIZER"]) == "mailto:no-reply@commonroom.example.org"
    assert str(event["ATTENDEE"]) == f"mailto:{address}"
    assert event["ATTENDEE"].params["RSVP"] == "FALSE"
    assert event["DTSTART"].dt.tzinfo is not None
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Asia/Shanghai"]

    method, calendar = calendar_of(cancel)
    assert method == "CANCEL"
    assert calendar["METHOD"] == "CANCEL"
    (withdrawn,) = calendar.walk("VEVENT")
    assert withdrawn["UID"] == event["UID"]
    assert withdrawn["SEQUENCE"] == 3
    assert withdrawn["STATUS"] == "CANCELLED"
    assert request["Message-ID"] != cancel["Message-ID"]


async def test_a_redelivered_event_sends_nothing_new(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    booker, address = await people.add("org-c", Role.COMMUNITY_MANAGER)
    event = booking_event("booking.rejected", booked_by=booker, status="rejected", version=2)
    assert await notify.deliver(event)
    await notify.send()
    assert not await notify.deliver(event)  # the queue hands it over again
    # Even were its handled mark lost, its deliveries are there: unique on event and recipient.
    async with notify.database.write() as session:
        await session.execute(store.tables.handled_events.delete())
    assert await notify.deliver(event)
    await notify.send()
    assert len(smtp.messages_to(address)) == 1
    assert len(await notify.deliveries()) == 1


async def test_a_resend_after_a_crash_carries_the_same_message_id(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    """A worker killed between the server's acceptance and the record: once its lease is over
    the message goes again, unchanged, so the reader's client can tell it is the same one."""
    booker, address = await people.add("org-c", Role.COMMUNITY_MANAGER)
    await notify.deliver(confirmed(booker))
    now = datetime.now(UTC)
    async with notify.database.write() as session:
        (taken,) = await store.take_due(session, now=now, lease=timedelta(minutes=5), limit=10)
    # The "crashed" sender sent it, and recorded nothing.
    await notify.mailer.send(
        "no-reply@commonroom.example.org", [(taken.id, address, taken.message)]
    )
    assert await notify.send(now) == 0  # leased: nobody else takes it meanwhile
    assert await notify.send(now + timedelta(minutes=6)) == 1
    first, second = smtp.messages_to(address)
    assert first["Message-ID"] == second["Message-ID"]
    (delivery,) = await notify.deliveries()
    assert delivery.status == store.SENT
    assert delivery.attempts == 2


async def test_a_refused_recipient_is_failed_once_and_not_retried(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    booker, address = await people.add("org-c", Role.COMMUNITY_MANAGER)
    smtp.answers[address] = ["550 5.1.1 No such mailbox"]
    await notify.deliver(confirmed(booker))
    assert await notify.send() == 1
    assert await notify.send(datetime.now(UTC) + timedelta(hours=2)) == 0
    (delivery,) = await notify.deliveries()
    assert delivery.status == store.FAILED
    assert delivery.attempts == 1
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("550")
    assert smtp.received == []


async def test_a_451_goes_through_on_a_later_try(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    booker, address = await people.add("org-c", Role.COMMUNITY_MANAGER)
    smtp.answers[address] = ["451 4.3.0 Try again later"]
    await notify.deliver(confirmed(booker))
    now = datetime.now(UTC)
    assert await notify.send(now) == 1
    (delivery,) = await notify.deliveries()
    assert delivery.status == store.QUEUED
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("451")
    assert await notify.send(now) == 0  # not due yet: it backs off
    assert await notify.send(now + timedelta(minutes=1)) == 1
    (delivery,) = await notify.deliveries()
    assert delivery.status == store.SENT
    assert delivery.attempts == 2
    assert len(smtp.messages_to(address)) == 1


async def test_a_retried_request_never_lands_after_its_cancel(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    booker, address = await people.add("org-c", Role.COMMUNITY_MANAGER)
    booking_id = new_id()
    smtp.answers[address] = ["451 4.3.0 Try again later"]
    now = datetime.now(UTC)
    await notify.deliver(confirmed(booker, booking_id=booking_id))
    await notify.send(now)  # the REQUEST meets a 451
    await notify.deliver(cancelled(booker, booking_id))
    await notify.send()  # the CANCEL goes at once
    await notify.send(now + timedelta(hours=1))  # the REQUEST's retry comes due
    (only,) = smtp.messages_to(address)
    assert calendar_of(only)[0] == "CANCEL"
    statuses = {
        row.calendar_sequence: (row.status, row.last_error) for row in await notify.deliveries()
    }
    assert statuses[3] == (store.SENT, None)
    assert statuses[2][0] == store.FAILED
    assert "superseded" in (statuses[2][1] or "")


async def test_a_newline_in_a_purpose_stays_in_the_body_and_adds_no_header(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    booker, address = await people.add(
        "org-c", Role.COMMUNITY_MANAGER, name="李\r\nBcc: x@example.org"
    )
    purpose = "瑜伽\r\nBcc: evil@example.org\r\nX-Injected: yes"
    await notify.deliver(confirmed(booker, purpose=purpose))
    await notify.send()
    ((recipients, content),) = smtp.received
    assert recipients == [address]
    message = parsed(content)
    assert message["Bcc"] is None
    assert message["X-Injected"] is None
    assert "\n" not in str(message["Subject"])
    assert "Bcc: evil@example.org" in text_of(message)
    (event,) = calendar_of(message)[1].walk("VEVENT")
    assert str(event["SUMMARY"]) == "瑜伽\nBcc: evil@example.org\nX-Injected: yes"


async def test_a_message_not_through_within_a_day_is_failed(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    booker, address = await people.add("org-c", Role.COMMUNITY_MANAGER)
    smtp.answers[address] = ["451 4.3.0 Try again later"] * 100
    start = datetime.now(SHANGHAI) + timedelta(days=30)
    await notify.deliver(confirmed(booker, start=start))
    now = datetime.now(UTC)
    await notify.send(now)
    assert await notify.send(now + timedelta(days=1, minutes=1)) == 1
    (delivery,) = await notify.deliveries()
    assert delivery.status == store.FAILED
    assert delivery.attempts == 2
    assert smtp.received == []


async def test_smtp_credentials_never_reach_last_error(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    booker, _ = await people.add("org-c", Role.COMMUNITY_MANAGER)
    await notify.deliver(confirmed(booker))
    nowhere = SmtpMailer(f"smtp://mailer:s3cret-pw@127.0.0.1:{free_port()}", timeout=2)
    await send_due(
        notify.database, nowhere, mail_from=notify.settings.mail_from, now=datetime.now(UTC)
    )
    (delivery,) = await notify.deliveries()
    assert delivery.status == store.QUEUED
    assert delivery.last_error
    assert "s3cret" not in delivery.last_error
    assert "mailer" not in delivery.last_error
    assert "s3cret" not in nowhere.describe()


async def test_without_smtp_each_message_is_an_eml_file_its_owner_alone_reads(
    notify: Notify, people: People, tmp_path: Path
) -> None:
    booker, address = await people.add("org-c", Role.COMMUNITY_MANAGER)
    await notify.deliver(confirmed(booker))
    folder = tmp_path / "mail"
    await send_due(
        notify.database,
        FolderMailer(folder),
        mail_from=notify.settings.mail_from,
        now=datetime.now(UTC),
    )
    (written,) = folder.iterdir()
    assert written.suffix == ".eml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    message = parsed(written.read_bytes())
    assert message["To"].addresses[0].addr_spec == address
    assert calendar_of(message)[0] == "REQUEST"


# --- the delivery log --------------------------------------------------------------------------


async def test_the_delivery_log_shows_what_went_to_whom_to_the_office_alone(
    notify: Notify, smtp: MailServer, people: People, tokens: Tokens
) -> None:
    booker, address = await people.add("org-c", Role.COMMUNITY_MANAGER)
    smtp.answers[address] = ["550 5.1.1 No such mailbox"]
    event = confirmed(booker)
    await notify.deliver(event)
    await notify.send()
    settings = notify.settings.with_service_url("identity", people.url)
    async with AsyncTestClient(app=create_app(settings)) as client:
        office = tokens("office", "city-office")
        response = await client.get("/v1/messages", params={"event_id": event.id}, headers=office)
        assert response.status_code == 200, response.text
        (item,) = response.json()["items"]
        assert item["recipient"] == address
        assert item["status"] == "failed"
        assert item["attempts"] == 1
        assert item["last_error"].startswith("550")
        assert item["subject"]
        assert "sent_at" not in item
        failed = await client.get("/v1/messages", params={"status": "failed"}, headers=office)
        assert [i["id"] for i in failed.json()["items"]] == [item["id"]]
        sent = await client.get("/v1/messages", params={"status": "sent"}, headers=office)
        assert sent.json() == {"items": [], "next_cursor": None}
        mine = await client.get("/v1/messages", headers=tokens("community_manager", "org-c"))
        assert mine.status_code == 403
        assert mine.json()["code"] == "forbidden"
        bad = await client.get("/v1/messages", params={"status": "lost"}, headers=office)
        assert bad.status_code == 400
        assert bad.json()["code"] == "invalid_request"
        anonymous = await client.get("/v1/messages")
        assert anonymous.status_code == 401


async def test_many_messages_go_over_one_connection(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    org = unique_org()
    for _ in range(3):
        await people.add(org, Role.VENUE_MANAGER)
    for _ in range(4):
        await notify.deliver(booking_event("booking.created", owner_org=org))
    assert await notify.send() == 12
    assert len(smtp.received) == 12
    assert len(set(smtp.peers)) == 1


# --- identity's events -------------------------------------------------------------------------


async def identity_event(people: People, event_type: str, email_address: str) -> Event:
    """The event the real identity wrote to its outbox for `email_address`, as its relay would
    hand it to notify's queue (before the relay scrubs its link from the stored row). A reset's
    is written after the answer (a background task): wait a little for it."""
    database = connect(people.settings.database_url("identity"))
    outbox = identity_tables.outbox
    try:
        for _ in range(50):
            async with database.read() as session:
                payloads = (
                    await session.execute(
                        select(outbox.c.payload).where(outbox.c.type == event_type)
                    )
                ).scalars()
                found = [
                    event for event in map(decode, payloads) if event.data["email"] == email_address
                ]
            if found:
                (event,) = found
                return event
            await asyncio.sleep(0.1)
    finally:
        await database.dispose()
    pytest.fail(f"identity wrote no {event_type} for {email_address}")


async def test_an_invitation_mails_the_invitee_its_link_in_its_language(
    notify: Notify, smtp: MailServer, people: People, tokens: Tokens
) -> None:
    org = unique_org()
    await people.add(org, Role.VENUE_MANAGER)  # the organisation exists
    invitee = f"new-{uuid.uuid4().hex[:8]}@example.org"
    async with httpx.AsyncClient(base_url=people.url) as identity:
        response = await identity.post(
            "/v1/invitations",
            json={"email": invitee, "org": org, "role": "venue_manager", "locale": "en"},
            headers=tokens("office", "city-office"),
        )
    assert response.status_code == 201, response.text
    event = await identity_event(people, "user.invited", invitee)

    assert await notify.deliver(event)
    assert await notify.send() == 1
    (message,) = smtp.messages_to(invitee)
    assert message["Subject"] == "You are invited to Commonroom"
    first_line = text_of(message).splitlines()[0]
    assert event.data["link"] in first_line
    assert org in first_line
    assert "7 days" in text_of(message)
    # Sent: notify's copy of the single-use link is gone.
    (delivery,) = await notify.deliveries()
    assert delivery.status == store.SENT
    assert delivery.message == b""


async def test_a_password_reset_mails_the_user_its_link_in_its_language(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    _, address = await people.add("org-c", Role.COMMUNITY_MANAGER, Locale.ZH_CN)
    async with httpx.AsyncClient(base_url=people.url) as identity:
        response = await identity.post("/v1/password-reset", json={"email": address})
    assert response.status_code == 202, response.text
    event = await identity_event(people, "password.reset_requested", address)

    assert await notify.deliver(event)
    assert await notify.send() == 1
    (message,) = smtp.messages_to(address)
    assert message["Subject"] == "重置您的 Commonroom 密码"
    body = text_of(message)
    assert event.data["link"] in body.splitlines()[0]
    assert "30分钟" in body
