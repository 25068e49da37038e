"""Notify's worker: turns events into recorded deliveries, and sends what is due.

An event's deliveries are rendered and recorded (unique on event and recipient) in the
transaction that marks the event handled, before anything is sent: a redelivered event finds
them and adds nothing. A sender loop then takes due deliveries in batches (a lease keeps other
replicas off them), sends each batch over one connection, and records each outcome. A worker
killed after the server took a message but before the record resends it once the lease is over:
at most one duplicate, with the same Message-ID, since the stored message is sent as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import msgspec
from arq.cron import cron
from sqlalchemy.ext.asyncio import AsyncSession

from services.notify import store
from services.notify.clients import Directory
from services.notify.domain.delivery import next_try, why_not_send
from services.notify.domain.itip import calendar
from services.notify.domain.letters import render
from services.notify.domain.mime import sender, written
from services.notify.domain.plans import (
    NUDGE_BEFORE,
    OFFER_EVENTS,
    Letter,
    booking_audience,
    booking_letters,
    invitation_letter,
    lecturer_reader,
    offer_letter,
    reminder_letter,
    reminders_of,
    reset_letter,
)
from services.notify.mailer import Mailer, mailer_for
from shared.config import Settings
from shared.contracts import (
    BookingChanged,
    OfferChanged,
    PasswordResetRequested,
    Person,
    UserInvited,
)
from shared.db import Database
from shared.events import Event
from shared.ids import new_id
from shared.outbox import EventHandler
from shared.worker import WorkerSettings, worker_settings

_log = logging.getLogger("commonroom.notify")

BOOKING_EVENTS: Final = (
    "booking.created",
    "booking.confirmed",
    "booking.rejected",
    "booking.cancelled",
    "booking.outside_opening_hours",
)
# How long a sender holds the deliveries it took; longer than a batch takes to send.
LEASE: Final = timedelta(minutes=5)
BATCH: Final = 100
IDLE_SECONDS: Final = 0.5


class Notifier:
    """The event handlers, over the identity client made once for the worker's life."""

    def __init__(self, settings: Settings, directory: Directory) -> None:
        self.settings = settings
        self.directory = directory
        self.web_url = settings.service_url("web")

    def handlers(self) -> dict[str, EventHandler]:
        return {
            **dict.fromkeys(BOOKING_EVENTS, self.on_booking),
            **dict.fromkeys(OFFER_EVENTS, self.on_offer),
            "user.invited": self.on_invited,
            "password.reset_requested": self.on_reset_requested,
        }

    async def on_invited(self, session: AsyncSession, event: Event) -> None:
        """The invitee is named by the invitation itself: no one to ask identity about."""
        invited = msgspec.convert(event.data, UserInvited, strict=False)
        await self.record(session, event, [invitation_letter(invited, event.occurred_at)])

    async def on_reset_requested(self, session: AsyncSession, event: Event) -> None:
        reset = msgspec.convert(event.data, PasswordResetRequested, strict=False)
        await self.record(session, event, [reset_letter(reset, event.occurred_at)])

    async def on_booking(self, session: AsyncSession, event: Event) -> None:
        booking = msgspec.convert(event.data, BookingChanged, strict=False)
        await store.remember_booking(session, booking)
        audience = booking_audience(event.type, booking)
        if not audience.anyone:
            return
        managers: list[Person] = []
        if audience.managers:
            managers = await self.directory.members(booking.owner_org, "venue_manager")
        booker = None
        if audience.booker:
            booker = (await self.directory.by_ids([booking.booked_by])).get(booking.booked_by)
        letters = booking_letters(
            event.type, booking, booker=booker, managers=managers, web_url=self.web_url
        )
        await self.record(session, event, letters)

    async def on_offer(self, session: AsyncSession, event: Event) -> None:
        """The lecturer hears of each move of its offer: at its account's address, or, with no
        account, at the lecturer record's."""
        offer = msgspec.convert(event.data, OfferChanged, strict=False)
        await store.remember_lecture(session, offer, event.occurred_at)
        accounts = await self.directory.lecturers([offer.lecturer_id])
        lecturer = lecturer_reader(offer, accounts)
        if lecturer is None:
            return
        await self.record(session, event, [offer_letter(event.type, offer, lecturer, self.web_url)])

    async def remind(self, database: Database, now: datetime) -> int:
        """Record the reminders now due, each once: a confirmed booking's and an accepted
        lecture's `reminder_hours` before it starts, an unanswered offer's `NUDGE_BEFORE` before
        it expires. Read from notify's own record; what is no longer so is not reminded of (and
        a queued reminder that became moot is failed as it is taken). How many it planned: a
        worker racing another plans the same ones, which the second records nothing of."""
        ahead = timedelta(hours=self.settings.reminder_hours)
        async with database.read() as session:
            bookings = [
                row.told()
                for row in await store.bookings_starting(session, after=now, until=now + ahead)
            ]
            lectures = [
                row.told()
                for row in await store.lectures_starting(session, after=now, until=now + ahead)
            ]
            nudges = [
                row.told()
                for row in await store.offers_expiring(session, after=now, until=now + NUDGE_BEFORE)
            ]
            keys = reminders_of(bookings, lectures, nudges)
            done = await store.recorded_events(session, list(keys))
        due = {key: about for key, about in keys.items() if key not in done}
        if not due:
            return 0
        lecturer_ids = [o.lecturer_id for o in due.values() if isinstance(o, OfferChanged)]
        booker_ids = [b.booked_by for b in due.values() if isinstance(b, BookingChanged)]
        accounts = await self.directory.lecturers(lecturer_ids)
        bookers = await self.directory.by_ids(booker_ids)
        recorded = 0
        async with database.write() as session:
            for key, about in due.items():
                letter = reminder_letter(about, accounts, bookers, self.web_url)
                if letter is not None:
                    await self.record_for(session, key, [letter], now)
                    recorded += 1
        return recorded

    async def record(self, session: AsyncSession, event: Event, letters: Sequence[Letter]) -> None:
        await self.record_for(session, event.id, letters, datetime.now(UTC))

    async def record_for(
        self, session: AsyncSession, event_id: str, letters: Sequence[Letter], now: datetime
    ) -> None:
        """Record `letters` under `event_id` (an event's, or a reminder's key): once each."""
        await store.record_deliveries(
            session, event_id, [self.delivery(letter, now) for letter in letters], now
        )

    def delivery(self, letter: Letter, now: datetime) -> store.NewDelivery:
        """The letter rendered in its reader's language, as the message that will be sent."""
        delivery_id = new_id()
        rendered = render(letter.kind, letter.to.locale, letter.values)
        part = letter.calendar
        ics = None
        if part is not None:
            organizer = sender(self.settings.mail_from)
            ics = (part.method, calendar(part, organizer=organizer, attendee=letter.to, now=now))
        message_id, message = written(
            rendered=rendered,
            to=letter.to,
            mail_from=self.settings.mail_from,
            delivery_id=delivery_id,
            now=now,
            calendar=ics,
        )
        return store.NewDelivery(
            id=delivery_id,
            recipient=letter.to.email,
            kind=letter.kind,
            subject=rendered.subject,
            message=message,
            message_id=message_id,
            moot_at=letter.moot_at,
            calendar_uid=part.uid if part else None,
            calendar_sequence=part.sequence if part else None,
            secret=letter.secret,
            about=letter.about,
            while_status=letter.while_status,
        )


