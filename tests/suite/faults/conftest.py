"""Faults the suite survives, on real servers: the fixtures here start what a test may stop.

A test that stops or restarts PostgreSQL or Redis gets a private one (`initdb` into a temporary
folder on a free port; `redis-server` on a free port, nothing saved), never the machine's shared
servers, and every server and process a test starts is stopped and its files deleted in `finally`,
whether the test passed or not. The services under test are the real `commonroom serve` and
`commonroom worker` processes, configured by Settings through `services.up.child_env`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pytest
from sqlalchemy import text

from services.cli import AVAILABLE, service_package
from services.up import wait_ready
from shared.config import ServiceName, Settings
from shared.db import connect
from shared.events import consumers_of
from shared.migrations import upgrade
from tests.conftest import (
    Tokens,
    create_postgres_database,
    drop_postgres_database,
    free_port,
    make_settings,
    spawn,
)
from tests.suite.conftest import OPEN_ALL_YEAR, Suite, created

PG_BIN = Path("/usr/local/bin")
STOP_SECONDS = 10.0
Role = Literal["serve", "worker"]


# -- polling ---------------------------------------------------------------------------------


async def until(check: Callable[[], Awaitable[bool]], what: str, *, within: float) -> None:
    """Poll `check` until it holds; fail naming `what` after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            pytest.fail(f"not within {within:.0f}s: {what}")
        await asyncio.sleep(0.1)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited while starting (code {process.returncode})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {port} within 20 s")
        time.sleep(0.05)


def _end(process: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM) -> None:
    """Stop one process we started, by its handle; SIGKILL if it lingers."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- a private Redis -------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server of the test's own on a free port, keeping nothing on disk: stopping it
    loses whatever it held, as a Redis without persistence does."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self._process is None or self._process.poll() is not None
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("the fault tests need redis-server on PATH", pytrace=False)
        # Same port every time, so the services' configured URL finds it again.
        self._process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self._process, "redis-server")

    def stop(self) -> None:
        if self._process is not None:
            _end(self._process)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    try:
        server.start()
        yield server
    finally:
        server.stop()


# -- a private PostgreSQL --------------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own: `initdb` into a temporary folder, trust auth, on a
    free port of 127.0.0.1, its socket in the same folder.

    PostgreSQL refuses to run as root; where the tests do (CI containers), initdb and the server
    run as the `postgres` user through `runuser`, in a folder handed to that user.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="commonroom-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as = [shutil.which("runuser") or "/usr/sbin/runuser", "-u", "postgres", "--"]

    def _pg(self, *arguments: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*self._as, *arguments], capture_output=True, check=check, timeout=60, cwd=self.root
        )

    def init(self) -> None:
        self._pg(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale",
            "C",
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200 "
            "-c fsync=off -c full_page_writes=off"
        )
        pg_ctl = str(PG_BIN / "pg_ctl")
        self._pg(pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop the server if it runs (and its postmaster by pid if pg_ctl cannot), delete all."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            pg_ctl = str(PG_BIN / "pg_ctl")
            self._pg(pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
            if pid_file.exists():
                with contextlib.suppress(ValueError, ProcessLookupError, OSError):
                    os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


# -- a proxy that can keep answers back --------------------------------------------------------


@dataclass
class HoldingProxy:
    """A TCP proxy in front of a service, run on the test's event loop.

    While `holding` is set, the answers to `POST /v1/bookings` are read from the service and
    dropped: the booking is made, the caller never learns it, and waits. That is the moment a
    worker can be caught in the middle of its job, deterministically. When the service closes a
    connection (it went down), the proxy closes the caller's side too; when it cannot reach the
    service at all, it refuses the caller at once, as the service's own port would.
    """

    upstream_port: int
    holding: bool = True
    held: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1", self.upstream_port
                )
            except OSError:
                return
            self._writers.add(up_writer)
            swallow = [False]
            try:
                await asyncio.gather(
                    self._pump(reader, up_writer, swallow, upward=True),
                    self._pump(up_reader, writer, swallow, upward=False),
                )
            finally:
                up_writer.close()
                self._writers.discard(up_writer)
        finally:
            writer.close()
            self._writers.discard(writer)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        swallow: list[bool],
        *,
        upward: bool,
    ) -> None:
        try:
            while chunk := await source.read(65536):
                if upward and self.holding and chunk.startswith(b"POST /v1/bookings "):
                    swallow[0] = True  # keep-alive without pipelining: the next answer is its
                    self.held += 1
                if not upward and swallow[0]:
                    continue
                sink.write(chunk)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sink.close()  # one side gone: end the other, as a dead service would


# -- the suite as processes, each of which a test may stop, kill or start again ----------------


class FaultSuite(Suite):
    """Every service's API and worker as processes, with clients acting as the office.

    `settings` is what every process gets; `settings_of` may differ per service (the lecturers
    reaching booking through a proxy, say).
    """

    def __init__(
        self,
        settings: Settings,
        tokens: Tokens,
        services: tuple[ServiceName, ...],
        overrides: dict[ServiceName, Settings],
    ) -> None:
        super().__init__(settings, tokens)
        self.services = services
        self._overrides = overrides
        self.processes: dict[tuple[ServiceName, Role], subprocess.Popen[bytes]] = {}

    def settings_of(self, service: ServiceName) -> Settings:
        return self._overrides.get(service, self.settings)

    def port_of(self, service: ServiceName) -> int:
        return int(self.settings.service_url(service).rsplit(":", 1)[1])

    def start(self, service: ServiceName, role: Role) -> subprocess.Popen[bytes]:
        running = self.processes.get((service, role))
        assert running is None or running.poll() is not None, f"{service} {role} is running"
        arguments = ("serve", service, "--port", str(self.port_of(service)))
        process = spawn(
            self.settings_of(service), *(arguments if role == "serve" else ("worker", service))
        )
        self.processes[(service, role)] = process
        return process

    async def start_and_wait(self, service: ServiceName, role: Role) -> None:
        process = self.start(service, role)
        if role == "serve":
            await asyncio.to_thread(wait_ready, [self.settings.service_url(service)], [process])

    async def stop(self, service: ServiceName, role: Role, *, sig: int = signal.SIGTERM) -> None:
        await asyncio.to_thread(_end, self.processes[(service, role)], sig=sig)

    def alive(self) -> dict[tuple[ServiceName, Role], bool]:
        return {key: process.poll() is None for key, process in self.processes.items()}

    async def sql(self, service: ServiceName, statement: str, **params: Any) -> list[Any]:
        """Rows of one query on a service's own database: what the test checks beneath the API."""
        database = connect(self.settings.database_url(service))
        try:
            async with database.read() as session:
                return list((await session.execute(text(statement), params)).all())
        finally:
            await database.dispose()

    async def aclose(self) -> None:
        await super().aclose()
        await asyncio.to_thread(self._stop_all)

    def _stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            _end(process, sig=signal.SIGKILL)


