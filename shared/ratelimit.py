"""A request rate limit shared by every replica: a counter per key and fixed window in Redis.

It fails open. When Redis does not answer within `REDIS_BUDGET_SECONDS` the request goes on
uncounted: a limit exists to stop abuse, and Redis being away must not stop bookings.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

_log = logging.getLogger("commonroom.ratelimit")
REDIS_BUDGET_SECONDS = 0.25


def token_key(authorization: str) -> str:
    """A key per bearer token that does not keep the token itself in Redis."""
    return hashlib.sha256(authorization.encode()).hexdigest()[:32]


async def take(redis: Redis, key: str, *, limit: int, per_seconds: int, now: float) -> int | None:
    """Count one use of `key`; when that passes `limit` in the current window, the seconds until
    the window ends (a Retry-After), else None."""
    window = int(now // per_seconds)
    name = f"commonroom:rate:{key}:{window}"
    try:
        async with asyncio.timeout(REDIS_BUDGET_SECONDS):
            pipeline = redis.pipeline(transaction=False)
            pipeline.incr(name)
            pipeline.expire(name, 2 * per_seconds)
            count, _ = await pipeline.execute()
    except (RedisError, OSError, TimeoutError):
        _log.warning("rate limit not counted: Redis did not answer")
        return None
    if int(count) <= limit:
        return None
    return max(1, per_seconds - int(now % per_seconds))
