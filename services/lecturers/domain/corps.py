"""The corps, the schools' lecture requests, and offers: what clients send and see, who may do
what, and how an offer moves.

Pure: no database, no clock (`now` is passed in). An offer is a matched session held as a pending
booking; it moves once, from `offered` to `accepted`, `declined`, `expired` or `cancelled`, and
`accepted` may still become `cancelled` when the venue cancels the booking. Every move raises its
`sequence`, which the lecturer's calendar feed shows as SEQUENCE and the one-click links are
bound to, so a link works once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from shared.auth import Principal, Role
from shared.contracts import Location, OfferChanged, Programme
from shared.errors import Conflict, FieldError, Forbidden, InvalidRequest, NotFound
from shared.ids import Id
from shared.time import SpanDoc

_PRINTABLE = r"^[^\x00]*$"
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=_PRINTABLE)]
# Not blank, and no NUL: `\S` alone would match the NUL it is meant to keep out.
Topic = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[^\x00]*[^\x00\s][^\x00]*$")]
Language = Annotated[str, Meta(min_length=1, max_length=35, pattern=_PRINTABLE)]
Email = Annotated[str, Meta(max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")]
Phone = Annotated[str, Meta(max_length=40, pattern=r"^[0-9+()\- ]+$")]
# Year 0 is no date (it was a 500), so the years before 1000 go too; `max_length`, because the
# pattern's `$` would let a trailing newline through.
Month = Annotated[
    str, Meta(max_length=7, pattern=r"^[1-9]\d{3}-(0[1-9]|1[0-2])$", description="YYYY-MM")
]
Reason = Annotated[str, Meta(max_length=2000, pattern=_PRINTABLE)]
Availability = Annotated[list[SpanDoc], Meta(max_length=50)]
Preferred = Annotated[list[SpanDoc], Meta(max_length=50)]
# A month holds at most 31 lecture days; more sessions than that could never be placed.
MAX_SESSIONS = 31
MAX_SESSION_MINUTES = 12 * 60
# Lectures are planned a month or a term ahead; two years is far beyond any plan.
MAX_MONTHS_AHEAD = 24


# ---------------------------------------------------------------------------------------------
# Lecturers


class LecturerCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    topics: Annotated[list[Topic], Meta(min_length=1, max_length=30)]
    area_id: Id
    availability: Availability
    languages: Annotated[list[Language], Meta(max_length=10)] = []
    location: Location | None = None
    max_per_month: Annotated[int, Meta(ge=0, le=MAX_SESSIONS)] = 4
    blackout_dates: Annotated[list[date], Meta(max_length=366)] = []
    email: Email | None = None
    phone: Phone | None = None


class LecturerUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    topics: Annotated[list[Topic], Meta(min_length=1, max_length=30)] | UnsetType = UNSET
    area_id: Id | UnsetType = UNSET
    availability: Availability | UnsetType = UNSET
    languages: Annotated[list[Language], Meta(max_length=10)] | UnsetType = UNSET
    location: Location | UnsetType | None = UNSET
    max_per_month: Annotated[int, Meta(ge=0, le=MAX_SESSIONS)] | UnsetType = UNSET
    blackout_dates: Annotated[list[date], Meta(max_length=366)] | UnsetType = UNSET
    email: Email | UnsetType | None = UNSET
    phone: Phone | UnsetType | None = UNSET


class Lecturer(msgspec.Struct, frozen=True):
    """A member of the corps. `feed_url` is a secret: shown to the office and to the lecturer."""

    id: str
    name: str
    topics: list[str]
    languages: list[str]
    area_id: str
    location: Location | None
    max_per_month: int
    availability: list[SpanDoc]
    blackout_dates: list[date]
    email: str | None
    phone: str | None
    feed_url: str | None
    created_at: datetime
    updated_at: datetime


def normal_topic(topic: str) -> str:
    """Topics compare as written but for case and surrounding space."""
    return topic.strip().casefold()


def normalise_topics(topics: Iterable[str]) -> list[str]:
    """Each topic once, in the order given, in its normal form."""
    return list(dict.fromkeys(normal_topic(topic) for topic in topics))


def ensure_may_read_lecturer(principal: Principal, lecturer_id: str) -> None:
    """Anyone with a token reads the corps, except that a lecturer reads only itself."""
    if principal.role is Role.LECTURER and principal.lecturer_id != lecturer_id:
        raise NotFound("no such lecturer")


# What a lecturer may change of its own record; the rest is the office's to decide.
SELF_SERVICE_FIELDS = frozenset(
    {"availability", "blackout_dates", "languages", "location", "email", "phone"}
)


def ensure_may_update_lecturer(
    principal: Principal, lecturer_id: str, data: LecturerUpdate
) -> None:
    if principal.is_office:
        return
    if principal.role is not Role.LECTURER or principal.lecturer_id != lecturer_id:
        ensure_may_read_lecturer(principal, lecturer_id)
        raise Forbidden("only the office and the lecturer change a lecturer's record")
    sent = {name for name, value in msgspec.structs.asdict(data).items() if value is not UNSET}
    if refused := sorted(sent - SELF_SERVICE_FIELDS):
        raise Forbidden(
            "these fields are the office's to change",
            errors=[FieldError(name, "set by the office") for name in refused],
        )


def ensure_may_manage_feed(principal: Principal, lecturer_id: str) -> None:
    if not sees_feed_url(principal, lecturer_id):
        ensure_may_read_lecturer(principal, lecturer_id)
        raise Forbidden("only the office and the lecturer manage a lecturer's feed")


def sees_feed_url(principal: Principal, lecturer_id: str) -> bool:
    return principal.is_office or principal.lecturer_id == lecturer_id


# ---------------------------------------------------------------------------------------------
# Requests


class RequestStatus(StrEnum):
    OPEN = "open"  # a session still lacks a lecturer
    OFFERED = "offered"  # every session offered (some perhaps accepted)
    ASSIGNED = "assigned"  # every session accepted
    CANCELLED = "cancelled"  # withdrawn by the school


class RequestCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    venue_id: Id
    topic: Topic
    programme: Programme
    month: Month
    sessions: Annotated[int, Meta(ge=1, le=MAX_SESSIONS)] = 1
    minutes: Annotated[int, Meta(ge=15, le=MAX_SESSION_MINUTES, multiple_of=15)] = 90
    # Who the lecture is for, in words ("社区老年居民"); `attendees` is how many are expected.
    audience: Annotated[str, Meta(max_length=200, pattern=_PRINTABLE)] | None = None
    attendees: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    preferred: Preferred = []


class LectureRequest(msgspec.Struct, frozen=True):
    id: str
    venue_id: str
    org: str
    topic: str
    programme: Programme
    month: str
    sessions: int
    minutes: int
    audience: str | None
    attendees: int | None
    preferred: list[SpanDoc]
    status: RequestStatus
    created_at: datetime
    updated_at: datetime


def month_start(month: str) -> date:
    """The first day of a `YYYY-MM` month (the type has already checked the form)."""
    year, number = month.split("-")
    return date(int(year), int(number), 1)


def check_month_ahead(month: str, today: date) -> None:
    """Lectures are requested and matched for this month or later, never for a past one, and
    at most `MAX_MONTHS_AHEAD` ahead (a month in year 9999 would break the month after it)."""
    first = month_start(month)
    if first < today.replace(day=1):
        raise InvalidRequest(
            "the month is over",
            code="month_in_past",
            errors=[FieldError("month", "must be this month or later")],
        )
    if (first.year - today.year) * 12 + first.month - today.month > MAX_MONTHS_AHEAD:
        raise InvalidRequest(
            "the month is too far ahead",
            code="month_too_far",
            errors=[FieldError("month", f"must be at most {MAX_MONTHS_AHEAD} months ahead")],
        )


def request_status(sessions: int, live: Sequence[OfferStatus], *, cancelled: bool) -> RequestStatus:
    """A request's status from its live offers (one per session that has a lecturer)."""
    if cancelled:
        return RequestStatus.CANCELLED
    if sum(status is OfferStatus.ACCEPTED for status in live) >= sessions:
        return RequestStatus.ASSIGNED
    if len(live) >= sessions:
        return RequestStatus.OFFERED
    return RequestStatus.OPEN


