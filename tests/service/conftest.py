"""One service at a time, through HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from services.registry import store as registry_store
from services.registry.app import create_app as create_registry
from tests.conftest import make_settings, migrated_database, wipe

REGISTRY = Path(registry_store.__file__).parent


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def registry_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    async for url in migrated_database(
        request.param, REGISTRY, request, tmp_path_factory.mktemp("registry")
    ):
        yield url


@pytest.fixture
async def registry(registry_db: str, redis_url: str) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    await wipe(registry_db, registry_store.Base.metadata)
    app = create_registry(make_settings(redis_url, registry=registry_db))
    async with AsyncTestClient(app=app) as client:
        yield client
