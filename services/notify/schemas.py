"""The shapes of notify's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

Status = Literal["queued", "sent", "failed"]


class Message(msgspec.Struct, frozen=True, omit_defaults=True):
    """One delivery of the log: what went (or is to go) to whom, and how it went."""

    id: str
    event_id: str
    recipient: str
    subject: str
    status: Status
    attempts: int
    last_error: str | None = None
    sent_at: datetime | None = None
