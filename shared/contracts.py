"""Payloads that cross service lines: one definition, read by producer and consumer alike."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta


class Location(msgspec.Struct, frozen=True):
    """A point on the map: where a venue stands or a lecturer lives."""

    lat: Annotated[float, Meta(ge=-90, le=90)]
    lon: Annotated[float, Meta(ge=-180, le=180)]


class Programme(StrEnum):
    """The six community-education programmes a booking or a lecture serves."""

    DEGREE = "degree"
    WORKFORCE = "workforce"
    ASSISTANCE = "assistance"
    YOUTH = "youth"
    ELDERLY = "elderly"
    CITIZEN = "citizen"


class ResourceType(StrEnum):
    ROOM = "room"
    EQUIPMENT = "equipment"


# The longest a booking and its turnover buffer can be, whatever an owner's rules say: what a
# query for the bookings near an instant need look back.
LONGEST_BOOKING_MINUTES = 7 * 24 * 60
LONGEST_BUFFER_MINUTES = 24 * 60
LONGEST_BUFFER = timedelta(minutes=LONGEST_BUFFER_MINUTES)
LONGEST_BLOCK = timedelta(minutes=LONGEST_BOOKING_MINUTES) + LONGEST_BUFFER


class Rules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An owner's booking rules for one resource; the booking service enforces them."""

    min_minutes: Annotated[int, Meta(ge=1, le=LONGEST_BOOKING_MINUTES)] = 30
    max_minutes: Annotated[int, Meta(ge=1, le=LONGEST_BOOKING_MINUTES)] = 240
    lead_minutes: Annotated[int, Meta(ge=0, le=365 * 24 * 60)] = 0
    horizon_days: Annotated[int, Meta(ge=1, le=3 * 365)] = 90
    buffer_minutes: Annotated[int, Meta(ge=0, le=LONGEST_BUFFER_MINUTES)] = 0
    slot_minutes: Annotated[int, Meta(ge=1, le=24 * 60)] = 15


class BookingChanged(msgspec.Struct, frozen=True):
    """The data of every `booking.*` event: the booking as the change left it.

    `start` and `end` carry the venue's UTC offset, and `timezone` names the venue's zone;
    `owner_org` is the venue's organisation, `org` the booking's, `booked_by` the `sub` of the
    token that made it; `version` is 1 when made and rises by one with every change (notify's
    iTIP SEQUENCE). The fields after `org` came later: their defaults read an event written
    before them (its instants were in UTC).
    """

    id: str
    venue_id: str
    resource_ids: list[str]
    start: datetime
    end: datetime
    status: str
    org: str
    owner_org: str = ""
    booked_by: str = ""
    hold: bool = False
    purpose: str = ""
    version: int = 1
    timezone: str = "UTC"
    # Who made this change, for the people told of it: `booker` (the booking's own org),
    # `venue` (a manager of the venue), `office`, or `service` (the lecturer service moving its
    # hold); empty where nobody acted (a closure, the booking made) or the event predates it.
    actor: str = ""
    # The reason given with a cancel or a rejection, where one was.
    reason: str | None = None


# Identity's events, for notify. `role` is one of the person roles of `shared.auth.Role`, `locale`
# `zh-CN` or `en`. The `token` and `link` of an invitation or a reset are credentials: the relay
# removes them from identity's outbox once the event is sent (`shared.events.SECRET_FIELDS`).


class UserInvited(msgspec.Struct, frozen=True):
    """`user.invited`: mail the invitee its link (`{WEB_URL}/invite/{token}`)."""

    invitation_id: str
    email: str
    name: str | None
    org: str
    org_name: str
    role: str
    lecturer_id: str | None
    locale: str
    invited_by: str
    expires_at: datetime
    token: str
    link: str


class UserJoined(msgspec.Struct, frozen=True):
    """`user.joined`: an invitation was accepted, by a new account or an existing one."""

    user_id: str
    email: str
    name: str
    locale: str
    org: str
    role: str
    lecturer_id: str | None
    invitation_id: str
    new_account: bool


class UserDisabled(msgspec.Struct, frozen=True):
    """`user.disabled`: the account can no longer sign in; its tokens are revoked."""

    user_id: str
    email: str
    disabled_by: str


class PasswordResetRequested(msgspec.Struct, frozen=True):
    """`password.reset_requested`: mail the user its link (`{WEB_URL}/reset/{token}`)."""

    user_id: str
    email: str
    name: str
    locale: str
    expires_at: datetime
    token: str
    link: str


class Membership(msgspec.Struct, frozen=True):
    """One of a user's memberships as identity lists it: a lecturer's names its `lecturer_id`."""

    org: str
    role: str
    lecturer_id: str | None = None


class Person(msgspec.Struct, frozen=True):
    """A user as notify reads one from identity (`GET /v1/users`): whom to write, in what
    language. The rest of identity's user shape is not read, so it may grow freely."""

    id: str
    email: str
    name: str = ""
    locale: str = "zh-CN"
    disabled: bool = False
    memberships: list[Membership] = msgspec.field(default_factory=list)


class OfferChanged(msgspec.Struct, frozen=True, kw_only=True):
    """The data of every `offer.*` event: the offer as the change left it (its read shape), with
    what its lecturer is told.

    `version` is the offer's revision (its `sequence`: 0 when offered, raised by one with every
    change), which the lecturer's feed shows as SEQUENCE and notify's iTIP parts too. `start`,
    `end` and `expires_at` carry the venue's UTC offset and `timezone` names its zone. The
    lecturer's name and address are the lecturer record's, for a lecturer without an account.
    `accept_url` and `decline_url` (the web service's one-click pages) come with `offer.created`
    alone. The fields after `updated_at` came later: their defaults read an older event.
    """

    id: str
    request_id: str
    lecturer_id: str
    venue_id: str
    booking_id: str
    start: datetime
    end: datetime
    status: str
    expires_at: datetime
    session_index: int = 0
    topic: str = ""
    sequence: int = 0
    reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0
    timezone: str = "UTC"
    venue_name: str = ""
    venue_address: str = ""
    lecturer_name: str = ""
    lecturer_email: str | None = None
    accept_url: str | None = None
    decline_url: str | None = None
