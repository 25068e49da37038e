"""Bookings: what a client may ask for, the owners' rules it must meet, and how a booking moves.

Everything here is pure: the resources come from the registry, the open intervals are resolved
there, and `now` is passed in. The database, not this module, guarantees that two live bookings
of a resource never overlap; `blocked` says what stretch each one holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import msgspec
from msgspec import UNSET, Meta, UnsetType

from shared.auth import Principal, Role
from shared.contracts import Programme, ResourceType, Rules
from shared.errors import Conflict, FieldError, Forbidden, InvalidRequest, NotFound
from shared.ids import Id
from shared.time import Interval

_PRINTABLE = r"^[^\x00]*$"
Org = Annotated[str, Meta(min_length=1, max_length=100, pattern=_PRINTABLE)]
Reason = Annotated[str, Meta(max_length=2000, pattern=_PRINTABLE)]
MAX_RESOURCES = 20


class Status(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


LIVE = frozenset({Status.PENDING, Status.CONFIRMED})


class SeriesRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    rrule: Annotated[str, Meta(min_length=1, max_length=500, pattern=_PRINTABLE)]
    mode: Literal["all_or_nothing", "skip_conflicts"] = "all_or_nothing"


class BookingCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    resource_ids: Annotated[list[Id], Meta(min_length=1, max_length=MAX_RESOURCES)]
    start: datetime
    end: datetime
    purpose: Annotated[str, Meta(min_length=1, max_length=500, pattern=_PRINTABLE)]
    programme: Programme | None = None
    attendees: Annotated[int, Meta(ge=0, le=100_000)] | None = None
    series: SeriesRequest | None = None
    override_hours: bool = False
    hold: bool = False
    org: Org | UnsetType = UNSET


class ReasonBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Reason | None = None


class AttendanceBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    attended: Annotated[int, Meta(ge=0, le=100_000)]


class Bookable(msgspec.Struct, frozen=True):
    """A resource as the booking rules see it: the registry's resource and its venue's facts."""

    id: str
    venue_id: str
    name: str
    type: ResourceType
    capacity: int | None
    requires_approval: bool
    rules: Rules
    owner_org: str
    timezone: str
    area_id: str = ""
    venue_kind: str = ""
    # The room this one is part of, and its direct parts (`domain.halls`).
    part_of: str | None = None
    parts: tuple[str, ...] = ()


class Booking(msgspec.Struct, frozen=True):
    """A booking as clients read it. `booked_by` is the `sub` of the token that made it; a `hold`
    is a pending booking the office (the lecturer service) keeps for an offered lecture, not a
    request for the venue to approve; `version` rises by one with every change."""

    id: str
    resource_ids: list[str]
    venue_id: str
    org: str
    booked_by: str
    start: datetime
    end: datetime
    status: Status
    purpose: str
    programme: Programme | None
    attendees: int | None
    attended: int | None
    series_id: str | None
    hold: bool
    outside_opening_hours: bool
    reason: str | None
    created_at: datetime
    updated_at: datetime
    version: int


class Occurrence(msgspec.Struct, frozen=True):
    """An occurrence of a series that was not booked, and why."""

    start: datetime
    end: datetime
    code: str


class SeriesResult(msgspec.Struct, frozen=True):
    series_id: str
    bookings: list[Booking]
    skipped: list[Occurrence]


class Refusal(msgspec.Struct, frozen=True):
    """One rule a requested interval breaks: the code a client acts on, and a sentence."""

    code: str
    message: str
    field: str = "start"


# Who may do what


def booking_org(principal: Principal, request: BookingCreate) -> str:
    """The organisation a new booking belongs to: the caller's, or the one the office names."""
    principal.require(Role.COMMUNITY_MANAGER, Role.VENUE_MANAGER, Role.SERVICE)
    on_behalf = request.org is not UNSET and request.org != principal.org
    if on_behalf and not principal.is_office_or_service:
        raise Forbidden("only the office books on behalf of another organisation")
    if request.hold and not principal.is_office_or_service:
        raise Forbidden("only the office (or a service acting for it) holds rooms")
    return principal.org if request.org is UNSET else request.org


