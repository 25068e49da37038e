"""Notify's own database: the deliveries (its log and its queue of mail), the last calendar part
sent for each UID and recipient, and its record of the bookings and lectures it told people about
(what its reminders read, and what tells a queued message it has become moot).

Queries take a session and return plain values; the rules live in `services.notify.domain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import cast

import msgspec
from sqlalchemy import (
    Boolean,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.contracts import BookingChanged, OfferChanged
from shared.db import UTCDateTime, new_metadata
from shared.ical import zone_of
from shared.outbox import insert_ignoring_duplicates, outbox_tables


class Base(DeclarativeBase):
    metadata = new_metadata()


tables = outbox_tables(Base.metadata)

QUEUED = "queued"
SENT = "sent"
FAILED = "failed"


class DeliveryRow(Base):
    """One message to one recipient for one event: recorded before it is sent, so a redelivered
    event finds it and sends nothing new. `message` is the whole rendered message, Message-ID
    included, so a retry (or a resend after a crash) is the same message."""

    __tablename__ = "deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36))
    recipient: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(500))
    message: Mapped[bytes] = mapped_column(LargeBinary)
    message_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When it may next be tried; a sender that takes it moves this past its lease, so a sender
    # killed mid-send leaves it to be taken again once the lease is over.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # From when sending it is pointless (the booking began, the offer expired).
    moot_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    calendar_uid: Mapped[str | None] = mapped_column(String(200), nullable=True)
    calendar_sequence: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The message holds a single-use link: emptied once sent or given up.
    secret: Mapped[bool] = mapped_column(Boolean, default=False)
    # The booking or offer it tells of, and the status that must still be its own for the
    # message to matter (an offer's links while it is `offered`, a reminder while `confirmed`).
    about: Mapped[str | None] = mapped_column(String(36), nullable=True)
    while_status: Mapped[str | None] = mapped_column(String(20), nullable=True)

    __table_args__ = (
        UniqueConstraint("event_id", "recipient"),
        Index("ix_deliveries_due", "status", "due_at"),
        Index("ix_deliveries_recipient", "recipient"),
    )


DELIVERIES = cast(Table, DeliveryRow.__table__)


class CalendarSentRow(Base):
    """The SEQUENCE of the last calendar part sent for a UID to a recipient: nothing older goes
    after it (a retried REQUEST must not land after its CANCEL)."""

    __tablename__ = "calendar_sent"

    uid: Mapped[str] = mapped_column(String(200), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320), primary_key=True)
    sequence: Mapped[int] = mapped_column(Integer)


class BookingRow(Base):
    """A booking as its events last told it, newest version kept: what reminders read."""

    __tablename__ = "bookings"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    venue_id: Mapped[str] = mapped_column(String(36))
    owner_org: Mapped[str] = mapped_column(String(100))
    org: Mapped[str] = mapped_column(String(100))
    booked_by: Mapped[str] = mapped_column(String(200))
    hold: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)

    def told(self) -> BookingChanged:
        """The booking as its last event told it (its resources aside, which no letter names)."""
        zone = zone_of(self.timezone)
        return BookingChanged(
            id=self.id,
            venue_id=self.venue_id,
            resource_ids=[],
            start=self.start_at.astimezone(zone),
            end=self.end_at.astimezone(zone),
            status=self.status,
            org=self.org,
            owner_org=self.owner_org,
            booked_by=self.booked_by,
            hold=self.hold,
            purpose=self.purpose,
            version=self.version,
            timezone=self.timezone,
        )


class LectureRow(Base):
    """An offer of a lecture as its events last told it, newest version kept: what the lecturer
    is reminded of and nudged about. The one-click links are kept while the offer is open (the
    nudge repeats them) and dropped once it is answered or gone."""

    __tablename__ = "lectures"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    lecturer_id: Mapped[str] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    offered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64))
    topic: Mapped[str] = mapped_column(Text)
    venue_name: Mapped[str] = mapped_column(Text)
    venue_address: Mapped[str] = mapped_column(Text)
    lecturer_name: Mapped[str] = mapped_column(String(200))
    lecturer_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    accept_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    decline_url: Mapped[str | None] = mapped_column(Text, nullable=True)

    def told(self) -> OfferChanged:
        """The offer as its last event told it."""
        zone = zone_of(self.timezone)
        return OfferChanged(
            id=self.id,
            request_id="",
            lecturer_id=self.lecturer_id,
            venue_id="",
            booking_id="",
            start=self.start_at.astimezone(zone),
            end=self.end_at.astimezone(zone),
            status=self.status,
            expires_at=self.expires_at.astimezone(zone),
            topic=self.topic,
            version=self.version,
            timezone=self.timezone,
            created_at=self.offered_at,
            venue_name=self.venue_name,
            venue_address=self.venue_address,
            lecturer_name=self.lecturer_name,
            lecturer_email=self.lecturer_email,
            accept_url=self.accept_url,
            decline_url=self.decline_url,
        )


class NewDelivery(msgspec.Struct, frozen=True):
    """A rendered message for one recipient, ready to be recorded."""

    id: str
    recipient: str
    kind: str
    subject: str
    message: bytes
    message_id: str
    moot_at: datetime | None
    calendar_uid: str | None
    calendar_sequence: int | None
    secret: bool = False
    about: str | None = None
    while_status: str | None = None


class Due(msgspec.Struct, frozen=True):
    """A delivery a sender has taken: what it needs to send it, or to see it need not."""

    id: str
    recipient: str
    message: bytes
    attempts: int
    created_at: datetime
    moot_at: datetime | None
    calendar_uid: str | None
    calendar_sequence: int | None
    last_sent_sequence: int | None
    # The status it must find (`while_status`), and the one notify's record holds now.
    while_status: str | None = None
    status_now: str | None = None


async def remember_booking(session: AsyncSession, booking: BookingChanged) -> None:
    """Keep the booking as this event tells it, unless a newer version is already kept (events
    of one booking may arrive out of order)."""
    values = {
        "venue_id": booking.venue_id,
        "owner_org": booking.owner_org,
        "org": booking.org,
        "booked_by": booking.booked_by,
        "hold": booking.hold,
        "status": booking.status,
        "start_at": booking.start,
        "end_at": booking.end,
        "timezone": booking.timezone,
        "purpose": booking.purpose,
        "version": booking.version,
    }
    await session.execute(
        insert_ignoring_duplicates(session, BookingRow)
        .values(id=booking.id, **values)
        .on_conflict_do_update(
            index_elements=[BookingRow.id],
            set_=values,
            where=BookingRow.version <= booking.version,
        )
    )


async def remember_lecture(
    session: AsyncSession, offer: OfferChanged, offered_at: datetime
) -> None:
    """Keep the offer as this event tells it, unless a newer version is already kept; its links
    only while it is open."""
    open_ = offer.status == "offered"
    values = {
        "lecturer_id": offer.lecturer_id,
        "status": offer.status,
        "version": offer.version,
        "start_at": offer.start,
        "end_at": offer.end,
        "expires_at": offer.expires_at,
        "timezone": offer.timezone,
        "topic": offer.topic,
        "venue_name": offer.venue_name,
        "venue_address": offer.venue_address,
        "lecturer_name": offer.lecturer_name,
        "lecturer_email": offer.lecturer_email,
    }
    links = {
        "accept_url": offer.accept_url if open_ else None,
        "decline_url": offer.decline_url if open_ else None,
    }
    # An event without links (an older `offer.*`) leaves the kept links of an open offer alone.
    changed = {**values, **(links if not open_ or offer.accept_url else {})}
    await session.execute(
        insert_ignoring_duplicates(session, LectureRow)
        .values(id=offer.id, offered_at=offer.created_at or offered_at, **values, **links)
        .on_conflict_do_update(
            index_elements=[LectureRow.id],
            set_=changed,
            where=LectureRow.version <= offer.version,
        )
    )


async def bookings_starting(
    session: AsyncSession, *, after: datetime, until: datetime
) -> list[BookingRow]:
    """Confirmed bookings (holds aside: a lecture's room) that start in (`after`, `until`]."""
    query = select(BookingRow).where(
        BookingRow.status == "confirmed",
        BookingRow.hold.is_(False),
        BookingRow.start_at > after,
        BookingRow.start_at <= until,
    )
    return list((await session.scalars(query)).all())


async def lectures_starting(
    session: AsyncSession, *, after: datetime, until: datetime
) -> list[LectureRow]:
    """Accepted lectures that start in (`after`, `until`]."""
    query = select(LectureRow).where(
        LectureRow.status == "accepted",
        LectureRow.start_at > after,
        LectureRow.start_at <= until,
    )
    return list((await session.scalars(query)).all())


async def offers_expiring(
    session: AsyncSession, *, after: datetime, until: datetime
) -> list[LectureRow]:
    """Unanswered offers whose answer time falls in (`after`, `until`]."""
    query = select(LectureRow).where(
        LectureRow.status == "offered",
        LectureRow.expires_at > after,
        LectureRow.expires_at <= until,
    )
    return list((await session.scalars(query)).all())


async def recorded_events(session: AsyncSession, event_ids: Sequence[str]) -> set[str]:
    """Which of `event_ids` (a reminder's key is one) have deliveries recorded already."""
    if not event_ids:
        return set()
    query = select(DeliveryRow.event_id).where(DeliveryRow.event_id.in_(set(event_ids)))
    return set((await session.scalars(query)).all())


async def record_deliveries(
    session: AsyncSession, event_id: str, deliveries: Sequence[NewDelivery], now: datetime
) -> None:
    """Record the event's messages, queued; one recorded before for its recipient stays."""
    if not deliveries:
        return
    # On the table, not the mapped class, and its rows as parameters: one statement compiled
    # once and cached, without the ORM's bulk machinery (a seventh of the worker's time).
    await session.execute(
        insert_ignoring_duplicates(session, DELIVERIES).on_conflict_do_nothing(
            index_elements=["event_id", "recipient"]
        ),
        [
            {
                **msgspec.structs.asdict(delivery),
                "event_id": event_id,
                "status": QUEUED,
                "attempts": 0,
                "created_at": now,
                "due_at": now,
            }
            for delivery in deliveries
        ],
    )


async def take_due(
    session: AsyncSession, *, now: datetime, lease: timedelta, limit: int
) -> list[Due]:
    """Up to `limit` queued deliveries that are due, taken for `lease` (another sender skips
    them meanwhile) with their attempt counted, oldest first."""
    rows = (
        await session.execute(
            select(DeliveryRow)
            .where(DeliveryRow.status == QUEUED, DeliveryRow.due_at <= now)
            .order_by(DeliveryRow.due_at, DeliveryRow.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    ).scalars()
    taken = list(rows)
    if not taken:
        return []
    await session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.id.in_([row.id for row in taken]))
        .values(due_at=now + lease, attempts=DeliveryRow.attempts + 1)
    )
    sent = await _last_sent(session, [(r.calendar_uid, r.recipient) for r in taken])
    statuses = await _statuses(session, [r.about for r in taken if r.while_status is not None])
    return [
        Due(
            id=row.id,
            recipient=row.recipient,
            message=row.message,
            attempts=row.attempts + 1,
            created_at=row.created_at,
            moot_at=row.moot_at,
            calendar_uid=row.calendar_uid,
            calendar_sequence=row.calendar_sequence,
            last_sent_sequence=sent.get((row.calendar_uid, row.recipient)),
            while_status=row.while_status,
            status_now=statuses.get(row.about) if row.about else None,
        )
        for row in taken
    ]


async def _statuses(session: AsyncSession, about: Sequence[str | None]) -> dict[str, str]:
    """The status notify's record holds now for each booking or offer id of `about`."""
    ids = {item for item in about if item is not None}
    if not ids:
        return {}
    found: dict[str, str] = {}
    for table in (BookingRow, LectureRow):
        rows = await session.execute(select(table.id, table.status).where(table.id.in_(ids)))
        found.update({row.id: row.status for row in rows})
    return found


async def _last_sent(
    session: AsyncSession, keys: Sequence[tuple[str | None, str]]
) -> dict[tuple[str | None, str], int]:
    uids = {uid for uid, _ in keys if uid is not None}
    if not uids:
        return {}
    rows = await session.execute(
        select(CalendarSentRow.uid, CalendarSentRow.recipient, CalendarSentRow.sequence).where(
            CalendarSentRow.uid.in_(uids)
        )
    )
    return {(row.uid, row.recipient): row.sequence for row in rows}


# What is left of a message that held a single-use link, once it is settled.
EMPTIED = b""


async def mark_sent(session: AsyncSession, sent: Sequence[Due], now: datetime) -> None:
    """Record a batch as sent in a few statements, not a few per message: the sender's record
    of a batch was as slow as sending it."""
    if not sent:
        return
    ids = [due.id for due in sent]
    await session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.id.in_(ids))
        .values(status=SENT, sent_at=now, last_error=None)
    )
    await _empty_secrets(session, ids)
    # One row per UID and recipient (a statement may not update a row twice), its newest part.
    newest: dict[tuple[str, str], int] = {}
    for due in sent:
        if due.calendar_uid is not None and due.calendar_sequence is not None:
            key = (due.calendar_uid, due.recipient)
            newest[key] = max(newest.get(key, due.calendar_sequence), due.calendar_sequence)
    if not newest:
        return
    insert = insert_ignoring_duplicates(session, CalendarSentRow)
    await session.execute(
        insert.values(
            [
                {"uid": uid, "recipient": recipient, "sequence": sequence}
                for (uid, recipient), sequence in newest.items()
            ]
        ).on_conflict_do_update(
            index_elements=[CalendarSentRow.uid, CalendarSentRow.recipient],
            set_={"sequence": insert.excluded.sequence},
            where=CalendarSentRow.sequence < insert.excluded.sequence,
        )
    )


