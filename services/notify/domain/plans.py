"""Who is told what about an event: pure functions from an event's data and the people identity
named to the letters to write."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import msgspec

from shared.contracts import (
    BookingChanged,
    OfferChanged,
    PasswordResetRequested,
    Person,
    UserInvited,
)
from shared.ical import booking_uid, offer_uid

Method = Literal["REQUEST", "CANCEL"]


class CalendarPart(msgspec.Struct, frozen=True):
    """The iTIP part of a letter: one event, by its stable UID, at its SEQUENCE."""

    uid: str
    sequence: int
    method: Method
    status: Literal["CONFIRMED", "TENTATIVE", "CANCELLED"]
    summary: str
    start: datetime
    end: datetime
    timezone: str
    rsvp: bool = False
    location: str = ""


class Letter(msgspec.Struct, frozen=True):
    """One message to write: its template (`kind`), its reader, what the template shows."""

    kind: str
    to: Person
    values: dict[str, Any]
    calendar: CalendarPart | None = None
    # From when it is pointless to send it (the booking began, the offer expired).
    moot_at: datetime | None = None
    # It carries a single-use link: once sent (or given up), the stored copy is emptied, so the
    # link in clear lives on in the reader's mailbox alone.
    secret: bool = False
    # The booking or offer it tells of, and the status that must still be its own when it is
    # sent, or it has become moot (the offer answered, the booking cancelled).
    about: str | None = None
    while_status: str | None = None


class Audience(msgspec.Struct, frozen=True):
    """Whom identity must be asked about for a booking event."""

    booker: bool = False
    managers: bool = False

    @property
    def anyone(self) -> bool:
        return self.booker or self.managers


NOBODY = Audience()


def booking_audience(event_type: str, booking: BookingChanged) -> Audience:
    """Who hears of a booking event. A hold is the lecturer service's, which tells its lecturer
    through the offer: nobody is mailed about the hold itself."""
    if booking.hold:
        return NOBODY
    match event_type:
        case "booking.created":
            pending = booking.status == "pending"
            return Audience(booker=not pending, managers=pending)
        case "booking.confirmed" | "booking.rejected" | "booking.cancelled":
            return Audience(booker=True)
        case "booking.outside_opening_hours":
            return Audience(booker=True, managers=True)
    return NOBODY


def booking_letters(
    event_type: str,
    booking: BookingChanged,
    *,
    booker: Person | None,
    managers: Sequence[Person],
    web_url: str,
) -> list[Letter]:
    """The letters a booking event asks for, given the people `booking_audience` named."""
    audience = booking_audience(event_type, booking)
    values = _booking_values(booking, web_url)
    kind = _BOOKING_KINDS.get((event_type, booking.status)) or _BOOKING_KINDS.get((event_type, ""))
    if kind is None:
        return []
    calendar = _booking_calendar(event_type, booking)
    readers: list[Person] = []
    if audience.managers:
        readers += managers
    if audience.booker and booker is not None:
        readers.append(booker)
    return [
        Letter(kind=kind, to=person, values=values, calendar=calendar, moot_at=booking.start)
        for person in _distinct_active(readers)
    ]


def _booking_values(booking: BookingChanged, web_url: str) -> dict[str, Any]:
    return {
        "purpose": booking.purpose,
        "start": booking.start,
        "end": booking.end,
        "timezone": booking.timezone,
        "approvals_url": f"{web_url}/approvals",
        "booking_url": f"{web_url}/bookings/{booking.id}",
        # Who made the change and why, where the event says (a cancel names who cancelled).
        "actor": booking.actor,
        "reason": booking.reason or "",
    }


_BOOKING_KINDS: dict[tuple[str, str], str] = {
    ("booking.created", "pending"): "booking_pending",
    ("booking.created", "confirmed"): "booking_confirmed",
    ("booking.confirmed", ""): "booking_confirmed",
    ("booking.rejected", ""): "booking_rejected",
    ("booking.cancelled", ""): "booking_cancelled",
    ("booking.outside_opening_hours", ""): "booking_closure",
}


def _booking_calendar(event_type: str, booking: BookingChanged) -> CalendarPart | None:
    """REQUEST once the booking is confirmed, CANCEL when it ends unheld; SEQUENCE = version."""
    if event_type in {"booking.created", "booking.confirmed"} and booking.status == "confirmed":
        method: Method = "REQUEST"
        status: Literal["CONFIRMED", "CANCELLED"] = "CONFIRMED"
    elif event_type in {"booking.rejected", "booking.cancelled"}:
        method, status = "CANCEL", "CANCELLED"
    else:
        return None
    return CalendarPart(
        uid=booking_uid(booking.id),
        sequence=booking.version,
        method=method,
        status=status,
        summary=booking.purpose,
        start=booking.start,
        end=booking.end,
        timezone=booking.timezone,
    )


# Offers: the lecturer is told each move, with the calendar event its feed shows (one UID).

OFFER_EVENTS: Final = (
    "offer.created",
    "offer.accepted",
    "offer.declined",
    "offer.expired",
    "offer.cancelled",
)
_OFFER_KINDS: Final = {
    "offer.created": "offer_made",
    "offer.accepted": "offer_accepted",
    "offer.declined": "offer_closed",
    "offer.expired": "offer_closed",
    "offer.cancelled": "offer_closed",
}


def lecturer_reader(offer: OfferChanged, accounts: Mapping[str, Person]) -> Person | None:
    """Whom to write about a lecturer's offer: its account (identity's user holding the
    lecturer's membership), else the address on the lecturer record, else nobody."""
    account = accounts.get(offer.lecturer_id)
    if account is not None:
        return None if account.disabled else account
    if offer.lecturer_email:
        return Person(id=offer.lecturer_id, email=offer.lecturer_email, name=offer.lecturer_name)
    return None