async def send_due(
    database: Database, mailer: Mailer, *, mail_from: str, now: datetime, batch: int = BATCH
) -> int:
    """Send one batch of due deliveries and record how each went; how many were taken."""
    async with database.write() as session:
        due = await store.take_due(session, now=now, lease=LEASE, limit=batch)
    if not due:
        return 0
    newest: dict[tuple[str, str], int] = {}
    for item in due:
        if item.calendar_uid is not None and item.calendar_sequence is not None:
            key = (item.calendar_uid, item.recipient)
            newest[key] = max(newest.get(key, item.calendar_sequence), item.calendar_sequence)
    going: list[store.Due] = []
    dropped: list[tuple[store.Due, str]] = []
    for item in due:
        # Within a batch, too, only a UID's newest part goes.
        last = item.last_sent_sequence
        if item.calendar_uid is not None:
            batch_newest = newest[(item.calendar_uid, item.recipient)]
            last = batch_newest if last is None else max(last, batch_newest)
        reason = why_not_send(
            now=now,
            created_at=item.created_at,
            moot_at=item.moot_at,
            calendar_sequence=item.calendar_sequence,
            last_sent_sequence=last,
            while_status=item.while_status,
            status_now=item.status_now,
        )
        if reason is None:
            going.append(item)
        else:
            dropped.append((item, reason))
    outcomes = (
        await mailer.send(sender(mail_from)[1], [(d.id, d.recipient, d.message) for d in going])
        if going
        else []
    )
    results = list(zip(going, outcomes, strict=True))
    async with database.write() as session:
        for item, reason in dropped:
            await store.mark_failed(session, item.id, reason)
        await store.mark_sent(
            session, [item for item, outcome in results if outcome.kind == "sent"], now
        )
        for item, outcome in results:
            if outcome.kind == "permanent":
                await store.mark_failed(session, item.id, outcome.error)
            elif outcome.kind == "temporary":
                await store.retry_later(
                    session, item.id, outcome.error, next_try(now, item.attempts)
                )
    return len(due)


async def send_forever(database: Database, mailer: Mailer, mail_from: str) -> None:
    """The sender loop the worker runs beside its jobs; it outlives database outages."""
    while True:
        try:
            taken = await send_due(database, mailer, mail_from=mail_from, now=datetime.now(UTC))
        except Exception:  # the sender must outlive database outages
            _log.warning("sending mail failed; retrying", exc_info=True)
            await asyncio.sleep(2.0)
            continue
        if not taken:
            await asyncio.sleep(IDLE_SECONDS)


def create_worker_settings(settings: Settings) -> WorkerSettings:
    directory = Directory(settings)
    notifier = Notifier(settings, directory)
    mailer = mailer_for(settings.smtp_url, settings.var_dir)

    async def startup(ctx: dict[str, Any]) -> None:
        _log.info("mail is %s", mailer.describe())
        ctx["sender"] = asyncio.create_task(
            send_forever(ctx["database"], mailer, settings.mail_from)
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        task: asyncio.Task[None] | None = ctx.get("sender")
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await directory.aclose()

    async def remind(ctx: dict[str, Any]) -> None:
        await notifier.remind(ctx["database"], datetime.now(UTC))

    return worker_settings(
        "notify",
        settings,
        tables=store.tables,
        handlers=notifier.handlers(),
        # Every minute: a reminder is recorded once however many runs (or workers) see it due.
        cron_jobs=[cron(remind, second={0}, run_at_startup=True)],
        startup=startup,
        shutdown=shutdown,
    )
