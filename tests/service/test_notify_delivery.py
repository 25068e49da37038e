"""Notify's delivery against what real mail servers do, beyond tests/service/test_notify.py: the
server away for a while under a stream of events, a server that takes a login and echoes it in a
refusal, the calendar parts read back with vobject (the second parser the issue names), and a
reader's name with a line break in it. Everything real: aiosmtpd on loopback (started, stopped
and started again on its port), identity in its own process, notify's database on SQLite and
PostgreSQL, and the worker's own sender loop."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

import pytest
import vobject
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from arq import create_pool

from services.identity.domain.accounts import Locale
from services.notify import store
from services.notify.domain.delivery import FIRST_RETRY
from services.notify.mailer import SmtpMailer
from services.notify.worker import create_worker_settings, send_forever
from shared.auth import Role
from shared.events import Event
from shared.ids import new_id
from shared.worker import redis_settings
from tests.conftest import free_port
from tests.service.conftest import MailServer, Notify, People, parsed
from tests.service.test_notify import booking_event, cancelled, confirmed, unique_org

# How long the SMTP server is away under the stream: the issue asks for 30 s (passed so by hand,
# on PostgreSQL, 2026-12-06); 10 s keeps CI short, and the messages that meet it still wait out
# a retry (FIRST_RETRY) before they go.
OUTAGE_SECONDS: Final = 10.0
# The stream: one booking event this often, before, during and after the outage.
EVENT_EVERY_SECONDS: Final = 0.25
STREAM_AROUND_OUTAGE_SECONDS: Final = 2.0
# aiosmtpd's own logger: the test's server, not notify, may log what a client sent it.
SERVER_LOGGER: Final = "mail.log"


# --- a server that goes away ----------------------------------------------------------------------


@dataclass
class StoppableServer:
    """aiosmtpd on one loopback port, stopped (an outage) and started again on the same port."""

    handler: MailServer
    port: int
    controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def stoppable_smtp() -> Iterator[StoppableServer]:
    # A free port chosen first: aiosmtpd connects to itself to start, so it cannot take port 0.
    server = StoppableServer(MailServer(), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def stream(notify: Notify, org: str, bookers: list[str], seconds: float) -> list[Event]:
    """Booking events handed to notify as its queue hands them, one every EVENT_EVERY_SECONDS
    for `seconds`: alternately a pending booking (to the venue's managers) and a confirmation
    (to one of the bookers)."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + seconds
    events: list[Event] = []
    while loop.time() < ends:
        n = len(events)
        event = (
            booking_event("booking.created", owner_org=org)
            if n % 2 == 0
            else confirmed(bookers[n % len(bookers)])
        )
        assert await notify.deliver(event)
        events.append(event)
        await asyncio.sleep(EVENT_EVERY_SECONDS)
    return events


async def all_settled(notify: Notify, expected: int, seconds: float) -> list[store.DeliveryRow]:
    """The deliveries once `expected` of them are sent or failed; the test fails after
    `seconds` with what is still queued."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + seconds
    while True:
        deliveries = await notify.deliveries()
        settled = [d for d in deliveries if d.status != store.QUEUED]
        if len(settled) >= expected:
            return deliveries
        if loop.time() > ends:
            queued = Counter(d.last_error for d in deliveries if d.status == store.QUEUED)
            pytest.fail(f"{len(settled)} of {expected} settled after {seconds:.0f} s: {queued}")
        await asyncio.sleep(0.5)


async def test_a_mail_server_away_under_a_stream_of_events_loses_and_doubles_nothing(
    notify: Notify, people: People, stoppable_smtp: StoppableServer
) -> None:
    org = unique_org()
    _, chinese = await people.add(org, Role.VENUE_MANAGER, Locale.ZH_CN)
    _, english = await people.add(org, Role.VENUE_MANAGER, Locale.EN)
    booked = [await people.add("org-c", Role.COMMUNITY_MANAGER) for _ in range(3)]
    address_of = dict(booked)
    mailer = SmtpMailer(f"smtp://127.0.0.1:{stoppable_smtp.port}")
    # The worker's own sender loop, beside the stream, as the worker runs it.
    sender = asyncio.create_task(send_forever(notify.database, mailer, notify.settings.mail_from))
    try:
        streaming = asyncio.create_task(
            stream(
                notify,
                org,
                list(address_of),
                OUTAGE_SECONDS + 2 * STREAM_AROUND_OUTAGE_SECONDS,
            )
        )
        await asyncio.sleep(STREAM_AROUND_OUTAGE_SECONDS)
        await asyncio.to_thread(stoppable_smtp.stop)
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(stoppable_smtp.start)
        events = await streaming
        # The queue hands every event over again (a worker restarted, a job retried).
        for event in events:
            assert not await notify.deliver(event)
        expected = {
            (event.id, address)
            for event in events
            for address in (
                (chinese, english)
                if event.type == "booking.created"
                else (address_of[event.data["booked_by"]],)
            )
        }
        # Messages that met the outage wait for their retry (FIRST_RETRY, doubling) after it.
        deliveries = await all_settled(
            notify, len(expected), OUTAGE_SECONDS * 2 + FIRST_RETRY.total_seconds() * 4
        )
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)

    # Recorded once per event and recipient, and each sent.
    assert Counter((d.event_id, d.recipient) for d in deliveries) == dict.fromkeys(expected, 1)
    assert {d.status for d in deliveries} == {store.SENT}
    assert any(d.attempts > 1 for d in deliveries), "no message met the outage"
    # Received once each: by Message-ID, and by the event and recipient it was recorded for.
    recorded = {d.message_id: (d.event_id, d.recipient) for d in deliveries}
    received = [(to, parsed(content)) for to, content in stoppable_smtp.handler.received]
    by_message_id = Counter(str(message["Message-ID"]) for _, message in received)
    assert by_message_id == dict.fromkeys(recorded, 1)
    by_event_and_recipient = Counter(
        recorded[str(message["Message-ID"])] for _, message in received
    )
    assert by_event_and_recipient == dict.fromkeys(expected, 1)
    for to, message in received:
        assert to == [recorded[str(message["Message-ID"])][1]]


# --- credentials ----------------------------------------------------------------------------------


class EchoingServer(MailServer):
    """A server that takes any login and refuses every recipient with a reply that repeats the
    login, as a careless server's error text might."""

    def __init__(self, echoed: str) -> None:
        super().__init__()
        self.echoed = echoed

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: Any,  # noqa: ARG002
        session: Any,  # noqa: ARG002
        envelope: Any,  # noqa: ARG002
        address: str,  # noqa: ARG002
        rcpt_options: Any,  # noqa: ARG002
    ) -> str:
        return f"451 4.7.1 {self.echoed} may not send now"


