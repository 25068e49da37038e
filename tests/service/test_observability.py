"""Request ids and metrics through a real registry app: echoed, stored with events, scraped."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client import CONTENT_TYPE_LATEST
from redis.asyncio import Redis
from sqlalchemy import select

from services.registry import store
from shared.events import Event, decode, encode, queue_name
from shared.observability import current_request_id
from shared.worker import handle_event
from tests.conftest import Tokens, database_of

Client = AsyncTestClient  # type: ignore[type-arg]


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in metrics.splitlines():
        sample_name, _, rest = line.partition("{" if labels else " ")
        if sample_name != name:
            continue
        if labels:
            found, _, rest = rest.partition("} ")
            if ",".join(sorted(found.split(","))) != wanted:
                continue
        return float(rest)
    raise AssertionError(f"no sample {name}{labels} in:\n{metrics}")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(redis_url)
    await client.delete(queue_name("registry"))
    yield client
    await client.delete(queue_name("registry"))
    await client.aclose()


async def test_the_response_echoes_the_callers_request_id(registry: Client) -> None:
    response = await registry.get("/health/live", headers={"X-Request-ID": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"


async def test_a_request_without_a_fit_request_id_gets_a_new_one(registry: Client) -> None:
    made = (await registry.get("/health/live")).headers["x-request-id"]
    replaced = (await registry.get("/health/live", headers={"X-Request-ID": "x" * 65})).headers
    assert re.fullmatch("[0-9a-f]{32}", made)
    assert re.fullmatch("[0-9a-f]{32}", replaced["x-request-id"])
    assert made != replaced["x-request-id"]


async def test_a_request_that_matches_no_route_has_a_request_id_too(registry: Client) -> None:
    response = await registry.get("/no/such/page", headers={"X-Request-ID": "lost-1"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "lost-1"


async def test_metrics_count_requests_by_route_template_and_time_them(
    registry: Client, tokens: Tokens
) -> None:
    for _ in range(2):
        missing = await registry.get(
            "/v1/venues/00000000-0000-4000-8000-000000000000", headers=tokens("office")
        )
        assert missing.status_code == 404
    await registry.get("/no/such/page")
    response = await registry.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    metrics = response.text
    venue = {"method": "GET", "route": "/v1/venues/{venue_id}"}
    assert sample(metrics, "commonroom_http_requests_total", **venue, status="404") == 2
    assert sample(metrics, "commonroom_http_request_duration_seconds_count", **venue) == 2
    assert sample(metrics, "commonroom_http_request_duration_seconds_bucket", **venue, le="+Inf")
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert sample(metrics, "commonroom_http_requests_total", **unmatched) == 1
    assert "00000000-0000-4000-8000-000000000000" not in metrics


async def test_metrics_report_queue_depth_and_outbox_backlog(
    registry: Client, tokens: Tokens, redis: Redis
) -> None:
    await redis.zadd(queue_name("registry"), {"job-a": 1, "job-b": 2, "job-c": 3})
    created = await registry.post("/v1/areas", json={"name": "城关镇"}, headers=tokens("office"))
    assert created.status_code == 201
    metrics = (await registry.get("/metrics")).text
    assert sample(metrics, "commonroom_queue_depth") == 3
    assert sample(metrics, "commonroom_outbox_backlog") == 1


async def test_metrics_need_no_token_and_stay_out_of_the_openapi_document(
    registry: Client,
) -> None:
    assert (await registry.get("/metrics")).status_code == 200
    schema = (await registry.get("/schema/openapi.json")).json()
    assert "/metrics" not in schema["paths"]


async def test_an_event_recorded_in_a_request_carries_its_request_id(
    registry: Client, tokens: Tokens
) -> None:
    created = await registry.post(
        "/v1/areas",
        json={"name": "城关镇"},
        headers={**tokens("office"), "X-Request-ID": "trace-area"},
    )
    assert created.status_code == 201
    async with database_of(registry, "registry") as database, database.read() as session:
        payloads = (await session.scalars(select(store.tables.outbox.c.payload))).all()
    assert [decode(payload).request_id for payload in payloads] == ["trace-area"]


async def test_an_event_is_handled_under_the_request_id_that_caused_it(registry: Client) -> None:
    seen: list[str | None] = []

    async def remember(session: Any, event: Event) -> None:
        seen.append(current_request_id())

    event = Event(
        id="00000000-0000-4000-8000-00000000000e",
        type="booking.created",
        source="booking",
        occurred_at=datetime.now(UTC),
        data={},
        request_id="trace-booking",
    )
    async with database_of(registry, "registry") as database:
        ctx = {
            "database": database,
            "tables": store.tables,
            "handlers": {"booking.created": remember},
        }
        assert await handle_event(ctx, encode(event))
    assert seen == ["trace-booking"]
