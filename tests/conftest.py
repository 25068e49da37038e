"""Servers for the service and suite tests: PostgreSQL and Redis, real ones, never mocks.

`TEST_DATABASE_URL` (a `postgresql+asyncpg://` URL of a server where we may create databases) and
`TEST_REDIS_URL` name servers to use; without them, testcontainers starts `postgres:16` and
`redis:7` where a Docker engine answers. With neither, the tests that need a server fail with a
message that says what to set: they never skip.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.identity.domain.keys import (
    SigningKey,
    file_key,
    new_private_key_pem,
    private_key_from_pem,
)
from services.identity.domain.tokens import Membership, access_token
from services.identity.store.logins import new_sid
from services.up import child_env
from shared.auth import Role
from shared.clients_file import clients_file_text
from shared.config import ALL_SERVICE_NAMES, ServiceName, Settings
from shared.db import Database, connect
from shared.migrations import upgrade

NO_SERVER = (
    "no {what} for the tests: set {var} (CI does; see README) or run a Docker engine "
    "for testcontainers"
)


def _docker_available() -> bool:
    """Whether a Docker engine answers, asked without leaving a socket open when none does."""
    import docker  # type: ignore[import-untyped]

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        with socket.socket(socket.AF_UNIX) as probe:
            probe.settimeout(2)
            try:
                probe.connect(host.removeprefix("unix://"))
            except OSError:
                return False
    try:
        client = docker.from_env()
    except Exception:  # any failure means no usable engine
        return False
    try:
        return bool(client.ping())
    except Exception:  # any failure means no usable engine
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A PostgreSQL server URL (asyncpg driver) where tests may create databases."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    if not _docker_available():
        pytest.fail(NO_SERVER.format(what="PostgreSQL", var="TEST_DATABASE_URL"), pytrace=False)
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer("postgres:16", driver="asyncpg") as container:
        yield container.get_connection_url()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if url := os.environ.get("TEST_REDIS_URL"):
        yield url
        return
    if not _docker_available():
        pytest.fail(NO_SERVER.format(what="Redis", var="TEST_REDIS_URL"), pytrace=False)
    from testcontainers.community.redis import RedisContainer

    with RedisContainer("redis:7") as container:
        host = container.get_container_host_ip()
        yield f"redis://{host}:{container.get_exposed_port(6379)}/0"


async def create_postgres_database(server_url: str, prefix: str) -> str:
    """A new, empty database on the server; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


async def migrated_database(
    kind: str, service_package: Path, request: pytest.FixtureRequest, tmp: Path
) -> AsyncIterator[str]:
    """A database of one service on `kind` (sqlite or postgresql), migrated to head."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / f'{service_package.name}.db'}"
        await asyncio.to_thread(upgrade, service_package, url)
        yield url
        return
    server = request.getfixturevalue("postgres_server_url")
    url = await create_postgres_database(server, f"test_{service_package.name}")
    try:
        await asyncio.to_thread(upgrade, service_package, url)
        yield url
    finally:
        await drop_postgres_database(server, url)


async def wipe(url: str, metadata: MetaData) -> None:
    """Empty every table of a service's database, children first."""
    database = connect(url)
    try:
        async with database.write() as session:
            for table in reversed(metadata.sorted_tables):
                await session.execute(table.delete())
    finally:
        await database.dispose()


def bearer(token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}"}


# What identity and the services are configured with in every test: one signing key file, one
# clients file with a secret per service, a link secret, and one issuer whatever port identity
# happens to listen on. Made once per test process, deleted when it ends.
TEST_ISSUER = "https://identity.commonroom.test"
_SECRETS_DIR = Path(tempfile.mkdtemp(prefix="commonroom-test-secrets-"))
atexit.register(shutil.rmtree, _SECRETS_DIR, ignore_errors=True)
TEST_KEY_FILE = _SECRETS_DIR / "signing-key.pem"
TEST_KEY_FILE.write_bytes(new_private_key_pem())
TEST_CLIENT_SECRETS: dict[str, str] = {
    service: f"test-client-secret-{service}-" + "x" * 32 for service in ALL_SERVICE_NAMES
}
TEST_CLIENTS_FILE = _SECRETS_DIR / "clients"
TEST_CLIENTS_FILE.write_text(clients_file_text(TEST_CLIENT_SECRETS))
TEST_LINK_SECRET = "test-link-secret-" + "x" * 32