def ensure_may_book(principal: Principal, request: BookingCreate, owner_org: str) -> None:
    """Overriding opening hours is for the office and the venue's own manager."""
    if request.override_hours and not (
        principal.is_office or (principal.role is Role.VENUE_MANAGER and principal.org == owner_org)
    ):
        raise Forbidden("only the office or the venue's manager may book outside opening hours")


def can_see(principal: Principal, org: str, venue_org: str) -> bool:
    """The office sees every booking, a community manager its own organisation's, and a venue
    manager its own organisation's and those at its venues; a service, every one."""
    if principal.is_office_or_service:
        return True
    if principal.role is Role.COMMUNITY_MANAGER:
        return principal.org == org
    if principal.role is Role.VENUE_MANAGER:
        return principal.org in (org, venue_org)
    return False


def ensure_visible(principal: Principal, org: str, venue_org: str) -> None:
    """Whoever may see a booking may also cancel it; to anyone else it does not exist."""
    if not can_see(principal, org, venue_org):
        raise NotFound("no such booking")


def visible_scope(principal: Principal) -> tuple[str | None, str | None]:
    """The (booking org, venue org) whose bookings a list shows; (None, None) for all of them."""
    if principal.is_office_or_service:
        return None, None
    principal.require(Role.COMMUNITY_MANAGER, Role.VENUE_MANAGER)
    venue_org = principal.org if principal.role is Role.VENUE_MANAGER else None
    return principal.org, venue_org


def ensure_may_decide(principal: Principal, org: str, venue_org: str) -> None:
    """Approving and rejecting belong to the venue's manager and the office."""
    ensure_visible(principal, org, venue_org)
    if not (
        principal.is_office or (principal.role is Role.VENUE_MANAGER and principal.org == venue_org)
    ):
        raise Forbidden("only the venue's manager or the office approves and rejects")


def ensure_may_approve(principal: Principal, org: str, venue_org: str) -> None:
    """And approving also to the lecturer service, which confirms an accepted offer's hold (it
    cancels too: whoever sees a booking may cancel it)."""
    if not principal.is_service:
        ensure_may_decide(principal, org, venue_org)


def ensure_may_change(principal: Principal, org: str, venue_org: str) -> None:
    """The other changes (attendance, a series' rest) are a person's, never a service's."""
    principal.require_person()
    ensure_visible(principal, org, venue_org)


def actor_of(principal: Principal, booked_by: str, venue_org: str) -> str:
    """Who a change is by, as the people told of it read it: the lecturer service (`service`),
    the one who booked it or its org (`booker`), the venue's manager (`venue`), the `office`."""
    if principal.is_service:
        return "service"
    if principal.sub == booked_by:
        return "booker"
    if principal.is_office:
        return "office"
    if principal.role is Role.VENUE_MANAGER and principal.org == venue_org:
        return "venue"
    return "booker"


# Moving a booking along

_MOVES: dict[str, tuple[frozenset[Status], Status]] = {
    "approve": (frozenset({Status.PENDING}), Status.CONFIRMED),
    "reject": (frozenset({Status.PENDING}), Status.REJECTED),
    "cancel": (LIVE, Status.CANCELLED),
}


def next_status(current: Status, action: Literal["approve", "reject", "cancel"]) -> Status:
    allowed, target = _MOVES[action]
    if current not in allowed:
        raise Conflict(
            f"a {current.value} booking cannot be {target.value}", code="invalid_transition"
        )
    return target


def ensure_attendance_allowed(status: Status, end: datetime, now: datetime) -> None:
    if status is not Status.CONFIRMED:
        raise Conflict(
            f"attendance is recorded for confirmed bookings, not {status.value} ones",
            code="invalid_transition",
        )
    if now < end:
        raise Conflict("attendance is recorded after the booking ends", code="invalid_transition")


