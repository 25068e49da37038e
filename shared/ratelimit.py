"""A request rate limit shared by every replica: a counter per key and fixed window in Redis.

A Redis round trip costs about 130 µs of Python, a fifth of a booking, so each process counts a
key's first uses in a window itself and only from its `quiet`-th use (a tenth of the limit) on
sends its counts to Redis, where every replica's add up. Ordinary callers, a few bookings a
minute, never wait on Redis; a caller near the limit is counted there at every `quiet` uses, so
it gets at most `quiet - 1` more per replica than the limit.

It fails open. When Redis does not answer within `REDIS_BUDGET_SECONDS` the request goes on: a
limit exists to stop abuse, and Redis being away must not stop bookings.
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


class RateLimit:
    """At most `limit` uses of a key per `per_seconds` window, across every replica."""

    def __init__(self, redis: Redis, *, name: str, limit: int, per_seconds: int) -> None:
        self._redis = redis
        self._name = name
        self.limit = limit
        self.per_seconds = per_seconds
        self.quiet = max(1, limit // 10)
        self._window = -1
        self._uncounted: dict[str, int] = {}

    async def take(self, key: str, *, now: float) -> int | None:
        """Count one use of `key`; when that passes the limit in the current window, the
        seconds until the window ends (a Retry-After), else None."""
        window = int(now // self.per_seconds)
        if window != self._window:  # a new window: what was counted here is of no more use
            self._window = window
            self._uncounted.clear()
        uncounted = self._uncounted.get(key, 0) + 1
        if uncounted < self.quiet:
            self._uncounted[key] = uncounted
            return None
        self._uncounted[key] = 0
        count = await self._add(f"commonroom:rate:{self._name}:{key}:{window}", uncounted)
        if count is None or count <= self.limit:
            return None
        return max(1, self.per_seconds - int(now % self.per_seconds))

    async def _add(self, counter: str, uses: int) -> int | None:
        try:
            async with asyncio.timeout(REDIS_BUDGET_SECONDS):
                pipeline = self._redis.pipeline(transaction=False)
                pipeline.incrby(counter, uses)
                pipeline.expire(counter, 2 * self.per_seconds)
                count, _ = await pipeline.execute()
        except (RedisError, OSError, TimeoutError):
            _log.warning("rate limit not counted: Redis did not answer")
            return None
        return int(count)
