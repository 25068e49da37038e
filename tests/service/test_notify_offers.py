"""Offers, reminders and who cancelled, mailed by notify through real parts: the lecturer service
(its API, its worker's matching run, its outbox), a real booking service and registry, a real
identity naming the recipients, and a real SMTP server (aiosmtpd on loopback). Each message is
parsed back with the standard library's `email`, each calendar part with icalendar, and each UID
compared with the one the lecturer's own feed shows."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import icalendar
import msgspec
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from services.booking import store as booking_store
from services.identity.domain.accounts import Locale
from services.lecturers import store as lecturers_store
from services.notify import store as notify_store
from shared.auth import Role
from shared.contracts import OfferChanged
from shared.events import Event, decode
from shared.ical import offer_uid
from shared.ids import new_id
from tests.conftest import Tokens, database_of
from tests.service.conftest import (
    TEST_WEB_URL,
    LecturerWorker,
    MailServer,
    Notify,
    People,
    Town,
    calendar_of,
    text_of,
)
from tests.service.test_lecturers import NEXT_MONTH, ask, lecturer_body, offered
from tests.service.test_notify import booking_event, confirmed

Client = AsyncTestClient  # type: ignore[type-arg]
ORGANIZER = "mailto:no-reply@commonroom.example.org"


# --- helpers -----------------------------------------------------------------------------------


async def outbox(client: Client, service: str, tables: Any) -> list[Event]:
    """The events a service wrote to its outbox, oldest first, as its relay would hand them on."""
    async with database_of(client, service) as database, database.read() as session:
        payloads = await session.scalars(
            select(tables.outbox.c.payload).order_by(tables.outbox.c.seq)
        )
        return [decode(payload) for payload in payloads]


async def offer_events(lecturers: Client, offer_id: str) -> list[Event]:
    return [
        event
        for event in await outbox(lecturers, "lecturers", lecturers_store.tables)
        if event.type.startswith("offer.") and event.data["id"] == offer_id
    ]


async def handed_to_notify(notify: Notify, lecturers: Client, offer_id: str, kind: str) -> Event:
    """The lecturer service's `kind` event of the offer, delivered to notify, and mail sent."""
    (event,) = [e for e in await offer_events(lecturers, offer_id) if e.type == kind]
    assert await notify.deliver(event)
    await notify.send()
    return event


async def feed_event(lecturers: Client, lecturer: dict[str, Any], offer_id: str) -> Any:
    """The VEVENT the lecturer's own feed shows for the offer."""
    feed_url = urlsplit(lecturer["feed_url"])
    response = await lecturers.get(f"{feed_url.path}?{feed_url.query}")
    assert response.status_code == 200, response.text
    calendar = icalendar.Calendar.from_ical(response.content)
    (event,) = [e for e in calendar.walk("VEVENT") if str(e["UID"]) == offer_uid(offer_id)]
    return event


def lecturer_headers(tokens: Tokens, lecturer: dict[str, Any]) -> dict[str, str]:
    return tokens("lecturer", "corps", lecturer_id=lecturer["id"])


