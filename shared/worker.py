"""What every service's arq worker shares: msgspec on the wire, the outbox relay, event handling,
and the request id a job runs under.

A service's `worker.py` names its event handlers and extra jobs; `worker_settings` turns them into
the keyword arguments of `arq.worker.Worker`, and `run` starts one.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from arq import Retry
from arq.connections import RedisSettings
from arq.cron import CronJob, cron
from arq.worker import Function, Worker, func
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.config import ServiceName, Settings
from shared.db import connect, database_outage
from shared.errors import ServiceUnavailable
from shared.events import HANDLE_EVENT_JOB, decode, queue_name
from shared.observability import request_context
from shared.outbox import (
    Handler,
    Moved,
    OutboxTables,
    handle_once,
    prune_sent,
    relay_forever,
)

WorkerSettings = dict[str, Any]
OUTBOX_RETENTION = timedelta(days=2)


def serialize(value: Any) -> bytes:
    return msgspec.msgpack.encode(value)


def deserialize(payload: bytes) -> Any:
    return msgspec.msgpack.decode(payload)


def redis_settings(url: str) -> RedisSettings:
    # Ride out a Redis restart instead of dying on the first refused connection.
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = 30
    settings.conn_retry_delay = 1
    # And once running: a command that meets Redis gone waits for it (capped backoff, no limit)
    # instead of raising, which would end arq's poll loop and the worker with it.
    settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, ConnectionError]
    settings.retry = RedisRetry(ExponentialBackoff(cap=2.0, base=0.1), retries=-1)
    return settings


def transient(exc: BaseException) -> bool:
    """Whether `exc` says a server is away for now (the database, or a service it called) or
    the handled thing kept moving, so the job is worth trying again later."""
    return database_outage(exc) or isinstance(exc, (ServiceUnavailable, Moved))


async def handle_event(ctx: dict[str, Any], payload: bytes) -> bool:
    """The one job every service's queue carries: an event from another service's outbox,
    handled under the id of the request that caused it, so its log lines and calls carry it."""
    event = decode(payload)
    with request_context(event.request_id):
        try:
            return await handle_once(ctx["database"], ctx["tables"], event, ctx["handlers"])
        except Exception as exc:
            # The database, or a service the handler calls, is away for now, or what it handles
            # kept moving. Nothing was recorded (the transaction rolled back): try again later;
            # arq's max_tries bounds it.
            if transient(exc):
                raise Retry(defer=min(2 * ctx.get("job_try", 1), 30)) from exc
            raise


def carrying_request_id(function: Function) -> Function:
    """`function` as a job that takes an optional `origin_request_id` keyword and runs under it.

    An enqueuer passes `origin_request_id=current_request_id()` to tie the job to the request that
    caused it; the job's own coroutine never sees the keyword. Not plain `request_id`: in the
    lecturers' domain that names a school's request for lectures.
    """
    job = function.coroutine

    async def run_under_request_id(
        ctx: dict[str, Any], *args: Any, origin_request_id: str | None = None, **kwargs: Any
    ) -> Any:
        with request_context(origin_request_id):
            return await job(ctx, *args, **kwargs)

    return dataclasses.replace(function, coroutine=run_under_request_id)


async def prune(ctx: dict[str, Any]) -> None:
    await prune_sent(
        ctx["database"], ctx["tables"], older_than=OUTBOX_RETENTION, now=datetime.now(UTC)
    )


def worker_settings(
    service: ServiceName,
    settings: Settings,
    *,
    tables: OutboxTables,
    handlers: Mapping[str, Handler],
    functions: Sequence[Function] = (),
    cron_jobs: Sequence[CronJob] = (),
    ctx: Mapping[str, Any] | None = None,
    startup: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    shutdown: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> WorkerSettings:
    """The worker of `service`: its event handlers, extra jobs and cron jobs; `startup` and
    `shutdown` see the job context (its `redis`, `database`, ...) once it is made and before it
    goes, for what a service's jobs and handlers need beyond those."""

    async def on_startup(context: dict[str, Any]) -> None:
        context["settings"] = settings
        context["database"] = connect(
            settings.database_url(service), pool_size=settings.db_pool_size
        )
        context["tables"] = tables
        context["handlers"] = handlers
        context.update(ctx or {})
        if startup is not None:
            await startup(context)
        context["relay"] = asyncio.create_task(
            relay_forever(context["database"], tables, context["redis"])
        )

    async def on_shutdown(context: dict[str, Any]) -> None:
        relay: asyncio.Task[None] | None = context.get("relay")
        if relay is not None:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
        if shutdown is not None:
            await shutdown(context)
        if "database" in context:
            await context["database"].dispose()

    return {
        "functions": [
            func(handle_event, name=HANDLE_EVENT_JOB),
            *(carrying_request_id(function) for function in functions),
        ],
        "cron_jobs": [cron(prune, minute={7}, second={0}, run_at_startup=False), *cron_jobs],
        "queue_name": queue_name(service),
        "redis_settings": redis_settings(settings.redis_url),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "job_serializer": serialize,
        "job_deserializer": deserialize,
        "max_tries": 20,
        "keep_result": 3600,
        "poll_delay": 0.1,
    }


def run(worker: WorkerSettings) -> None:
    """Run a worker until SIGINT or SIGTERM, then exit at once.

    On the signal arq cancels the running jobs (they go back on the queue) and closes; what may
    be left is a cancelled job's thread, a matching run's solver, which the interpreter would
    wait for (up to the solver's time limit) before the process ends.
    """
    from shared.processes import exit_leaving_threads

    Worker(**worker).run()
    exit_leaving_threads()
