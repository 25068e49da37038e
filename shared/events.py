"""Domain events: their envelope, the routing table, and the shapes that cross service lines.

An event is written to the producer's outbox in the same transaction as the change it reports;
the relay then puts it on the arq queue of every service that subscribes to its type.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from shared.config import SERVICES, ServiceName

HANDLE_EVENT_JOB = "handle_event"


class Event(msgspec.Struct, frozen=True, omit_defaults=True):
    """The envelope every event travels in; `data` is the event type's own payload.

    `request_id` is the id of the request that caused the event, so its handling can be traced
    back to it; None (and left out of the payload) where there was none. Payloads from before it
    existed still decode, and consumers that predate it ignore it.
    """

    id: str
    type: str
    source: ServiceName
    occurred_at: datetime
    data: dict[str, Any]
    request_id: str | None = None


# Which service consumes which event types: a type matches a subscription when it equals it or
# starts with it (`resource.` takes `resource.created`, `resource.deleted`, ...).
SUBSCRIPTIONS: dict[ServiceName, tuple[str, ...]] = {
    "registry": (
        "booking.created",
        "booking.confirmed",
        "booking.cancelled",
        "booking.rejected",
    ),
    "booking": ("venue.", "resource.", "opening_hours.changed"),
    # The lecturers' own events too: a run asked for, and an offer closed without a lecture
    # (its hold released and the session re-offered), are handled by their worker.
    "lecturers": (
        "booking.cancelled",
        "booking.rejected",
        "venue.",
        "matching.requested",
        "offer.declined",
        "offer.expired",
        "offer.cancelled",
    ),
    "identity": (),
    # Notify tells people what happened: bookings, offers, invitations, password resets.
    "notify": (
        "booking.",
        "offer.",
        "user.invited",
        "password.reset_requested",
    ),
}


# Fields of an event's data that are credentials (a single-use link and its token): they exist in
# clear only on the way to their consumer, and the relay removes them from the stored outbox row
# in the transaction that marks it sent.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "user.invited": ("token", "link"),
    "password.reset_requested": ("token", "link"),
}


def scrubbed(event_type: str, payload: bytes) -> bytes | None:
    """`payload` without the secret fields of its type; None where the type has none."""
    secret = SECRET_FIELDS.get(event_type)
    if not secret:
        return None
    event = decode(payload)
    data = {key: value for key, value in event.data.items() if key not in secret}
    return encode(msgspec.structs.replace(event, data=data))


def consumers_of(event_type: str) -> list[ServiceName]:
    return [
        service
        for service in SERVICES
        if any(
            event_type == topic or (topic.endswith(".") and event_type.startswith(topic))
            for topic in SUBSCRIPTIONS.get(service, ())
        )
    ]


def queue_name(service: ServiceName) -> str:
    """The arq queue of a service; each service has its own, named after it."""
    return f"commonroom:{service}"


def encode(event: Event) -> bytes:
    return msgspec.msgpack.encode(event)


def decode(payload: bytes) -> Event:
    return msgspec.msgpack.decode(payload, type=Event)