def offer_letter(event_type: str, offer: OfferChanged, to: Person, web_url: str) -> Letter:
    """The lecturer's letter for an offer event: an offer made carries its accept and decline
    links first and a tentative REQUEST; accepted, a confirmed REQUEST; declined, expired or
    cancelled, the CANCEL of the same UID. SEQUENCE is the offer's version."""
    kind = _OFFER_KINDS[event_type]
    made = event_type == "offer.created"
    return Letter(
        kind=kind,
        to=to,
        values=_offer_values(offer, web_url),
        calendar=_offer_calendar(offer),
        # An offer's links are pointless once it is answered or its answer time passed; news of
        # a lecture, once it has begun.
        moot_at=offer.expires_at if made else offer.start,
        secret=made,
        about=offer.id,
        while_status="offered" if made else None,
    )


def _offer_values(offer: OfferChanged, web_url: str) -> dict[str, Any]:
    return {
        "topic": offer.topic,
        "start": offer.start,
        "end": offer.end,
        "timezone": offer.timezone,
        "expires_at": offer.expires_at,
        "venue": ", ".join(part for part in (offer.venue_name, offer.venue_address) if part),
        "status": offer.status,
        "accept_url": offer.accept_url or "",
        "decline_url": offer.decline_url or "",
        "offers_url": f"{web_url}/offers",
    }


def _offer_calendar(offer: OfferChanged) -> CalendarPart:
    method: Method
    status: Literal["CONFIRMED", "TENTATIVE", "CANCELLED"]
    if offer.status == "offered":
        method, status = "REQUEST", "TENTATIVE"
    elif offer.status == "accepted":
        method, status = "REQUEST", "CONFIRMED"
    else:
        method, status = "CANCEL", "CANCELLED"
    return CalendarPart(
        uid=offer_uid(offer.id),
        sequence=offer.version,
        method=method,
        status=status,
        summary=offer.topic,
        start=offer.start,
        end=offer.end,
        timezone=offer.timezone,
        location=", ".join(part for part in (offer.venue_name, offer.venue_address) if part),
    )


# Reminders: each once, keyed so that two cron runs (or two workers) record it once.

NUDGE_BEFORE: Final = timedelta(hours=12)
_REMINDER_KEYS: Final = uuid.UUID("6f1d1c4e-5d0a-4c57-9b7e-2f6c3a1b8e90")


def reminder_key(kind: str, about: str, at: datetime) -> str:
    """The reminder's stand-in for an event id: the same for the same reminder wherever and
    however often it is planned, so the deliveries' unique key records it once."""
    return str(uuid.uuid5(_REMINDER_KEYS, f"{kind}/{about}/{at.astimezone(UTC).isoformat()}"))


