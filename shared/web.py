"""What every service's Litestar app shares: wiring, dependencies, health, metrics, paging,
idempotency.

A service's `app.py` calls `create_service_app` with its routes; handlers then ask for
`principal` (the verified caller) and `session` (the request's one transaction) by name.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import httpx
import msgspec
from litestar import Litestar, Request, Response, get
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import MediaType
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Schema,
    SecurityScheme,
)
from litestar.params import FromPath, QueryParameter
from litestar.types import ControllerRouterHandler
from prometheus_client import CONTENT_TYPE_LATEST
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from shared import idempotency
from shared.auth import Principal, PublishedKeys, Revocations, TokenVerifier
from shared.config import ServiceName, Settings
from shared.db import Database, connect
from shared.errors import FieldError, InvalidRequest, ServiceUnavailable
from shared.events import queue_name
from shared.idempotency import Keyed
from shared.ids import is_uuid
from shared.observability import RequestLog, RequestObservability, ServiceMetrics
from shared.outbox import OutboxTables, unsent_count
from shared.problems import EXCEPTION_HANDLERS, document_problems

T = TypeVar("T")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# The most ids one request may name in a filter (`?venue_id=A&venue_id=B...`): a page's worth, in
# a URL of a few kilobytes. A caller with more asks in chunks (`ServiceClient.every_of`).
MAX_IDS = 100
_log = logging.getLogger("commonroom.web")

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[str | None, QueryParameter(max_length=200, description="from next_cursor")]
Ids = Annotated[list[str] | None, QueryParameter(max_items=MAX_IDS, description="repeatable")]
# What handlers ask to be injected: the authenticated caller and the request's transaction.
Caller = NamedDependency[Principal]
DbSession = NamedDependency[AsyncSession]
# The transaction of a route that takes no bearer token (its parameter is `public_session`).
PublicDbSession = NamedDependency[AsyncSession]
PathId = FromPath[str]
From = Annotated[datetime, QueryParameter(name="from", description="RFC 3339 instant with offset")]
To = Annotated[datetime, QueryParameter(name="to", description="RFC 3339 instant with offset")]


def also_answered_as(*media_types: str, status: int = 200) -> type[Operation]:
    """An operation class (a route's `operation_class`) whose `status` answer is documented in
    each of `media_types` too, as the bytes of that type, beside its JSON: one answer in several
    content types, which Litestar's return annotation cannot say (a union of the JSON shape and
    `Response[bytes]` documents `oneOf: [{}, shape]`, which every JSON body matches twice)."""

    @dataclass
    class AnsweredInSeveralTypes(Operation):
        def __post_init__(self) -> None:
            answer = (self.responses or {})[str(status)]
            if isinstance(answer, OpenAPIResponse) and answer.content is not None:
                for media_type in media_types:
                    answer.content[media_type] = OpenAPIMediaType(
                        schema=Schema(type=OpenAPIType.STRING, content_media_type=media_type)
                    )

    return AnsweredInSeveralTypes


def answer_spec(data: Any, description: str, *, media_type: str = MediaType.JSON) -> ResponseSpec:
    """A documented answer, without the examples Litestar would make up for it: they are random
    at every start, so each process would publish another document (and a fuzzer reading it
    would test another API on every run)."""
    return ResponseSpec(
        data_container=data,
        description=description,
        media_type=media_type,
        generate_examples=False,
    )


@dataclass
class ServiceState:
    """What a running service holds: its settings, database and Redis connection."""

    name: ServiceName
    settings: Settings
    database: Database
    tables: OutboxTables
    redis: Redis
    verifier: TokenVerifier
    metrics: ServiceMetrics
    extras: dict[str, Any] = field(default_factory=dict)


def service_state(state: State) -> ServiceState:
    held: ServiceState = state["service"]
    return held


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    return await service_state(request.app.state).verifier(request.headers.get("authorization"))


async def provide_session(
    request: Request[Any, Any, Any],
    principal: Caller,  # noqa: ARG001 - asked for so the token is checked first
) -> AsyncIterator[AsyncSession]:
    """The request's single unit of work: committed after the handler, rolled back on error.

    It waits for the caller's token to be checked: resolved side by side, a refused token left
    an opened session unclosed (asyncio logged it at ERROR, once per request). A guard could do
    the same, but Litestar copies the route handler for each guard call: a quarter of booking's
    throughput, measured."""
    async with _unit_of_work(request) as session:
        yield session


async def provide_public_session(request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
    """The same, for the few routes whose only credential is in the URL (feeds, signed links)."""
    async with _unit_of_work(request) as session:
        yield session


def _unit_of_work(request: Request[Any, Any, Any]) -> AbstractAsyncContextManager[AsyncSession]:
    database = service_state(request.app.state).database
    return database.read() if request.method in READ_METHODS else database.write()


class Page(msgspec.Struct, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        last_id = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        last_id = ""
    if not is_uuid(last_id):
        raise InvalidRequest(
            "the cursor is not one this service gave out",
            errors=[FieldError("cursor", "unknown cursor")],
        )
    return last_id


def page_of(items: Sequence[T], limit: int, id_of: Callable[[T], str]) -> Page[T]:
    """A page from up to `limit + 1` rows fetched in id order: the extra row says there is more."""
    more = len(items) > limit
    shown = list(items[:limit])
    return Page(items=shown, next_cursor=encode_cursor(id_of(shown[-1])) if more else None)


async def request_key(request: Request[Any, Any, Any], principal: Principal) -> Keyed | None:
    """The request's Idempotency-Key, if it sent one (422 when it is malformed)."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    idempotency.check_key(key)
    return Keyed(
        scope=f"{principal.sub}:{request.method}:{request.url.path}",
        key=key,
        fingerprint=idempotency.fingerprint(await request.body()),
    )


