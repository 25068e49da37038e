"""The count of bookings waiting for a venue manager's approval, shown in the navigation of
every page. Booking is asked at most once per session every `BADGE_SECONDS` (one call); the
manager's venues, which change seldom, are asked of the registry at most every
`VENUES_SECONDS`. Both are kept in Redis meanwhile, and the count is forgotten when the manager
approves or rejects, so the count it sees next is the new one."""

from __future__ import annotations

import hashlib
from typing import Final

import msgspec
from redis.asyncio import Redis

from services.web.clients import VenueDeskClient
from services.web.domain.venue_desk import awaiting, managed

BADGE_SECONDS: Final = 30
VENUES_SECONDS: Final = 300
_PREFIX: Final = "commonroom:web:approvals-badge:"


def _key(what: str, session_id: str) -> str:
    return f"{_PREFIX}{what}:{hashlib.sha256(session_id.encode()).hexdigest()}"


async def _venue_ids(
    redis: Redis, desk: VenueDeskClient, session_id: str, token: str, org: str
) -> list[str]:
    cached = await redis.get(_key("venues", session_id))
    if cached is not None:
        return msgspec.json.decode(cached, type=list[str])
    ids = [venue.id for venue in managed("venue_manager", org, await desk.venues(token))]
    await redis.set(_key("venues", session_id), msgspec.json.encode(ids), ex=VENUES_SECONDS)
    return ids


async def pending_approvals(
    redis: Redis, desk: VenueDeskClient, session_id: str, token: str, org: str
) -> int:
    """How many bookings at the venue manager's venues wait for its decision."""
    cached = await redis.get(_key("count", session_id))
    if cached is not None:
        return int(cached)
    venue_ids = await _venue_ids(redis, desk, session_id, token, org)
    count = len(awaiting(await desk.pending(token, hold=False), venue_ids))
    await remember_pending_approvals(redis, session_id, count)
    return count


async def remember_pending_approvals(redis: Redis, session_id: str, count: int) -> None:
    """The count the approvals page has just counted itself, so the navigation agrees."""
    await redis.set(_key("count", session_id), count, ex=BADGE_SECONDS)


async def forget_pending_approvals(redis: Redis, session_id: str) -> None:
    await redis.delete(_key("count", session_id))