async def an_offer(
    lecturers: Client, tokens: Tokens, town: Town, lecturer_worker: LecturerWorker, **record: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A lecturer (with the record fields `record`, an `email` say) offered a lecture for next
    month by a real matching run."""
    venue = await town.venue()
    await town.room(venue)
    made = await lecturers.post(
        "/v1/lecturers", json={**lecturer_body(town.area), **record}, headers=tokens("office")
    )
    assert made.status_code == 201, made.text
    assert (await ask(lecturers, tokens, venue)).status_code == 201
    run = await lecturers.post(
        "/v1/matching/runs", json={"month": NEXT_MONTH}, headers=tokens("office")
    )
    assert run.status_code == 202, run.text
    await lecturer_worker.match(run.json()["run_id"])
    (offer,) = (await lecturers.get("/v1/offers", headers=tokens("office"))).json()["items"]
    return made.json(), offer


def assert_offer_part(
    message: EmailMessage, *, method: str, uid: str, sequence: int, status: str, to: str
) -> None:
    part_method, calendar = calendar_of(message)
    assert part_method == method
    assert calendar["METHOD"] == method
    (event,) = calendar.walk("VEVENT")
    assert str(event["UID"]) == uid
    assert event["SEQUENCE"] == sequence
    assert event["STATUS"] == status
    assert str(event["ORGANIZER"]) == ORGANIZER
    assert str(event["ATTENDEE"]) == f"mailto:{to}"
    # The answer is the links, not a calendar button.
    assert event["ATTENDEE"].params["RSVP"] == "FALSE"
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Asia/Shanghai"]


# --- the lecturer service's events -------------------------------------------------------------


async def test_offer_events_carry_the_version_and_offer_created_its_links_on_the_web_pages(
    lecturers: Client, tokens: Tokens, town: Town, lecturer_worker: LecturerWorker
) -> None:
    lecturer, offer = await an_offer(
        lecturers, tokens, town, lecturer_worker, email="wang@example.org"
    )
    (created,) = await offer_events(lecturers, offer["id"])
    told = msgspec.convert(created.data, OfferChanged, strict=False)
    assert (created.type, told.status, told.version) == ("offer.created", "offered", 0)
    assert told.expires_at == datetime.fromisoformat(offer["expires_at"])
    assert (told.timezone, told.venue_name, told.topic) == ("Asia/Shanghai", "市民学校", "law")
    web = lecturers.app.state["service"].settings.service_url("web")
    assert told.accept_url is not None
    assert told.decline_url is not None
    assert told.accept_url.startswith(f"{web}/offers/links/")
    assert told.decline_url.startswith(f"{web}/offers/links/")
    # The tokens in them are the lecturer service's own: it tells what each link does.
    for url, action in ((told.accept_url, "accept"), (told.decline_url, "decline")):
        token = url.rsplit("/", 1)[1]
        shown = await lecturers.get(
            f"/v1/offer-links/{token}", headers={"Accept": "application/json"}
        )
        assert shown.status_code == 200, shown.text
        assert (shown.json()["action"], shown.json()["offer"]["id"]) == (action, offer["id"])

    accepted = await lecturers.post(
        f"/v1/offers/{offer['id']}/accept", headers=lecturer_headers(tokens, lecturer)
    )
    assert accepted.status_code == 200, accepted.text
    _, moved = await offer_events(lecturers, offer["id"])
    answer = msgspec.convert(moved.data, OfferChanged, strict=False)
    assert (moved.type, answer.status, answer.version) == ("offer.accepted", "accepted", 1)
    assert answer.version == accepted.json()["sequence"]
    assert (answer.accept_url, answer.decline_url) == (None, None)


# --- offers mailed -----------------------------------------------------------------------------


async def test_an_offer_made_then_accepted_is_a_tentative_then_confirmed_request_of_the_feed_s_uid(
    lecturers: Client,
    tokens: Tokens,
    town: Town,
    lecturer_worker: LecturerWorker,
    notify: Notify,
    smtp: MailServer,
    people: People,
) -> None:
    lecturer, offer = await an_offer(lecturers, tokens, town, lecturer_worker)
    _, address = await people.add(
        "corps", Role.LECTURER, Locale.EN, name="Wang", lecturer_id=lecturer["id"]
    )
    created = await handed_to_notify(notify, lecturers, offer["id"], "offer.created")

    (made,) = smtp.messages_to(address)
    assert made["Subject"] == "Lecture offered: law"
    lines = text_of(made).splitlines()
    # The action first: accept, then decline.
    assert lines[0] == f"Accept: {created.data['accept_url']}"
    assert lines[1] == f"Decline: {created.data['decline_url']}"
    assert lines[2].startswith("Please answer by ")
    feed = await feed_event(lecturers, lecturer, offer["id"])
    assert (feed["STATUS"], feed["SEQUENCE"]) == ("TENTATIVE", 0)
    assert_offer_part(
        made, method="REQUEST", uid=str(feed["UID"]), sequence=0, status="TENTATIVE", to=address
    )

    accepted = await lecturers.post(
        f"/v1/offers/{offer['id']}/accept", headers=lecturer_headers(tokens, lecturer)
    )
    assert accepted.status_code == 200, accepted.text
    await handed_to_notify(notify, lecturers, offer["id"], "offer.accepted")
    _, confirmed_mail = smtp.messages_to(address)
    assert confirmed_mail["Subject"] == "Lecture confirmed: law"
    feed = await feed_event(lecturers, lecturer, offer["id"])
    assert (feed["STATUS"], feed["SEQUENCE"]) == ("CONFIRMED", 1)
    assert_offer_part(
        confirmed_mail,
        method="REQUEST",
        uid=str(feed["UID"]),
        sequence=1,
        status="CONFIRMED",
        to=address,
    )
    # The offer's links are single-use news: notify's copy of that message is emptied once sent.
    by_kind = {row.kind: row for row in await notify.deliveries()}
    assert by_kind["offer_made"].message == notify_store.EMPTIED
    assert by_kind["offer_accepted"].status == "sent"


async def test_a_lecturer_without_account_is_mailed_at_the_record_s_address_and_a_decline_cancels(
    lecturers: Client,
    tokens: Tokens,
    town: Town,
    lecturer_worker: LecturerWorker,
    notify: Notify,
    smtp: MailServer,
) -> None:
    record = f"lecturer-{new_id()[:8]}@example.org"
    lecturer, offer = await an_offer(lecturers, tokens, town, lecturer_worker, email=record)
    await handed_to_notify(notify, lecturers, offer["id"], "offer.created")
    declined = await lecturers.post(
        f"/v1/offers/{offer['id']}/decline",
        json={"reason": "出差"},
        headers=lecturer_headers(tokens, lecturer),
    )
    assert declined.status_code == 200, declined.text
    await handed_to_notify(notify, lecturers, offer["id"], "offer.declined")

    made, cancel = smtp.messages_to(record)
    # No account: zh-CN, the default language.
    assert made["Subject"] == "讲课邀约\uff1alaw"
    assert cancel["Subject"] == "已拒绝讲课\uff1alaw"
    uid = offer_uid(offer["id"])
    assert_offer_part(made, method="REQUEST", uid=uid, sequence=0, status="TENTATIVE", to=record)
    feed = await feed_event(lecturers, lecturer, offer["id"])
    assert (str(feed["UID"]), feed["SEQUENCE"], feed["STATUS"]) == (uid, 1, "CANCELLED")
    assert_offer_part(cancel, method="CANCEL", uid=uid, sequence=1, status="CANCELLED", to=record)


async def test_an_expired_and_a_withdrawn_offer_are_cancels_of_their_requests_uid(
    lecturers: Client,
    tokens: Tokens,
    town: Town,
    lecturer_worker: LecturerWorker,
    notify: Notify,
    smtp: MailServer,
    people: People,
) -> None:
    corps, offers = await offered(lecturers, tokens, town, lecturer_worker, ("law", "health"))
    by_lecturer = {offer["lecturer_id"]: offer for offer in offers}
    addresses = {}
    for topic, lecturer in corps.items():
        _, addresses[topic] = await people.add(
            "corps", Role.LECTURER, Locale.EN, lecturer_id=lecturer["id"]
        )
    expiring, withdrawn = by_lecturer[corps["law"]["id"]], by_lecturer[corps["health"]["id"]]
    for offer in (expiring, withdrawn):
        await handed_to_notify(notify, lecturers, offer["id"], "offer.created")

    async with database_of(lecturers, "lecturers") as database, database.write() as session:
        await session.execute(
            update(lecturers_store.OfferRow)
            .where(lecturers_store.OfferRow.id == expiring["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    await lecturer_worker.expire(expiring["id"])
    await handed_to_notify(notify, lecturers, expiring["id"], "offer.expired")
    withdraw = await lecturers.post(
        f"/v1/requests/{withdrawn['request_id']}/cancel",
        headers=tokens("venue_manager", "org-v"),
    )
    assert withdraw.status_code == 200, withdraw.text
    await handed_to_notify(notify, lecturers, withdrawn["id"], "offer.cancelled")

    for topic, offer, subject in (
        ("law", expiring, "Offer expired: law"),
        ("health", withdrawn, "Lecture cancelled: health"),
    ):
        request, cancel = smtp.messages_to(addresses[topic])
        request_uid = str(calendar_of(request)[1].walk("VEVENT")[0]["UID"])
        assert request_uid == offer_uid(offer["id"])
        assert cancel["Subject"] == subject
        assert_offer_part(
            cancel,
            method="CANCEL",
            uid=request_uid,
            sequence=1,
            status="CANCELLED",
            to=addresses[topic],
        )


# --- reminders ---------------------------------------------------------------------------------


async def test_an_accepted_lecture_is_reminded_once_across_two_cron_runs_and_two_workers(
    lecturers: Client,
    tokens: Tokens,
    town: Town,
    lecturer_worker: LecturerWorker,
    notify: Notify,
    smtp: MailServer,
    people: People,
) -> None:
    lecturer, offer = await an_offer(lecturers, tokens, town, lecturer_worker)
    _, address = await people.add("corps", Role.LECTURER, Locale.EN, lecturer_id=lecturer["id"])
    accepted = await lecturers.post(
        f"/v1/offers/{offer['id']}/accept", headers=lecturer_headers(tokens, lecturer)
    )
    assert accepted.status_code == 200, accepted.text
    for kind in ("offer.created", "offer.accepted"):
        await handed_to_notify(notify, lecturers, offer["id"], kind)
    start = datetime.fromisoformat(offer["start"])

    # Two days before: not yet.
    assert await notify.notifier.remind(notify.database, start - timedelta(hours=48)) == 0
    # The day before: a cron run, the next minute's, and two workers at once record it once.
    day_before = start - timedelta(hours=23)
    assert await notify.notifier.remind(notify.database, day_before) == 1
    assert await notify.notifier.remind(notify.database, day_before + timedelta(minutes=1)) == 0
    await asyncio.gather(
        *(notify.notifier.remind(notify.database, day_before + timedelta(minutes=2)) for _ in "ab")
    )
    await notify.send(day_before + timedelta(minutes=2))
    await notify.send(day_before + timedelta(minutes=3))

    reminders = [m for m in smtp.messages_to(address) if m["Subject"] == "Reminder: law"]
    assert len(reminders) == 1
    assert text_of(reminders[0]).startswith("Your lecture is coming up.")
    kinds = [row.kind for row in await notify.deliveries()]
    assert kinds.count("lecture_reminder") == 1


async def test_a_confirmed_booking_is_reminded_once_and_a_cancelled_one_not_at_all(
    notify: Notify, smtp: MailServer, people: People
) -> None:
    booker, address = await people.add("org-c", Role.COMMUNITY_MANAGER, Locale.EN)
    kept, dropped = new_id(), new_id()
    for booking_id in (kept, dropped):
        assert await notify.deliver(confirmed(booker, booking_id=booking_id))
    cancel = booking_event(
        "booking.cancelled", booking_id=dropped, booked_by=booker, status="cancelled", version=3
    )
    assert await notify.deliver(cancel)
    await notify.send()
    smtp.received.clear()

    async with notify.database.read() as session:
        row = await session.get(notify_store.BookingRow, kept)
    assert row is not None
    day_before = row.start_at - timedelta(hours=20)
    for minute in range(2):
        await notify.notifier.remind(notify.database, day_before + timedelta(minutes=minute))
        await notify.send(day_before + timedelta(minutes=minute))
    (reminder,) = smtp.messages_to(address)
    assert reminder["Subject"] == "Reminder: 书法课"
    assert f"{TEST_WEB_URL}/bookings/{kept}" in text_of(reminder).splitlines()[0]


async def test_a_reminder_that_became_moot_is_failed_with_its_reason_not_sent(
    lecturers: Client,
    tokens: Tokens,
    town: Town,
    lecturer_worker: LecturerWorker,
    notify: Notify,
    smtp: MailServer,
    people: People,
) -> None:
    """A nudge recorded 12 hours before the offer expires, then the lecturer answers before the
    mail server took it: the queued nudge is not sent, and says why."""
    lecturer, offer = await an_offer(lecturers, tokens, town, lecturer_worker)
    _, address = await people.add("corps", Role.LECTURER, Locale.EN, lecturer_id=lecturer["id"])
    await handed_to_notify(notify, lecturers, offer["id"], "offer.created")
    expires = datetime.fromisoformat(offer["expires_at"])
    nudge_time = expires - timedelta(hours=11)
    assert await notify.notifier.remind(notify.database, nudge_time) == 1

    accepted = await lecturers.post(
        f"/v1/offers/{offer['id']}/accept", headers=lecturer_headers(tokens, lecturer)
    )
    assert accepted.status_code == 200, accepted.text
    (event,) = [e for e in await offer_events(lecturers, offer["id"]) if e.type == "offer.accepted"]
    assert await notify.deliver(event)
    await notify.send()  # the acceptance's mail, now
    await notify.send(nudge_time)  # the nudge, when it comes due

    subjects = [message["Subject"] for message in smtp.messages_to(address)]
    assert subjects == ["Lecture offered: law", "Lecture confirmed: law"]
    (nudge,) = [row for row in await notify.deliveries() if row.kind == "offer_nudge"]
    assert (nudge.status, nudge.last_error) == ("failed", "moot: it is accepted now")
    # And the next cron run does not plan it again: the offer is no longer unanswered.
    assert await notify.notifier.remind(notify.database, nudge_time + timedelta(minutes=1)) == 0


# --- who cancelled -----------------------------------------------------------------------------


async def test_a_cancel_mail_names_who_cancelled(
    booking: Client, town: Town, tokens: Tokens, notify: Notify, smtp: MailServer, people: People
) -> None:
    """Through the real booking service: a booking by a community manager, cancelled by the
    venue's manager; booking's own `booking.cancelled` event, handed to notify."""
    booker, address = await people.add("org-a", Role.COMMUNITY_MANAGER, Locale.EN)
    room = await town.room(await town.venue())
    day = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    made = await booking.post(
        "/v1/bookings",
        json={
            "resource_ids": [room],
            "start": f"{day}T18:00:00+08:00",
            "end": f"{day}T20:00:00+08:00",
            "purpose": "书法课",
        },
        headers=tokens("community_manager", "org-a", sub=booker),
    )
    assert made.status_code == 201, made.text
    cancelled = await booking.post(
        f"/v1/bookings/{made.json()['id']}/cancel",
        json={"reason": "停电检修"},
        headers=tokens("venue_manager", "org-v", sub="a-manager"),
    )
    assert cancelled.status_code == 200, cancelled.text
    created, ended = await outbox(booking, "booking", booking_store.tables)
    assert (created.type, ended.type) == ("booking.created", "booking.cancelled")
    assert ended.data["actor"] == "venue"
    assert await notify.deliver(ended)
    await notify.send()

    (cancel,) = smtp.messages_to(address)
    assert cancel["Subject"] == "Cancelled: 书法课"
    lines = text_of(cancel).splitlines()
    assert lines[1] == "The venue cancelled it. Reason: 停电检修"
    assert calendar_of(cancel)[0] == "CANCEL"
