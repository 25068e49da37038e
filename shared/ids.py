"""Ids: UUIDs whose text sorts in creation order (the UUIDv7 layout), so lists page by id."""

from __future__ import annotations

import os
import time
import uuid
from typing import Annotated

from msgspec import Meta

# A UUID, nothing else: an id goes into queries and into the URLs of calls to other services.
# The length too, since a pattern's `$` would let a trailing newline through.
Id = Annotated[
    str,
    Meta(
        min_length=36,
        max_length=36,
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    ),
]


def new_id() -> str:
    """A fresh UUIDv7 string: 48 bits of Unix milliseconds, then 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return str(uuid.UUID(int=value))


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
