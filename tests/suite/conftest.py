"""The suite as it runs: each service's API and worker its own process, real Redis between them,
PostgreSQL under every service. Events travel outbox → relay → arq → the other service's worker."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from services.cli import AVAILABLE, service_package
from services.up import stop_children, wait_ready
from shared.config import ServiceName, Settings
from shared.migrations import upgrade
from tests.conftest import (
    Tokens,
    create_postgres_database,
    drop_postgres_database,
    free_port,
    make_settings,
    spawn,
)

EVENTUALLY = 30.0  # seconds for an event to cross from one service to another


class Suite:
    """Clients of every running service, acting as the office unless told otherwise."""

    def __init__(self, settings: Settings, tokens: Tokens) -> None:
        self.settings = settings
        self.tokens = tokens
        office = tokens("office")
        self.registry = self.client("registry", office)
        self.booking = self.client("booking", office)
        self.lecturers = self.client("lecturers", office)
        self.identity = self.client("identity", office)
        self.notify = self.client("notify", office)

    def client(self, service: ServiceName, headers: dict[str, str]) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.settings.service_url(service), headers=headers, timeout=30
        )

    def database_url(self, service: ServiceName) -> str:
        return self.settings.database_url(service)

    async def aclose(self) -> None:
        for client in (self.registry, self.booking, self.lecturers, self.identity, self.notify):
            await client.aclose()


@asynccontextmanager
async def running_suite(
    postgres_server_url: str, redis_url: str, tokens: Tokens, **settings: Any
) -> AsyncIterator[Suite]:
    """Every service and worker of the suite, on fresh databases and an empty Redis; `settings`
    replace fields of the defaults (`offer_ttl_hours=...`)."""
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    urls = {
        service: await create_postgres_database(postgres_server_url, f"suite_{service}")
        for service in AVAILABLE
    }
    # Identity's URL is set below with every other service's, once its port is chosen.
    configured = replace(
        make_settings(redis_url, identity_url="http://127.0.0.1:1", **urls), **settings
    )
    children: list[subprocess.Popen[bytes]] = []
    try:
        for service in AVAILABLE:
            await asyncio.to_thread(upgrade, service_package(service), urls[service])
            configured = configured.with_service_url(service, f"http://127.0.0.1:{free_port()}")
        for service in AVAILABLE:
            port = str(configured.service_url(service).rsplit(":", 1)[1])
            children.append(spawn(configured, "serve", service, "--port", port))
            children.append(spawn(configured, "worker", service))
        await asyncio.to_thread(
            wait_ready, [configured.service_url(service) for service in AVAILABLE], children
        )
        made = Suite(configured, tokens)
        try:
            yield made
        finally:
            await made.aclose()
    finally:
        stop_children(children)
        for url in urls.values():
            await drop_postgres_database(postgres_server_url, url)


@pytest.fixture
async def suite(postgres_server_url: str, redis_url: str, tokens: Tokens) -> AsyncIterator[Suite]:
    async with running_suite(postgres_server_url, redis_url, tokens) as running:
        yield running


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + EVENTUALLY
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not within {EVENTUALLY:.0f}s: {what}")
        await asyncio.sleep(0.2)


# What several suite tests set up: a venue open all year, a corps that lectures in the evenings.
OPEN_ALL_YEAR: dict[str, Any] = {
    "periods": [
        {
            "name": "全年",
            "start_date": "2026-01-01",
            "spans": [{"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "08:00", "end": "22:00"}],
        }
    ],
    "public_holidays": "open",
}
EVENINGS = [{"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "18:00", "end": "21:00"}]


def created(response: httpx.Response) -> dict[str, Any]:
    """The body of a create (or an accepted run), which must have succeeded."""
    assert response.status_code in (200, 201, 202), response.text
    body: dict[str, Any] = response.json()
    return body
