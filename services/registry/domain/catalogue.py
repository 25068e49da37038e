"""The catalogue: areas, venues and their bookable resources, and who may change them.

Structs here are the service's vocabulary, read and written by the API as JSON; the schema trio
(`Venue`, `VenueCreate`, `VenueUpdate`) keeps what may be sent apart from what is returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, NoReturn

import msgspec
from msgspec import UNSET, Meta, UnsetType

from shared.auth import Principal, Role
from shared.contracts import Location, ResourceType, Rules
from shared.errors import FieldError, Forbidden, InvalidRequest
from shared.ids import Id

# No NUL characters: PostgreSQL text cannot hold them, and no name needs one.
_PRINTABLE = r"^[^\x00]*$"
Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=_PRINTABLE)]
Text = Annotated[str, Meta(max_length=2000, pattern=_PRINTABLE)]
Org = Annotated[str, Meta(min_length=1, max_length=100, pattern=_PRINTABLE)]
Feature = Annotated[str, Meta(min_length=1, max_length=60, pattern=_PRINTABLE)]
Zone = Annotated[str, Meta(min_length=1, max_length=64)]
CalendarCode = Annotated[str, Meta(min_length=2, max_length=10)]
Capacity = Annotated[int, Meta(ge=0, le=100_000)]
Features = Annotated[list[Feature], Meta(max_length=50)]


class VenueKind(StrEnum):
    SCHOOL = "school"
    CITIZEN_SCHOOL = "citizen_school"
    COMMUNITY_EDUCATION_CENTRE = "community_education_centre"
    SERVICE_CENTRE = "service_centre"
    CULTURAL_CENTRE = "cultural_centre"
    ELDERLY_UNIVERSITY = "elderly_university"
    TRAINING_COLLEGE = "training_college"
    ENTERPRISE_TRAINING = "enterprise_training"


class AreaCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    parent_id: Id | None = None
    population: Annotated[int, Meta(ge=0, le=2_000_000_000)] | None = None


class Area(msgspec.Struct, frozen=True):
    id: str
    name: str
    parent_id: str | None
    population: int | None
    created_at: datetime


class VenueCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    kind: VenueKind
    area_id: Id
    owner_org: Org
    address: Text | None = None
    timezone: Zone = "Asia/Shanghai"
    holiday_calendar: CalendarCode = "CN"
    location: Location | None = None
    description: Text | None = None


class VenueUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    kind: VenueKind | UnsetType = UNSET
    area_id: Id | UnsetType = UNSET
    owner_org: Org | UnsetType = UNSET
    address: Text | UnsetType | None = UNSET
    timezone: Zone | UnsetType = UNSET
    holiday_calendar: CalendarCode | UnsetType = UNSET
    location: Location | UnsetType | None = UNSET
    description: Text | UnsetType | None = UNSET


class Venue(msgspec.Struct, frozen=True):
    id: str
    name: str
    kind: VenueKind
    area_id: str
    owner_org: str
    address: str | None
    timezone: str
    holiday_calendar: str
    location: Location | None
    description: str | None
    created_at: datetime
    updated_at: datetime


class ResourceCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name
    type: ResourceType
    capacity: Capacity | None = None
    features: Features = []
    requires_approval: bool = False
    rules: Rules = Rules()
    description: Text | None = None
    part_of: Id | None = None


class ResourceUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    type: ResourceType | UnsetType = UNSET
    capacity: Capacity | UnsetType | None = UNSET
    features: Features | UnsetType = UNSET
    requires_approval: bool | UnsetType = UNSET
    rules: Rules | UnsetType = UNSET
    description: Text | UnsetType | None = UNSET
    part_of: Id | UnsetType | None = UNSET


class Resource(msgspec.Struct, frozen=True):
    id: str
    venue_id: str
    name: str
    type: ResourceType
    capacity: int | None
    features: list[str]
    requires_approval: bool
    rules: Rules
    description: str | None
    created_at: datetime
    updated_at: datetime
    # The room this one is a part of (a half of a divisible hall), if any, and its own parts.
    part_of: str | None = None
    parts: list[str] = []


def check_rules(rules: Rules, field: str = "rules") -> None:
    """The cross-field checks a Meta constraint cannot state."""
    errors: list[FieldError] = []
    if rules.min_minutes > rules.max_minutes:
        errors.append(FieldError(f"{field}.min_minutes", "must not exceed max_minutes"))
    if rules.min_minutes % rules.slot_minutes:
        errors.append(FieldError(f"{field}.min_minutes", "must be a whole number of slots"))
    if errors:
        raise InvalidRequest("the booking rules contradict each other", errors=errors)


def normalise_features(features: list[str]) -> list[str]:
    """Features compare case-blind and without surrounding blanks; duplicates collapse."""
    return sorted({feature.strip().lower() for feature in features if feature.strip()})


def ensure_can_create_venue(principal: Principal, owner_org: str) -> None:
    principal.require(Role.VENUE_MANAGER)
    if not principal.is_office and principal.org != owner_org:
        raise Forbidden("a venue manager may only create venues of its own organisation")


def ensure_can_manage(principal: Principal, venue_owner_org: str) -> None:
    """Office manages every venue; a venue manager only those its organisation owns."""
    principal.require(Role.VENUE_MANAGER)
    if not principal.is_office and principal.org != venue_owner_org:
        raise Forbidden("this venue belongs to another organisation")


def ensure_can_update_venue(principal: Principal, venue: Venue, change: VenueUpdate) -> None:
    ensure_can_manage(principal, venue.owner_org)
    if change.owner_org is not UNSET and change.owner_org != venue.owner_org:
        principal.require(Role.OFFICE)


# Divisible halls

# A hall, its halves, and their quarters: no venue divides a room further.
MAX_LEVELS = 3


class Placement(msgspec.Struct, frozen=True):
    """Where a resource of a venue stands in its rooms' hierarchy."""

    type: ResourceType
    part_of: str | None


