"""Password hashing: argon2id through pwdlib, in a bounded pool of worker threads.

argon2 takes a tenth of a second of a core and releases the GIL while it works, so hashes run
beside the event loop in a pool as wide as the machine, never on it; a burst of logins queues
there instead of taking every core. Unknown users are checked against a dummy hash, so the time
of the answer does not tell whether an account exists.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

# argon2id, RFC 9106's second recommended option (64 MiB, 3 passes) with 2 lanes: about 120 ms a
# hash on one core of this 2-core machine, so a login answers in under 300 ms at the median.
TIME_COST, MEMORY_COST_KIB, PARALLELISM = 3, 65_536, 2


# Each hash holds 64 MiB while it runs: a bound on threads is a bound on memory, whatever size of
# node a container lands on.
MAX_HASHING_THREADS = 4


def hashing_threads() -> int:
    """As many threads as the cores this process may run on (its CPU set, not the node's), at
    most `MAX_HASHING_THREADS`."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_HASHING_THREADS))


class Passwords:
    def __init__(self, workers: int | None = None) -> None:
        self._hasher = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM
                ),
            )
        )
        self._pool = ThreadPoolExecutor(
            max_workers=workers or hashing_threads(), thread_name_prefix="argon2"
        )
        self._dummy = self._hasher.hash("no account has this password")

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._hasher.hash, password
        )

    async def verify(self, password: str, stored: str | None) -> tuple[bool, str | None]:
        """Whether `password` matches `stored` (None: no password, checked against a dummy all
        the same), and a new hash where the parameters have changed since it was made."""
        ok, updated = await asyncio.get_running_loop().run_in_executor(
            self._pool, self._hasher.verify_and_update, password, stored or self._dummy
        )
        return (ok and stored is not None), updated if stored is not None else None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