def make_settings(redis: str, *, identity_url: str, **database_urls: str) -> Settings:
    """Settings for a test: the test's keys and secrets, the given Redis, identity and databases."""
    defaults = Settings.from_env(
        {
            "REDIS_URL": redis,
            "IDENTITY_URL": identity_url,
            "COMMONROOM_ISSUER": TEST_ISSUER,
            "COMMONROOM_SIGNING_KEY_FILE": str(TEST_KEY_FILE),
            "COMMONROOM_CLIENTS_FILE": str(TEST_CLIENTS_FILE),
            "COMMONROOM_LINK_SECRET": TEST_LINK_SECRET,
        }
    )
    for service, url in database_urls.items():
        defaults = defaults.with_database(service, url)  # type: ignore[arg-type]
    return defaults


def as_client(settings: Settings, service: ServiceName) -> Settings:
    """`settings` as the process of `service` holds them: with its own client secret alone."""
    return replace(settings, client_secret=TEST_CLIENT_SECRETS[service])


class Tokens:
    """Bearer headers for each role, in any organisation, signed with the test's identity key
    as `commonroom token` signs an operator's (each with a login id of its own)."""

    def __init__(self, key: SigningKey, issuer: str) -> None:
        self.key = key
        self.issuer = issuer

    def token(
        self,
        role: str,
        org: str = "org-a",
        *,
        lecturer_id: str | None = None,
        sub: str | None = None,
        sid: str | None = None,
        ttl: timedelta = timedelta(hours=1),
        now: datetime | None = None,
    ) -> str:
        return access_token(
            self.key,
            issuer=self.issuer,
            sub=sub or f"{role}@{org}",
            membership=Membership(org=org, role=Role(role), lecturer_id=lecturer_id),
            sid=sid or new_sid(),
            now=now or datetime.now(UTC),
            ttl=ttl,
        )

    def __call__(
        self,
        role: str,
        org: str = "org-a",
        *,
        lecturer_id: str | None = None,
        sub: str | None = None,
    ) -> dict[str, Any]:
        return bearer(self.token(role, org, lecturer_id=lecturer_id, sub=sub))


def signed_tokens() -> Tokens:
    return Tokens(file_key(private_key_from_pem(TEST_KEY_FILE.read_bytes())), TEST_ISSUER)


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return signed_tokens()


@asynccontextmanager
async def database_of(client: Any, service: str) -> AsyncIterator[Database]:
    """The service's database, opened on the test's own event loop.

    The test client runs the app on a loop of its own, so the app's engine cannot be awaited here.
    """
    database = connect(client.app.state["service"].settings.database_url(service))
    try:
        yield database
    finally:
        await database.dispose()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def spawn(settings: Settings, *arguments: str) -> subprocess.Popen[bytes]:
    """A `commonroom` child process (`serve <service>` or `worker <service>`) configured by
    `settings`, with that service's own client secret."""
    service: ServiceName = arguments[1]  # type: ignore[assignment]
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", *arguments],
        env=child_env(as_client(settings, service)),
        stdout=subprocess.DEVNULL,
    )


# How long each layer (unit, service, suite, ...) took, printed at the end of the run: CI's
# budget is watched layer by layer.
_layer_times: dict[str, list[float]] = {}


def _layer(nodeid: str) -> str:
    parts = nodeid.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else "other"


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _layer_times.setdefault(_layer(nodeid), [time.monotonic(), time.monotonic()])


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    _layer_times[_layer(nodeid)][1] = time.monotonic()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for layer, (started, ended) in _layer_times.items():
        terminalreporter.write_line(f"layer {layer}: {ended - started:.0f} s")