def ensure_may_request(principal: Principal, venue_org: str) -> None:
    """The office, or the venue's own manager (the school), asks for lectures at a venue."""
    if principal.is_office:
        return
    if principal.role is not Role.VENUE_MANAGER:
        raise Forbidden(f"the {principal.role.value} role may not request lectures")
    if principal.org != venue_org:
        raise Forbidden("this venue belongs to another organisation")


def ensure_may_read_request(principal: Principal, venue_org: str) -> None:
    if principal.is_office_or_service:
        return
    if principal.role is Role.LECTURER:
        raise Forbidden("lecturers see their offers, not the schools' requests")
    if principal.org != venue_org:
        raise NotFound("no such request")


def request_scope(principal: Principal) -> str | None:
    """Whose requests a listing shows: every org's (None) for the office, else the caller's."""
    if principal.role is Role.LECTURER:
        raise Forbidden("lecturers see their offers, not the schools' requests")
    return None if principal.is_office_or_service else principal.org


# ---------------------------------------------------------------------------------------------
# Offers


class OfferStatus(StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


# An offer that holds its session (and its room) for the request.
LIVE_OFFERS = frozenset({OfferStatus.OFFERED, OfferStatus.ACCEPTED})
Answer = Literal["accept", "decline"]


class Offer(msgspec.Struct, frozen=True):
    id: str
    request_id: str
    lecturer_id: str
    venue_id: str
    booking_id: str
    start: datetime
    end: datetime
    status: OfferStatus
    expires_at: datetime
    session_index: int
    topic: str
    sequence: int
    reason: str | None
    created_at: datetime
    updated_at: datetime


class Announced(msgspec.Struct, frozen=True):
    """What an offer's event tells beyond the offer: where, in which zone, and whom to write."""

    timezone: str
    venue_name: str = ""
    venue_address: str = ""
    lecturer_name: str = ""
    lecturer_email: str | None = None


def announcement(
    offer: Offer, told: Announced, links: dict[str, str] | None = None
) -> OfferChanged:
    """The data of the offer's event: the offer, its `version` (its sequence), what `told`
    adds, and for `offer.created` its one-click `links` (`accept_url`, `decline_url`)."""
    links = links or {}
    return OfferChanged(
        **msgspec.structs.asdict(offer),
        version=offer.sequence,
        **msgspec.structs.asdict(told),
        accept_url=links.get("accept_url"),
        decline_url=links.get("decline_url"),
    )


class DeclineBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Reason | None = None


def answered(
    status: OfferStatus, answer: Answer, *, now: datetime, expires_at: datetime
) -> OfferStatus:
    """The status an answer moves an offer to; 409 `invalid_transition` unless it is open."""
    if status is not OfferStatus.OFFERED:
        raise Conflict(f"the offer is {status.value}, not open", code="invalid_transition")
    if now >= expires_at:
        raise Conflict("the time to answer this offer has passed", code="invalid_transition")
    return OfferStatus.ACCEPTED if answer == "accept" else OfferStatus.DECLINED


def is_due_to_expire(status: OfferStatus, *, now: datetime, expires_at: datetime) -> bool:
    return status is OfferStatus.OFFERED and now >= expires_at


def ensure_may_answer(principal: Principal, lecturer_id: str) -> None:
    """Only the lecturer offered (or the office, on their behalf) answers an offer; another
    lecturer does not learn that it exists."""
    if principal.is_office:
        return
    if principal.role is not Role.LECTURER:
        raise Forbidden(f"the {principal.role.value} role does not answer offers")
    if principal.lecturer_id != lecturer_id:
        raise NotFound("no such offer")


def ensure_may_read_offer(principal: Principal, lecturer_id: str, venue_org: str) -> None:
    if principal.is_office_or_service or principal.lecturer_id == lecturer_id:
        return
    if principal.role is Role.VENUE_MANAGER and principal.org == venue_org:
        return
    raise NotFound("no such offer")


class OfferScope(msgspec.Struct, frozen=True):
    """Which offers a listing may show: one lecturer's, one org's venues', or (both None) all."""

    lecturer_id: str | None
    venue_org: str | None


def offer_scope(principal: Principal, lecturer_id: str | None) -> OfferScope:
    if principal.is_office_or_service:
        return OfferScope(lecturer_id=lecturer_id, venue_org=None)
    if principal.role is Role.LECTURER:
        if lecturer_id is not None and lecturer_id != principal.lecturer_id:
            raise Forbidden("a lecturer sees only its own offers")
        return OfferScope(lecturer_id=principal.lecturer_id, venue_org=None)
    if principal.role is Role.VENUE_MANAGER:
        return OfferScope(lecturer_id=lecturer_id, venue_org=principal.org)
    raise Forbidden(f"the {principal.role.value} role does not see offers")
