"""The catalogue: areas, venues and their bookable resources, and who may change them.

Structs here are the service's vocabulary, read and written by the API as JSON; the schema trio
(`Venue`, `VenueCreate`, `VenueUpdate`) keeps what may be sent apart from what is returned.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

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


class ResourceUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    type: ResourceType | UnsetType = UNSET
    capacity: Capacity | UnsetType | None = UNSET
    features: Features | UnsetType = UNSET
    requires_approval: bool | UnsetType = UNSET
    rules: Rules | UnsetType = UNSET
    description: Text | UnsetType | None = UNSET


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