def check_hierarchy(
    resource_id: str, placement: Placement, venue_resources: Mapping[str, Placement]
) -> None:
    """422 `invalid_hierarchy` unless the resource, placed so among the other resources of its
    venue (`venue_resources`, by id, the resource itself as it was or absent when new), keeps
    the venue's rooms a forest: rooms only, a whole of the same venue, no cycle, and at most
    `MAX_LEVELS` levels from a whole down to its smallest part."""
    others = {rid: place for rid, place in venue_resources.items() if rid != resource_id}
    has_parts = any(place.part_of == resource_id for place in others.values())
    if placement.type is not ResourceType.ROOM and (placement.part_of or has_parts):
        _invalid("only rooms are divided into parts, or part of another room")
    if placement.part_of is None:
        return
    whole = others.get(placement.part_of)
    if whole is None:
        _invalid("part_of must name another room of the same venue", field="part_of")
    if whole.type is not ResourceType.ROOM:
        _invalid("part_of must name a room, not equipment", field="part_of")
    above = _levels_above(resource_id, placement.part_of, others)
    below = _levels_below(resource_id, others)
    if above + 1 + below > MAX_LEVELS:
        _invalid(f"a room and its parts are at most {MAX_LEVELS} levels deep", field="part_of")


def _levels_above(resource_id: str, whole_id: str, others: Mapping[str, Placement]) -> int:
    """How many wholes stand above the resource once it is part of `whole_id`; a cycle back to
    the resource is refused."""
    levels, current = 0, whole_id
    seen: set[str] = set()
    while True:
        if current == resource_id or current in seen:
            _invalid("a room cannot be part of itself or of its own parts", field="part_of")
        seen.add(current)
        levels += 1
        place = others.get(current)
        if place is None or place.part_of is None:
            return levels
        current = place.part_of


def _levels_below(resource_id: str, others: Mapping[str, Placement]) -> int:
    """How many levels of parts the resource has under it (0 for a room without parts)."""
    children: dict[str, list[str]] = {}
    for rid, place in others.items():
        if place.part_of is not None:
            children.setdefault(place.part_of, []).append(rid)
    levels, level = 0, [resource_id]
    seen = {resource_id}
    while True:
        level = [child for rid in level for child in children.get(rid, []) if child not in seen]
        if not level:
            return levels
        seen.update(level)
        levels += 1


def parts_and_self(resource_id: str, venue_resources: Mapping[str, Placement]) -> list[str]:
    """The resource and every part under it, at any depth."""
    found, level = [resource_id], [resource_id]
    while level:
        level = [
            rid
            for rid, place in venue_resources.items()
            if place.part_of in level and rid not in found
        ]
        found += level
    return found


def _invalid(message: str, *, field: str = "type") -> NoReturn:
    raise InvalidRequest(message, code="invalid_hierarchy", errors=[FieldError(field, message)])
