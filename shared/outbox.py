"""The transactional outbox, its relay to the queue, and the consumer's once-only guard.

- `publish` adds an event to the outbox inside the caller's transaction: no change without its
  event, no event without its change.
- `relay_pending` enqueues unsent events on each subscriber's arq queue with job id
  `<event id>:<consumer>`, and marks them sent only after Redis took them; stopping Redis delays
  events and loses none. Marking them sent removes their secret fields (`SECRET_FIELDS`) from the
  stored payload in the same transaction.
- `unsent_count` is the relay's backlog, which each service reports as a metric.
- `handle_once` records the event id in the consumer's own database in the same transaction as the
  handler's effect, so an event delivered twice changes nothing the second time. A handler that
  must ask another service first is a `PreparedHandler`: it asks before the transaction, and
  writes what it found inside it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import msgspec
from arq.connections import ArqRedis
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.config import ServiceName
from shared.db import Database, UTCDateTime
from shared.events import HANDLE_EVENT_JOB, Event, consumers_of, encode, queue_name, scrubbed
from shared.ids import new_id
from shared.observability import current_request_id

_log = logging.getLogger("commonroom.outbox")

EventHandler = Callable[[AsyncSession, Event], Awaitable[None]]
Prepared = TypeVar("Prepared")
# How often a prepared handler reads again because its event's effect moved under it, before its
# job is tried again later (`Moved`).
PREPARE_TRIES = 5


class Moved(Exception):
    """What a handler prepared outside its transaction no longer holds inside it (another event
    of the same thing was handled in between): it must be prepared again."""


@dataclass(frozen=True)
class PreparedHandler(Generic[Prepared]):
    """A handler in two steps: `prepare` reads with no transaction open (another service over
    HTTP, its own database in short reads) and returns all that `apply` needs of the event, and
    `apply` writes it in the event's transaction, raising `Moved` where what was read has changed
    since. A write transaction held
    across a call to another service would hold every other writer (SQLite's one write lock) as
    long as the call takes."""

    prepare: Callable[[Database, Event], Awaitable[Prepared]]
    apply: Callable[[AsyncSession, Prepared], Awaitable[None]]


Handler = EventHandler | PreparedHandler[Any]


@dataclass(frozen=True)
class OutboxTables:
    """The tables every service keeps beside its own: outbox, handled events, idempotency keys."""

    outbox: Table
    handled_events: Table
    idempotency_keys: Table


def outbox_tables(metadata: MetaData) -> OutboxTables:
    # SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
    seq_type = BigInteger().with_variant(Integer(), "sqlite")
    outbox = Table(
        "outbox",
        metadata,
        Column("seq", seq_type, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("type", String(80), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("sent_at", UTCDateTime, nullable=True),
        Index(
            "ix_outbox_unsent",
            "seq",
            postgresql_where=text("sent_at IS NULL"),
            sqlite_where=text("sent_at IS NULL"),
        ),
    )
    handled = Table(
        "handled_events",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("type", String(80), nullable=False),
        Column("handled_at", UTCDateTime, nullable=False),
    )
    idempotency = Table(
        "idempotency_keys",
        metadata,
        Column("scope", String(300), primary_key=True),
        Column("key", String(200), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("status", Integer, nullable=True),
        Column("body", LargeBinary, nullable=True),
        Column("created_at", UTCDateTime, nullable=False),
    )
    return OutboxTables(outbox=outbox, handled_events=handled, idempotency_keys=idempotency)


def insert_ignoring_duplicates(session: AsyncSession, table: Table | type[Any]) -> Any:
    """An INSERT that does nothing where the row's key exists (both dialects speak it)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    return insert(table)


def outbox_row(
    *,
    source: ServiceName,
    type: str,  # noqa: A002 - the event's field is called type
    data: msgspec.Struct | Mapping[str, Any],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The outbox row of a new event, for a caller that inserts it in a statement of its own."""
    payload = msgspec.to_builtins(data) if isinstance(data, msgspec.Struct) else dict(data)
    event = Event(
        id=new_id(),
        type=type,
        source=source,
        occurred_at=now or datetime.now(UTC),
        data=payload,
        request_id=current_request_id(),
    )
    return {
        "event_id": event.id,
        "type": event.type,
        "payload": encode(event),
        "created_at": event.occurred_at,
    }


async def publish(
    session: AsyncSession,
    tables: OutboxTables,
    *,
    source: ServiceName,
    type: str,  # noqa: A002 - the event's field is called type
    data: msgspec.Struct | Mapping[str, Any],
    now: datetime | None = None,
) -> str:
    """Record an event in the outbox, in the transaction of the change it reports; its id."""
    row = outbox_row(source=source, type=type, data=data, now=now)
    # Parameters apart from the statement, so its compiled form is cached: this runs on every write.
    await session.execute(tables.outbox.insert(), row)
    return str(row["event_id"])


async def publish_all(
    session: AsyncSession,
    tables: OutboxTables,
    *,
    source: ServiceName,
    events: Iterable[tuple[str, msgspec.Struct | Mapping[str, Any]]],
    now: datetime | None = None,
) -> None:
    """Record many events, (type, data) each, in one statement: a batch's worth of changes."""
    rows = [outbox_row(source=source, type=type_, data=data, now=now) for type_, data in events]
    if rows:
        await session.execute(tables.outbox.insert(), rows)


async def unsent_count(database: Database, tables: OutboxTables) -> int:
    """How many events wait for the relay; the partial index on unsent rows answers it."""
    async with database.read() as session:
        count = await session.scalar(
            select(func.count()).select_from(tables.outbox).where(tables.outbox.c.sent_at.is_(None))
        )
    return int(count or 0)


async def relay_pending(
    database: Database, tables: OutboxTables, redis: ArqRedis, *, batch: int = 200
) -> int:
    """Enqueue one batch of unsent events; return how many were sent."""
    outbox = tables.outbox
    unsent = outbox.c.sent_at.is_(None)
    # A cheap read first: on SQLite a write transaction would take the lock every poll.
    async with database.read() as session:
        if (await session.execute(select(outbox.c.seq).where(unsent).limit(1))).first() is None:
            return 0
    async with database.write() as session:
        rows = (
            await session.execute(
                select(outbox.c.seq, outbox.c.event_id, outbox.c.type, outbox.c.payload)
                .where(unsent)
                .order_by(outbox.c.seq)
                .limit(batch)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for row in rows:
            for consumer in consumers_of(row.type):
                # arq refuses a job id it already holds, so a re-relayed event is not doubled.
                await redis.enqueue_job(
                    HANDLE_EVENT_JOB,
                    row.payload,
                    _job_id=f"{row.event_id}:{consumer}",
                    _queue_name=queue_name(consumer),
                )
        if rows:
            await session.execute(
                update(outbox)
                .where(outbox.c.seq.in_([row.seq for row in rows]))
                .values(sent_at=datetime.now(UTC))
            )
            await _scrub_secrets(session, outbox, rows)
    return len(rows)


async def _scrub_secrets(session: AsyncSession, outbox: Table, rows: Sequence[Any]) -> None:
    """Remove the credentials an event carried (an invitation's token) from its stored payload,
    in the transaction that marks it sent: from then on they exist only where it was delivered."""
    cleaned = [
        {"scrubbed_seq": row.seq, "scrubbed_payload": payload}
        for row in rows
        if (payload := scrubbed(row.type, row.payload)) is not None
    ]
    if cleaned:
        await session.execute(
            update(outbox)
            .where(outbox.c.seq == bindparam("scrubbed_seq"))
            .values(payload=bindparam("scrubbed_payload")),
            cleaned,
        )


async def relay_forever(
    database: Database,
    tables: OutboxTables,
    redis: ArqRedis,
    *,
    idle_seconds: float = 0.2,
    retry_seconds: float = 2.0,
) -> None:
    """The relay loop a worker runs beside its jobs: drain, rest briefly, and ride out outages."""
    while True:
        try:
            sent = await relay_pending(database, tables, redis)
        except Exception:  # the relay must outlive Redis and database outages
            _log.warning("outbox relay failed; retrying", exc_info=True)
            await asyncio.sleep(retry_seconds)
            continue
        if not sent:
            await asyncio.sleep(idle_seconds)


async def prune_sent(
    database: Database, tables: OutboxTables, *, older_than: timedelta, now: datetime
) -> None:
    """Drop relayed events and expired idempotency keys; both only matter for a while."""
    cutoff = now - older_than
    async with database.write() as session:
        await session.execute(
            delete(tables.outbox).where(
                tables.outbox.c.sent_at.is_not(None), tables.outbox.c.sent_at < cutoff
            )
        )
        await session.execute(
            delete(tables.idempotency_keys).where(tables.idempotency_keys.c.created_at < cutoff)
        )


async def handle_once(
    database: Database,
    tables: OutboxTables,
    event: Event,
    handlers: Mapping[str, Handler],
) -> bool:
    """Apply an event's handler unless this event id was handled before; True if applied.

    A `PreparedHandler` is prepared again (up to `PREPARE_TRIES` times) where its `apply` finds
    what it read has moved; `Moved` after that, for the job to be tried again later."""
    handler = handlers.get(event.type)
    if not isinstance(handler, PreparedHandler):
        async with database.write() as session:
            if not await _claimed(session, tables, event):
                return False
            if handler is not None:
                await handler(session, event)
        return True
    for _ in range(PREPARE_TRIES):
        # A redelivered event asks no other service.
        if await _handled(database, tables, event):
            return False
        prepared = await handler.prepare(database, event)
        try:
            async with database.write() as session:
                if not await _claimed(session, tables, event):
                    return False
                await handler.apply(session, prepared)
        except Moved:
            continue
        return True
    raise Moved(f"{event.type} {event.id} moved under its handler {PREPARE_TRIES} times")


async def _claimed(session: AsyncSession, tables: OutboxTables, event: Event) -> bool:
    """Record the event as handled in `session`'s transaction; False where it was already."""
    claimed = await session.execute(
        insert_ignoring_duplicates(session, tables.handled_events)
        .values(event_id=event.id, type=event.type, handled_at=datetime.now(UTC))
        .on_conflict_do_nothing()
        .returning(tables.handled_events.c.event_id)
    )
    return claimed.first() is not None


async def _handled(database: Database, tables: OutboxTables, event: Event) -> bool:
    handled = tables.handled_events
    async with database.read() as session:
        found = await session.execute(
            select(handled.c.event_id).where(handled.c.event_id == event.id)
        )
        return found.first() is not None
