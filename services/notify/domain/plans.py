"""Who is told what about an event: pure functions from an event's data and the people identity
named to the letters to write."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

import msgspec

from shared.contracts import BookingChanged, PasswordResetRequested, Person, UserInvited
from shared.ical import booking_uid

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
    values = {
        "purpose": booking.purpose,
        "start": booking.start,
        "end": booking.end,
        "timezone": booking.timezone,
        "approvals_url": f"{web_url}/approvals",
        "booking_url": f"{web_url}/bookings/{booking.id}",
    }
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
