"""What to do with a delivery: send it, drop it, or try it again later. Pure rules over the
outcome of a try and the clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, Literal

import msgspec

# A message not through after a day is news no longer; mark it failed rather than send it late.
GIVE_UP_AFTER: Final = timedelta(days=1)
FIRST_RETRY: Final = timedelta(seconds=30)
LONGEST_RETRY: Final = timedelta(hours=1)


class Outcome(msgspec.Struct, frozen=True):
    """What the mail server (or the .eml folder) made of one message."""

    kind: Literal["sent", "temporary", "permanent"]
    error: str = ""


SENT = Outcome("sent")


def why_not_send(
    *,
    now: datetime,
    created_at: datetime,
    moot_at: datetime | None,
    calendar_sequence: int | None,
    last_sent_sequence: int | None,
    while_status: str | None = None,
    status_now: str | None = None,
) -> str | None:
    """Why a delivery taken to be sent must not go (its reason, for `last_error`), or None.

    `while_status` is the status what it tells of must still have for it to matter (an offer's
    links while `offered`, a reminder while `confirmed`), `status_now` the one it has."""
    if (
        calendar_sequence is not None
        and last_sent_sequence is not None
        and calendar_sequence < last_sent_sequence
    ):
        return f"superseded: SEQUENCE {last_sent_sequence} was sent after it"
    if while_status is not None and status_now is not None and status_now != while_status:
        return f"moot: it is {status_now} now"
    if moot_at is not None and now >= moot_at:
        return "moot: what it tells of has begun or expired"
    if now - created_at >= GIVE_UP_AFTER:
        return "not sent within a day"
    return None


def next_try(now: datetime, attempts: int) -> datetime:
    """When to try again after `attempts` tries: 30 s, doubling, at most an hour apart."""
    wait: timedelta = min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_RETRY)
    return now + wait