@contextlib.asynccontextmanager
async def fault_suite(
    database_server_url: str,
    redis_url: str,
    tokens: Tokens,
    *,
    services: tuple[ServiceName, ...] = AVAILABLE,
    booking_for_lecturers: Callable[[int], Awaitable[str]] | None = None,
    **settings: Any,
) -> AsyncIterator[FaultSuite]:
    """The services (APIs and workers) on fresh databases of `database_server_url` and on
    `redis_url`; `booking_for_lecturers(booking_port)` may give the URL the lecturer processes
    reach booking by (a proxy's); `settings` replace fields of the defaults."""
    urls: dict[ServiceName, str] = {}
    made: FaultSuite | None = None
    try:
        for service in services:
            urls[service] = await create_postgres_database(database_server_url, f"faults_{service}")
            await asyncio.to_thread(upgrade, service_package(service), urls[service])
        configured = replace(
            make_settings(redis_url, identity_url="http://127.0.0.1:1", **urls), **settings
        )
        for service in AVAILABLE:
            configured = configured.with_service_url(service, f"http://127.0.0.1:{free_port()}")
        overrides: dict[ServiceName, Settings] = {}
        if booking_for_lecturers is not None:
            booking_port = int(configured.service_url("booking").rsplit(":", 1)[1])
            overrides["lecturers"] = configured.with_service_url(
                "booking", await booking_for_lecturers(booking_port)
            )
        made = FaultSuite(configured, tokens, services, overrides)
        for service in services:
            made.start(service, "serve")
            made.start(service, "worker")
        await asyncio.to_thread(
            wait_ready,
            [configured.service_url(service) for service in services],
            list(made.processes.values()),
        )
        yield made
    finally:
        if made is not None:
            await made.aclose()
        for url in urls.values():
            with contextlib.suppress(Exception):  # a private server may be gone already
                await drop_postgres_database(database_server_url, url)


@dataclass(frozen=True)
class Place:
    area: str
    venue: str
    rooms: list[str]


async def venue_with_rooms(suite: FaultSuite, rooms: int, *, org: str = "school-a") -> Place:
    """A citizen school open every day 08:00-22:00 with `rooms` rooms."""
    area = created(await suite.registry.post("/v1/areas", json={"name": "城关镇"}))["id"]
    venue = created(
        await suite.registry.post(
            "/v1/venues",
            json={
                "name": "城关第一市民学校",
                "kind": "citizen_school",
                "area_id": area,
                "owner_org": org,
                "address": "城关镇人民路 1 号",
            },
        )
    )["id"]
    created(await suite.registry.put(f"/v1/venues/{venue}/opening-hours", json=OPEN_ALL_YEAR))
    made = [
        created(
            await suite.registry.post(
                f"/v1/venues/{venue}/resources",
                json={"name": f"教室 {n + 1}", "type": "room", "capacity": 60},
            )
        )["id"]
        for n in range(rooms)
    ]
    return Place(area=area, venue=venue, rooms=made)


async def events_settled(suite: FaultSuite) -> None:
    """Wait until every event the running services recorded has been handled by each consumer:
    nothing in flight that could land in the middle of what a test does next."""

    async def settled() -> bool:
        handled: dict[ServiceName, set[str]] = {}
        for service in suite.services:
            rows = await suite.sql(service, "SELECT event_id FROM handled_events")
            handled[service] = {row.event_id for row in rows}
        for service in suite.services:
            for row in await suite.sql(service, "SELECT event_id, type FROM outbox"):
                for consumer in consumers_of(row.type):
                    if consumer in handled and row.event_id not in handled[consumer]:
                        return False
        return True

    await until(settled, "every recorded event handled by its consumers", within=30)


VENUE_ZONE = "Asia/Shanghai"


def slot(day: int, hour: int, *, minutes: int = 60) -> dict[str, str]:
    """`start` and `end` of a booking `day` days from today at `hour`, the venue's time."""
    from datetime import datetime, time, timedelta
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(VENUE_ZONE)
    date = datetime.now(zone).date() + timedelta(days=day)
    start = datetime.combine(date, time(hour), tzinfo=zone)
    end = start + timedelta(minutes=minutes)
    return {"start": start.isoformat(), "end": end.isoformat()}
