"""The payloads that cross service lines stay readable as they grow, and keep what they say."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import msgspec

from shared.contracts import BookingChanged
from shared.events import decode
from shared.outbox import outbox_row


def test_a_booking_event_written_before_its_newer_fields_still_reads() -> None:
    """An event already in a queue when booking began to say who booked, and the version."""
    old = {
        "id": "b-1",
        "venue_id": "v-1",
        "resource_ids": ["r-1"],
        "start": "2026-12-01T10:00:00Z",
        "end": "2026-12-01T12:00:00Z",
        "status": "cancelled",
        "org": "org-a",
    }
    changed = msgspec.convert(old, BookingChanged, strict=False)
    assert changed.start == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert (changed.owner_org, changed.booked_by, changed.hold, changed.purpose) == (
        "",
        "",
        False,
        "",
    )
    assert (changed.version, changed.timezone) == (1, "UTC")


def test_a_booking_event_keeps_the_venues_wall_clock_through_the_queue() -> None:
    """Notify writes the times as the venue reads them: the offset survives encoding."""
    shanghai = ZoneInfo("Asia/Shanghai")
    sent = BookingChanged(
        id="b-1",
        venue_id="v-1",
        resource_ids=["r-1"],
        start=datetime(2026, 12, 1, 18, tzinfo=shanghai),
        end=datetime(2026, 12, 1, 20, tzinfo=shanghai),
        status="pending",
        org="org-v",
        owner_org="org-v",
        booked_by="lecturers",
        hold=True,
        purpose="书法课",
        version=3,
        timezone="Asia/Shanghai",
    )
    data = decode(outbox_row(source="booking", type="booking.created", data=sent)["payload"]).data
    assert (data["start"], data["end"]) == (
        "2026-12-01T18:00:00+08:00",
        "2026-12-01T20:00:00+08:00",
    )
    received = msgspec.convert(data, BookingChanged, strict=False)
    assert received == sent
    assert received.start.utcoffset() == sent.start.utcoffset()