def initial_status(resources: Iterable[Bookable], *, hold: bool) -> Status:
    if hold or any(resource.requires_approval for resource in resources):
        return Status.PENDING
    return Status.CONFIRMED


# The owners' rules


def check_venue(resources: Sequence[Bookable]) -> None:
    if len({resource.venue_id for resource in resources}) > 1:
        raise InvalidRequest(
            "all resources of a booking must belong to one venue",
            code="mixed_venues",
            errors=[FieldError("resource_ids", "resources of more than one venue")],
        )


def refusals(
    interval: Interval,
    resources: Sequence[Bookable],
    open_intervals: Mapping[str, Sequence[Interval]],
    *,
    attendees: int | None,
    now: datetime,
    override_hours: bool,
) -> list[Refusal]:
    """Every rule of every resource that `interval` breaks, in the order a client fixes them."""
    found: list[Refusal] = []
    minutes = interval.duration / timedelta(minutes=1)
    for resource in resources:
        rules, name = resource.rules, resource.name
        if minutes < rules.min_minutes:
            found.append(
                Refusal("too_short", f"{name}: at least {rules.min_minutes} minutes", "end")
            )
        if minutes > rules.max_minutes:
            found.append(Refusal("too_long", f"{name}: at most {rules.max_minutes} minutes", "end"))
        if not (
            on_grid(interval.start, resource.timezone, rules.slot_minutes)
            and on_grid(interval.end, resource.timezone, rules.slot_minutes)
        ):
            found.append(
                Refusal(
                    "not_on_slot", f"{name}: start and end on a {rules.slot_minutes}-minute grid"
                )
            )
        if interval.start < now + timedelta(minutes=rules.lead_minutes):
            found.append(
                Refusal("too_soon", f"{name}: book at least {rules.lead_minutes} minutes ahead")
            )
        if interval.start > now + timedelta(days=rules.horizon_days):
            found.append(
                Refusal("too_far", f"{name}: book at most {rules.horizon_days} days ahead")
            )
        if (
            attendees is not None
            and resource.type is ResourceType.ROOM
            and resource.capacity is not None
            and attendees > resource.capacity
        ):
            found.append(
                Refusal("over_capacity", f"{name} holds {resource.capacity} people", "attendees")
            )
        if not override_hours and not inside(interval, open_intervals.get(resource.id, ())):
            found.append(Refusal("outside_opening_hours", f"{name} is not open all that time"))
    return found


def on_grid(instant: datetime, zone_name: str, slot_minutes: int) -> bool:
    """Whether a wall-clock time of the venue falls on its slot grid (counted from midnight)."""
    local = instant.astimezone(ZoneInfo(zone_name))
    if local.second or local.microsecond:
        return False
    return (local.hour * 60 + local.minute) % slot_minutes == 0


def inside(interval: Interval, open_intervals: Iterable[Interval]) -> bool:
    """Whether one open interval holds all of `interval` (they are merged, so one must)."""
    return any(window.contains(interval) for window in open_intervals)


def refuse(found: Sequence[Refusal]) -> InvalidRequest:
    """The 422 for a booking that breaks rules: the first rule's code, every rule listed."""
    first = found[0]
    return InvalidRequest(
        first.message,
        code=first.code,
        errors=[
            FieldError(refusal.field, f"{refusal.code}: {refusal.message}") for refusal in found
        ],
    )


def blocked(interval: Interval, buffer_minutes: int) -> Interval:
    """What a booking holds of its resource: itself and the turnover time after it.

    Two bookings whose blocked stretches do not overlap are at least `buffer_minutes` apart in
    either order, so the database need only refuse overlaps of these.
    """
    return Interval(interval.start, interval.end + timedelta(minutes=buffer_minutes))