async def create_once(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    principal: Principal,
    make: Callable[[], Awaitable[msgspec.Struct]],
    *,
    status: int = 201,
) -> Response[bytes]:
    """Run a create under the request's Idempotency-Key, if it sent one."""
    keyed = await request_key(request, principal)
    if keyed is None:
        return Response(msgspec.json.encode(await make()), status_code=status)
    table = service_state(request.app.state).tables.idempotency_keys
    replay = await idempotency.claim(
        session,
        table,
        scope=keyed.scope,
        key=keyed.key,
        body_fingerprint=keyed.fingerprint,
        now=datetime.now(UTC),
    )
    if replay is not None:
        return Response(replay.body, status_code=replay.status)
    body = msgspec.json.encode(await make())
    await idempotency.remember(
        session, table, scope=keyed.scope, key=keyed.key, status=status, body=body
    )
    return Response(body, status_code=status)


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)


# No token: `security=[{}]` lifts the document's bearer requirement for the probes.
@get("/health/live", include_in_schema=True, tags=["health"], security=[{}])
async def live() -> Health:
    return Health(status="ok")


@get("/health/ready", include_in_schema=True, tags=["health"], security=[{}])
async def ready(state: State) -> Health:
    held = service_state(state)
    checks: dict[str, str] = {}
    try:
        await held.database.ping()
        checks["database"] = "ok"
    except Exception as exc:
        raise ServiceUnavailable("the database does not answer", code="not_ready") from exc
    try:
        await held.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        raise ServiceUnavailable("redis does not answer", code="not_ready") from exc
    return Health(status="ok", checks=checks)


@get("/metrics", include_in_schema=False)
async def metrics(state: State) -> Response[bytes]:
    """Prometheus metrics, in its text format. No token: the operator's scraper reads it from
    inside the cluster, and it tells counts and timings, no data of anyone. Left out of the
    OpenAPI document, which describes the API clients use.

    Queue depth and outbox backlog are read now, at scrape time; where Redis or the database does
    not answer, that gauge reads NaN and the rest is still served.
    """
    held = service_state(state)
    gauges = held.metrics
    try:
        gauges.queue_depth.set(await held.redis.zcard(queue_name(held.name)))
    except Exception:  # an unreachable Redis must not take the other metrics down with it
        _log.warning("queue depth unknown: redis does not answer", exc_info=True)
        gauges.queue_depth.set(math.nan)
    try:
        gauges.outbox_backlog.set(await unsent_count(held.database, held.tables))
    except Exception:  # likewise an unreachable database
        _log.warning("outbox backlog unknown: the database does not answer", exc_info=True)
        gauges.outbox_backlog.set(math.nan)
    # Set as a header: from a `text/` media type Litestar would make a second `charset`.
    return Response(gauges.render(), headers={"content-type": CONTENT_TYPE_LATEST})


