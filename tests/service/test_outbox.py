"""The outbox relay against a real Redis: one job per subscriber, sent once, never lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from arq.connections import ArqRedis, create_pool
from arq.jobs import Job
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry import store
from shared.db import Database, connect
from shared.events import Event, decode, queue_name
from shared.outbox import Moved, PreparedHandler, handle_once, publish, relay_pending
from shared.worker import deserialize, redis_settings, serialize
from tests.conftest import wipe


@pytest.fixture
async def database(registry_db: str) -> AsyncIterator[Database]:
    await wipe(registry_db, store.Base.metadata)
    database = connect(registry_db)
    yield database
    await database.dispose()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(
        redis_settings(redis_url), job_serializer=serialize, job_deserializer=deserialize
    )
    await pool.flushdb()
    yield pool
    await pool.aclose()


async def test_relay_enqueues_one_job_per_subscriber_with_the_event_id(
    database: Database, redis: ArqRedis
) -> None:
    async with database.write() as session:
        event_id = await publish(
            session, store.tables, source="registry", type="resource.updated", data={"id": "r1"}
        )
    assert await relay_pending(database, store.tables, redis) == 1
    job = Job(
        f"{event_id}:booking", redis, _queue_name=queue_name("booking"), _deserializer=deserialize
    )
    info = await job.info()
    assert info is not None
    assert info.function == "handle_event"
    delivered = decode(info.args[0])
    assert (delivered.id, delivered.type, delivered.data) == (
        event_id,
        "resource.updated",
        {"id": "r1"},
    )
    assert await redis.zcard(queue_name("booking")) == 1
    # Sent events are not sent again.
    assert await relay_pending(database, store.tables, redis) == 0
    async with database.read() as session:
        sent_at = await session.scalar(select(store.tables.outbox.c.sent_at))
    assert sent_at is not None


async def test_an_event_is_not_marked_sent_while_redis_is_down(
    database: Database, redis: ArqRedis
) -> None:
    async with database.write() as session:
        await publish(
            session, store.tables, source="registry", type="venue.deleted", data={"id": "v"}
        )
    unreachable = ArqRedis(host="127.0.0.1", port=1, job_serializer=serialize)
    with pytest.raises(RedisConnectionError):
        await relay_pending(database, store.tables, unreachable)
    await unreachable.aclose()
    # Redis is back: the event goes out then, once.
    assert await relay_pending(database, store.tables, redis) == 1
    assert await redis.zcard(queue_name("booking")) == 1


async def test_a_redelivered_event_changes_nothing(database: Database) -> None:
    applied: list[str] = []

    async def handler(session: AsyncSession, event: Event) -> None:
        applied.append(event.id)

    event = Event(
        id="e-1", type="booking.created", source="booking", occurred_at=datetime.now(UTC), data={}
    )
    handlers = {"booking.created": handler}
    assert await handle_once(database, store.tables, event, handlers)
    assert not await handle_once(database, store.tables, event, handlers)
    assert applied == ["e-1"]


async def test_a_failing_handler_leaves_the_event_to_be_handled_again(database: Database) -> None:
    attempts: list[int] = []

    async def flaky(session: AsyncSession, event: Event) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first try fails")

    event = Event(
        id="e-2", type="booking.created", source="booking", occurred_at=datetime.now(UTC), data={}
    )
    with pytest.raises(RuntimeError):
        await handle_once(database, store.tables, event, {"booking.created": flaky})
    assert await handle_once(database, store.tables, event, {"booking.created": flaky})
    assert len(attempts) == 2


async def test_a_prepared_handler_prepares_outside_its_transaction_and_again_when_it_moved(
    database: Database,
) -> None:
    """`prepare` runs with no transaction of the event's open (here it writes in one of its own,
    which SQLite's one write lock would refuse inside it); an `apply` that finds what was read
    has moved sends it back to prepare; a redelivered event prepares nothing."""
    applied: list[int] = []

    async def prepare(database: Database, event: Event) -> int:
        async with database.write() as session:
            await publish(session, store.tables, source="registry", type="venue.updated", data={})
        async with database.read() as session:
            return len((await session.execute(select(store.tables.outbox.c.seq))).all())

    async def apply(session: AsyncSession, prepared: int) -> None:
        if prepared == 1:
            raise Moved("read before the second write")
        applied.append(prepared)

    event = Event(
        id="e-3", type="venue.updated", source="registry", occurred_at=datetime.now(UTC), data={}
    )
    handlers = {"venue.updated": PreparedHandler(prepare=prepare, apply=apply)}
    assert await handle_once(database, store.tables, event, handlers)
    assert applied == [2]
    assert not await handle_once(database, store.tables, event, handlers)
    assert applied == [2]
    async with database.read() as session:
        assert len((await session.execute(select(store.tables.outbox.c.seq))).all()) == 2