def wants_nudge(offer: OfferChanged) -> bool:
    """An offer made with more than `NUDGE_BEFORE` to answer is nudged; one made with less has
    just been mailed, and a nudge would come on the heels of the offer itself."""
    return offer.created_at is None or offer.expires_at - offer.created_at > NUDGE_BEFORE


def booking_reminder(booking: BookingChanged, booker: Person, web_url: str) -> Letter:
    """The booker's reminder of a confirmed booking the day before; moot once it begins or is
    no longer confirmed."""
    return Letter(
        kind="booking_reminder",
        to=booker,
        values=_booking_values(booking, web_url),
        moot_at=booking.start,
        about=booking.id,
        while_status="confirmed",
    )


def lecture_reminder(offer: OfferChanged, lecturer: Person, web_url: str) -> Letter:
    """The lecturer's reminder of an accepted lecture the day before."""
    return Letter(
        kind="lecture_reminder",
        to=lecturer,
        values=_offer_values(offer, web_url),
        moot_at=offer.start,
        about=offer.id,
        while_status="accepted",
    )


def offer_nudge(offer: OfferChanged, lecturer: Person, web_url: str) -> Letter:
    """The lecturer's nudge about an offer still unanswered, its links first; moot once it is
    answered or expires."""
    return Letter(
        kind="offer_nudge",
        to=lecturer,
        values=_offer_values(offer, web_url),
        moot_at=offer.expires_at,
        secret=True,
        about=offer.id,
        while_status="offered",
    )


def reminders_of(
    bookings: Sequence[BookingChanged],
    lectures: Sequence[OfferChanged],
    expiring: Sequence[OfferChanged],
) -> dict[str, BookingChanged | OfferChanged]:
    """By reminder key, what is to be reminded of: the bookings and lectures about to start, and
    the unanswered offers about to expire that `wants_nudge`."""
    return {
        **{reminder_key("booking", b.id, b.start): b for b in bookings},
        **{reminder_key("lecture", o.id, o.start): o for o in lectures},
        **{reminder_key("nudge", o.id, o.expires_at): o for o in expiring if wants_nudge(o)},
    }


def reminder_letter(
    about: BookingChanged | OfferChanged,
    accounts: Mapping[str, Person],
    bookers: Mapping[str, Person],
    web_url: str,
) -> Letter | None:
    """The reminder of a booking (to its booker) or of an accepted lecture or an open offer (to
    its lecturer); None where there is nobody to write."""
    if isinstance(about, BookingChanged):
        booker = bookers.get(about.booked_by)
        if booker is None or booker.disabled:
            return None
        return booking_reminder(about, booker, web_url)
    lecturer = lecturer_reader(about, accounts)
    if lecturer is None:
        return None
    if about.status == "accepted":
        return lecture_reminder(about, lecturer, web_url)
    return offer_nudge(about, lecturer, web_url)


def _distinct_active(people: Sequence[Person]) -> list[Person]:
    """Each person once (a manager who booked gets one letter), none that is disabled."""
    seen: set[str] = set()
    kept = []
    for person in people:
        if person.disabled or person.email in seen:
            continue
        seen.add(person.email)
        kept.append(person)
    return kept


def invitation_letter(invited: UserInvited, occurred_at: datetime) -> Letter:
    """The invitee's letter: its link first, whom it joins, until when the link works."""
    invitee = Person(
        id=invited.invitation_id,
        email=invited.email,
        name=invited.name or "",
        locale=invited.locale,
    )
    return Letter(
        kind="invitation",
        to=invitee,
        values={
            "link": invited.link,
            "org_name": invited.org_name,
            "role": invited.role,
            # How long the link works, not until when: the reader's zone is not known.
            "valid_for": invited.expires_at - occurred_at,
        },
        moot_at=invited.expires_at,
        secret=True,
    )


def reset_letter(reset: PasswordResetRequested, occurred_at: datetime) -> Letter:
    """The user's password-reset letter: its link first, until when it works."""
    user = Person(id=reset.user_id, email=reset.email, name=reset.name, locale=reset.locale)
    return Letter(
        kind="password_reset",
        to=user,
        values={"link": reset.link, "valid_for": reset.expires_at - occurred_at},
        moot_at=reset.expires_at,
        secret=True,
    )