def any_login(
    server: Any,
    session: Any,
    envelope: Any,
    mechanism: str,
    auth_data: Any,
) -> AuthResult:
    return AuthResult(success=True)


async def test_smtp_credentials_reach_no_log_line_and_no_last_error(
    notify: Notify, people: People, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    user, password = "mailer-login", "s3cret-pw-7"
    handler = EchoingServer(f"{user}:{password}")
    # Login over plain SMTP on loopback: the test's server offers AUTH without TLS.
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        auth_require_tls=False,
        authenticator=any_login,
    )
    controller.start()
    booker, _ = await people.add("org-c", Role.COMMUNITY_MANAGER)
    await notify.deliver(confirmed(booker))
    settings = replace(
        notify.settings, smtp_url=f"smtp://{user}:{password}@127.0.0.1:{controller.port}"
    )
    worker = create_worker_settings(settings)
    redis = await create_pool(redis_settings(redis_url))
    context: dict[str, Any] = {"redis": redis}
    caplog.set_level(logging.DEBUG)
    try:
        # The worker as it starts: it says where mail goes, and its sender loop takes the message.
        await worker["on_startup"](context)
        for _ in range(100):
            (delivery,) = await notify.deliveries()
            if delivery.last_error:
                break
            await asyncio.sleep(0.1)
    finally:
        await worker["on_shutdown"](context)
        await redis.aclose()
        controller.stop()
    # The login went through, and the refusal came back with it in words.
    assert delivery.status == store.QUEUED
    assert delivery.last_error == "451 4.7.1 ***:*** may not send now"
    # A server that cannot be reached, with the same URL.
    await notify.deliver(confirmed(booker))
    nowhere = SmtpMailer(f"smtp://{user}:{password}@127.0.0.1:{free_port()}", timeout=2)
    await send_once(notify, nowhere)
    errors = [d.last_error or "" for d in await notify.deliveries()]
    ours = "\n".join(
        record.getMessage() + (record.exc_text or "")
        for record in caplog.records
        if record.name != SERVER_LOGGER
    )
    assert "mail is sent through smtp://127.0.0.1:" in ours
    for secret in (user, password):
        encoded = base64.b64encode(secret.encode()).decode()
        for text in (ours, *errors):
            assert secret not in text
            assert encoded not in text
    plain = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    assert plain not in ours


