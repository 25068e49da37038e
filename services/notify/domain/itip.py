"""The calendar part of a letter (iTIP, RFC 5546), written with the suite's own iCalendar
helpers (`shared.ical`): METHOD, a stable UID, SEQUENCE, ORGANIZER, ATTENDEE and the VTIMEZONE."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from services.notify.domain.plans import CalendarPart
from shared.contracts import Person
from shared.ical import (
    FOOTER,
    fold,
    itip_header,
    param,
    text,
    utc_stamp,
    vtimezone,
    wall_clock,
    zone_of,
)

PRODID: Final = "-//Commonroom//notify//EN"


def calendar(
    part: CalendarPart, *, organizer: tuple[str, str], attendee: Person, now: datetime
) -> str:
    """The VCALENDAR for `attendee`; `organizer` is (name, address) of the suite's sender."""
    zone = zone_of(part.timezone)
    first, last = part.start.astimezone(zone).year, part.end.astimezone(zone).year
    organizer_name, organizer_address = organizer
    # RSVP=FALSE where the answer is a link (an offer), or mail clients show buttons that do
    # nothing; a booking's booker has nothing to answer either.
    rsvp = "TRUE" if part.rsvp else "FALSE"
    partstat = "NEEDS-ACTION" if part.status == "TENTATIVE" else "ACCEPTED"
    lines = [
        f"UID:{text(part.uid)}",
        f"DTSTAMP:{utc_stamp(now)}",
        f"SEQUENCE:{part.sequence}",
        f"DTSTART{wall_clock(part.start, zone, part.timezone)}",
        f"DTEND{wall_clock(part.end, zone, part.timezone)}",
        f"SUMMARY:{text(part.summary)}",
        *([f"LOCATION:{text(part.location)}"] if part.location else []),
        f"STATUS:{part.status}",
        f"ORGANIZER;CN={param(organizer_name)}:mailto:{organizer_address}",
        (
            f"ATTENDEE;CN={param(attendee.name or attendee.email)};ROLE=REQ-PARTICIPANT;"
            f"PARTSTAT={partstat};RSVP={rsvp}:mailto:{attendee.email}"
        ),
    ]
    event = "".join(f"{fold(line)}\r\n" for line in lines)
    return (
        itip_header(prodid=PRODID, method=part.method)
        + vtimezone(part.timezone, first, last)
        + f"BEGIN:VEVENT\r\n{event}END:VEVENT\r\n"
        + FOOTER
    )