# How long a verifier waits for identity's key set before it counts identity as away.
JWKS_TIMEOUT_SECONDS = 3.0
KeySource = Callable[[ServiceState], Awaitable[bytes]]


def jwks_from_identity(settings: Settings) -> tuple[httpx.AsyncClient, KeySource]:
    """A client of identity's published keys, and the source that reads them through it."""
    http = httpx.AsyncClient(
        base_url=settings.service_url("identity"), timeout=JWKS_TIMEOUT_SECONDS
    )

    async def fetch(_: ServiceState) -> bytes:
        response = await http.get("/.well-known/jwks.json")
        response.raise_for_status()
        return response.content

    return http, fetch


def create_service_app(
    *,
    name: ServiceName,
    settings: Settings,
    tables: OutboxTables,
    route_handlers: Sequence[ControllerRouterHandler],
    version: str = "1.0.0",
    on_start: Callable[[ServiceState], Awaitable[None]] | None = None,
    on_stop: Callable[[ServiceState], Awaitable[None]] | None = None,
    key_source: KeySource | None = None,
    dependencies: dict[str, Provide] | None = None,
) -> Litestar:
    """The Litestar app of one service, with the suite's errors, auth, sessions, health, metrics
    and request ids. Tokens are checked against identity's published keys (`key_source`, where
    identity itself reads its own keys rather than asking itself over HTTP)."""
    document_problems([live, ready, *route_handlers])
    service_metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        database = connect(settings.database_url(name), pool_size=settings.db_pool_size)
        redis: Redis = Redis.from_url(settings.redis_url)
        jwks_http: httpx.AsyncClient | None = None
        source = key_source
        if source is None:
            jwks_http, source = jwks_from_identity(settings)
        revocations = Revocations()
        held_source = source

        async def fetch_keys() -> bytes:
            return await held_source(held)

        held = ServiceState(
            name=name,
            settings=settings,
            database=database,
            tables=tables,
            redis=redis,
            verifier=TokenVerifier(
                PublishedKeys(fetch_keys, max_age=settings.jwks_max_age_seconds),
                revocations,
                issuer=settings.issuer,
            ),
            metrics=service_metrics,
        )
        app.state["service"] = held
        poller = asyncio.create_task(
            revocations.poll(redis, settings.revocation_poll_seconds), name="revocations"
        )
        try:
            if on_start is not None:
                await on_start(held)
            # What start-up made lives as long as the process: keep it out of every collection,
            # so a full collection under load walks only what requests made.
            gc.freeze()
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            if on_stop is not None:
                await on_stop(held)
            if jwks_http is not None:
                await jwks_http.aclose()
            await redis.aclose()
            await database.dispose()

    config = AppConfig(
        route_handlers=[live, ready, metrics, *route_handlers],
        dependencies={
            "principal": Provide(provide_principal),
            "session": Provide(provide_session),
            "public_session": Provide(provide_public_session),
            **(dependencies or {}),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        # Logging belongs to the process (`configure_logging`), not to each app: Litestar's default
        # would replace the root logger's handlers every time an app is built.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title=f"Commonroom {name}",
            version=version,
            path="/schema",
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
            security=[{"BearerToken": []}],
        ),
    )
    app = Litestar.from_config(config)
    # Around Litestar's whole handler rather than in `middleware=`, which Litestar applies per
    # route after routing: requests that match no route would escape it, and it would add an
    # exception-handling layer to every route.
    app.asgi_handler = RequestObservability(app.asgi_handler, service_metrics, RequestLog(name))
    return app