async def send_once(notify: Notify, mailer: SmtpMailer) -> None:
    await replace(notify, mailer=mailer).send(datetime.now(UTC))


# --- the calendar parts, read with vobject --------------------------------------------------------


def vcalendar_of(message: Any) -> tuple[str, Any]:
    """The calendar part's `method` parameter and its calendar, parsed with vobject."""
    parts = [part for part in message.walk() if part.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    return str(parts[0].get_param("method")), vobject.readOne(parts[0].get_content())


async def test_vobject_reads_a_request_and_its_cancel_as_one_event_updated(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    booker, address = await people.add("org-c", Role.COMMUNITY_MANAGER, Locale.EN, name="Ann Li")
    booking_id = new_id()
    await notify.deliver(confirmed(booker, booking_id=booking_id))
    await notify.send()
    await notify.deliver(cancelled(booker, booking_id))
    await notify.send()

    request, cancel = smtp.messages_to(address)
    method, calendar = vcalendar_of(request)
    assert method == calendar.method.value == "REQUEST"
    event = calendar.vevent
    assert event.uid.value == f"{booking_id}@booking.commonroom"
    assert int(event.sequence.value) == 2
    assert event.status.value == "CONFIRMED"
    assert event.organizer.value == "mailto:no-reply@commonroom.example.org"
    (attendee,) = event.attendee_list
    assert attendee.value == f"mailto:{address}"
    assert attendee.params["CN"] == ["Ann Li"]
    assert attendee.params["RSVP"] == ["FALSE"]
    assert event.dtstart.value.tzinfo is not None
    assert calendar.vtimezone.tzid.value == "Asia/Shanghai"

    method, calendar = vcalendar_of(cancel)
    assert method == calendar.method.value == "CANCEL"
    withdrawn = calendar.vevent
    assert withdrawn.uid.value == event.uid.value
    assert int(withdrawn.sequence.value) == 3
    assert withdrawn.status.value == "CANCELLED"
    assert withdrawn.organizer.value == event.organizer.value
    assert [a.value for a in withdrawn.attendee_list] == [f"mailto:{address}"]


async def test_a_line_break_in_a_readers_name_stays_in_the_name(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    """In the To header's display name and the attendee's CN, as one line: never a header or a
    calendar property of its own."""
    booker, address = await people.add(
        "org-c", Role.COMMUNITY_MANAGER, name="李\r\nBcc: x@example.org\nATTENDEE:mailto:y@x.org"
    )
    await notify.deliver(confirmed(booker))
    await notify.send()
    ((recipients, content),) = smtp.received
    assert recipients == [address]
    message = parsed(content)
    assert message["Bcc"] is None
    (to,) = message["To"].addresses
    assert to.addr_spec == address
    assert to.display_name == "李 Bcc: x@example.org ATTENDEE:mailto:y@x.org"
    _, calendar = vcalendar_of(message)
    (attendee,) = calendar.vevent.attendee_list
    assert attendee.value == f"mailto:{address}"
    assert "\n" not in attendee.params["CN"][0]


async def test_a_long_subject_in_chinese_is_folded_and_reads_back_whole(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    booker, _ = await people.add("org-c", Role.COMMUNITY_MANAGER)
    purpose = "社区老年大学书法与国画进阶班第二学期期末作品展览布展及开幕式彩排" * 3
    await notify.deliver(confirmed(booker, purpose=purpose))
    await notify.send()
    ((_, content),) = smtp.received
    head = content.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert head.isascii()
    assert parsed(content)["Subject"] == f"已确认\uff1a{purpose}"