async def mark_failed(session: AsyncSession, delivery_id: str, error: str) -> None:
    await session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.id == delivery_id)
        .values(status=FAILED, last_error=error[:500])
    )
    await _empty_secrets(session, [delivery_id])


async def _empty_secrets(session: AsyncSession, delivery_ids: Sequence[str]) -> None:
    await session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.id.in_(delivery_ids), DeliveryRow.secret.is_(True))
        .values(message=EMPTIED)
    )


async def retry_later(session: AsyncSession, delivery_id: str, error: str, due: datetime) -> None:
    await session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.id == delivery_id)
        .values(due_at=due, last_error=error[:500])
    )


async def list_deliveries(
    session: AsyncSession,
    *,
    recipient: str | None,
    status: str | None,
    event_id: str | None,
    after: str | None,
    limit: int,
) -> list[DeliveryRow]:
    """Up to `limit + 1` deliveries in id (creation) order after the cursor's id."""
    query = select(DeliveryRow).order_by(DeliveryRow.id).limit(limit + 1)
    if recipient is not None:
        query = query.where(DeliveryRow.recipient == recipient.strip().lower())
    if status is not None:
        query = query.where(DeliveryRow.status == status)
    if event_id is not None:
        query = query.where(DeliveryRow.event_id == event_id)
    if after is not None:
        query = query.where(DeliveryRow.id > after)
    return list((await session.execute(query)).scalars())
