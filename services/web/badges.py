"""The count of bookings waiting for a venue manager's approval, shown in the navigation of
every page: asked of the registry and booking at most once per session every
`BADGE_SECONDS` (two calls at once), kept in Redis meanwhile, and forgotten when the manager
approves or rejects, so the count it sees next is the new one."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Final

from redis.asyncio import Redis

from services.web.clients import VenueDeskClient
from services.web.domain.venue_desk import awaiting, managed

BADGE_SECONDS: Final = 30
_PREFIX: Final = "commonroom:web:approvals-badge:"


def _key(session_id: str) -> str:
    return _PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


async def pending_approvals(
    redis: Redis, desk: VenueDeskClient, session_id: str, token: str, org: str
) -> int:
    """How many bookings at the venue manager's venues wait for its decision."""
    cached = await redis.get(_key(session_id))
    if cached is not None:
        return int(cached)
    venues, bookings = await asyncio.gather(desk.venues(token), desk.pending(token, hold=False))
    mine = [venue.id for venue in managed("venue_manager", org, venues)]
    count = len(awaiting(bookings, mine))
    await redis.set(_key(session_id), count, ex=BADGE_SECONDS)
    return count


async def forget_pending_approvals(redis: Redis, session_id: str) -> None:
    await redis.delete(_key(session_id))


async def remember_pending_approvals(redis: Redis, session_id: str, count: int) -> None:
    """The count the approvals page has just counted itself, so the navigation agrees."""
    await redis.set(_key(session_id), count, ex=BADGE_SECONDS)
