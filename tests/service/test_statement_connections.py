"""The bare driver connections behind the hot paths' single statements (PostgreSQL)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.db import connect


async def test_connections_are_kept_shared_at_most_size_at_once_and_a_doubtful_one_dropped(
    postgres_server_url: str,
) -> None:
    database = connect(postgres_server_url, pool_size=2)
    try:
        statements = database.statements
        assert statements is not None
        async with database.driver() as first:
            pid = await first.fetchval("SELECT pg_backend_pid()")
        async with database.driver() as again:  # kept, and lent again
            assert await again.fetchval("SELECT pg_backend_pid()") == pid

        # Refused by the server: the connection is sound, and lent again.
        with pytest.raises(asyncpg.PostgresError):
            async with database.driver() as refused:
                await refused.execute("SELECT 1 / 0")
        async with database.driver() as after_refusal:
            assert await after_refusal.fetchval("SELECT pg_backend_pid()") == pid

        # Cancelled mid-statement: in an unknown state, so closed, never lent again.
        async def slow() -> None:
            async with database.driver() as connection:
                await connection.execute("SELECT pg_sleep(5)")

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with database.driver() as fresh:
            assert await fresh.fetchval("SELECT pg_backend_pid()") != pid

        # No more than `pool_size` statements at once: the third waits for a connection.
        running = 0
        most = 0

        async def busy() -> None:
            nonlocal running, most
            async with database.driver() as connection:
                running += 1
                most = max(most, running)
                await connection.execute("SELECT pg_sleep(0.2)")
                running -= 1

        await asyncio.gather(*(busy() for _ in range(5)))
        assert most == 2
    finally:
        await database.dispose()


async def test_sqlite_has_no_bare_driver_connections(tmp_path: object) -> None:
    database = connect(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    try:
        with pytest.raises(RuntimeError):
            database.driver()
    finally:
        await database.dispose()
