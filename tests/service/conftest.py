"""One service at a time, through HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

import email
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import httpx
import icalendar
import pytest
from aiosmtpd.controller import Controller
from arq import create_pool
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from services.booking import store as booking_store
from services.booking.app import create_app as create_booking
from services.booking.catalogue import sync
from services.booking.clients import registry_http
from services.cli import service_package
from services.identity.app import create_app as create_identity
from services.identity.cli import add_user
from services.identity.domain.accounts import Locale
from services.identity.domain.tokens import Membership
from services.identity.store import rows as identity_rows
from services.lecturers import store as lecturers_store
from services.lecturers.app import create_app as create_lecturers
from services.lecturers.worker import Jobs
from services.notify import store as notify_store
from services.notify.clients import Directory
from services.notify.mailer import Mailer, SmtpMailer
from services.notify.worker import Notifier, send_due
from services.registry import store as registry_store
from services.registry.app import create_app as create_registry
from services.up import stop_children, wait_ready
from shared.auth import Role
from shared.config import ServiceName, Settings
from shared.db import Database, connect
from shared.events import Event
from shared.ids import new_id
from shared.migrations import upgrade
from shared.outbox import handle_once
from shared.worker import redis_settings
from tests.conftest import (
    Tokens,
    as_client,
    database_of,
    free_port,
    make_settings,
    migrated_database,
    spawn,
    wipe,
)

REGISTRY = Path(registry_store.__file__).parent
BOOKING = Path(booking_store.__file__).parent
IDENTITY = service_package("identity")
# Where identity's mailed links point (`{WEB_URL}/invite/...`) in the tests.
TEST_WEB_URL = "https://web.commonroom.test"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def identity_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    async for url in migrated_database(
        request.param, IDENTITY, request, tmp_path_factory.mktemp("identity")
    ):
        yield url


@pytest.fixture
async def identity(identity_db: str, redis_url: str) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    """Identity in-process: it verifies tokens against its own keys (the test key)."""
    await wipe(identity_db, identity_rows.Base.metadata)
    settings = make_settings(
        redis_url, identity_url="https://identity.commonroom.test", identity=identity_db
    ).with_service_url("web", TEST_WEB_URL)
    async with AsyncTestClient(app=create_identity(settings)) as client:
        yield client


@pytest.fixture(scope="session")
def identity_server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real identity service in its own process: every service checks tokens against its keys
    and asks it for its own service token."""
    settings = make_settings(redis_url, identity_url="http://127.0.0.1:1")
    with serving("identity", settings, tmp_path_factory) as base:
        yield base


@pytest.fixture(scope="session")
def registry_server(
    redis_url: str, identity_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real registry in its own process (the booking service talks to it over HTTP)."""
    settings = make_settings(redis_url, identity_url=identity_server)
    with serving("registry", settings, tmp_path_factory) as base:
        yield base


@contextmanager
def serving(
    service: ServiceName,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
    url: str | None = None,
) -> Iterator[str]:
    """`service` in a process of its own on a fresh SQLite database (or on `url`); its base URL."""
    if url is None:
        folder = tmp_path_factory.mktemp(f"{service}-server")
        url = f"sqlite+aiosqlite:///{folder / f'{service}.db'}"
    upgrade(service_package(service), url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    child = spawn(settings.with_database(service, url), "serve", service, "--port", str(port))
    try:
        wait_ready([base], [child])
        yield base
    finally:
        stop_children([child])


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def registry_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    async for url in migrated_database(
        request.param, REGISTRY, request, tmp_path_factory.mktemp("registry")
    ):
        yield url


@pytest.fixture
async def registry(
    registry_db: str, redis_url: str, identity_server: str
) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    await wipe(registry_db, registry_store.Base.metadata)
    app = create_registry(
        as_client(
            make_settings(redis_url, identity_url=identity_server, registry=registry_db), "registry"
        )
    )
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def booking_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    async for url in migrated_database(
        request.param, BOOKING, request, tmp_path_factory.mktemp("booking")
    ):
        yield url


@pytest.fixture
async def booking(
    booking_db: str, redis_url: str, identity_server: str, registry_server: str
) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    await wipe(booking_db, booking_store.Base.metadata)
    settings = as_client(
        make_settings(redis_url, identity_url=identity_server, booking=booking_db), "booking"
    ).with_service_url("registry", registry_server)
    app = create_booking(settings)
    async with AsyncTestClient(app=app) as client:
        yield client


ALL_WEEK = [1, 2, 3, 4, 5, 6, 7]


def open_every_day(start: str = "08:00", end: str = "22:00") -> dict[str, Any]:
    return {
        "periods": [
            {
                "name": "all year",
                "start_date": "2026-01-01",
                "spans": [{"weekdays": ALL_WEEK, "start": start, "end": end}],
            }
        ],
        "public_holidays": "open",
    }


class Town:
    """A venue of org-v in the registry, with rooms; made fresh for each test."""

    def __init__(self, registry: str, tokens: Tokens) -> None:
        self.area = ""
        self.http = httpx.AsyncClient(base_url=registry, headers=tokens("office"))

    async def venue(
        self, timezone: str = "Asia/Shanghai", hours: dict[str, Any] | None = None
    ) -> str:
        area = (await self.http.post("/v1/areas", json={"name": "镇"})).json()["id"]
        self.area = area
        venue = (
            await self.http.post(
                "/v1/venues",
                json={
                    "name": "市民学校",
                    "kind": "citizen_school",
                    "area_id": area,
                    "owner_org": "org-v",
                    "timezone": timezone,
                },
            )
        ).json()["id"]
        put = await self.http.put(
            f"/v1/venues/{venue}/opening-hours", json=hours or open_every_day()
        )
        assert put.status_code == 200, put.text
        return venue

    async def room(self, venue: str, **fields: Any) -> str:
        body = {"name": "教室", "type": "room", "capacity": 30, **fields}
        response = await self.http.post(f"/v1/venues/{venue}/resources", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


@pytest.fixture
async def town(registry_server: str, tokens: Tokens) -> Any:
    made = Town(registry_server, tokens)
    yield made
    await made.http.aclose()


LECTURERS = Path(lecturers_store.__file__).parent


@pytest.fixture(scope="session")
def booking_server(
    redis_url: str,
    identity_server: str,
    registry_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """A real booking service in its own process, asking the real registry (the lecturer service
    holds and confirms rooms through it)."""
    settings = make_settings(redis_url, identity_url=identity_server).with_service_url(
        "registry", registry_server
    )
    with serving("booking", settings, tmp_path_factory) as base:
        yield base


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def lecturers_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    async for url in migrated_database(
        request.param, LECTURERS, request, tmp_path_factory.mktemp("lecturers")
    ):
        yield url


@pytest.fixture
def lecturers_settings(
    lecturers_db: str,
    redis_url: str,
    identity_server: str,
    registry_server: str,
    booking_server: str,
) -> Settings:
    return (
        as_client(
            make_settings(redis_url, identity_url=identity_server, lecturers=lecturers_db),
            "lecturers",
        )
        .with_service_url("registry", registry_server)
        .with_service_url("booking", booking_server)
        .with_service_url("lecturers", "https://lecturers.example.test")
    )


@pytest.fixture
async def lecturers(lecturers_settings: Settings) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    await wipe(lecturers_settings.database_url("lecturers"), lecturers_store.Base.metadata)
    async with AsyncTestClient(app=create_lecturers(lecturers_settings)) as client:
        yield client


class LecturerWorker:
    """The lecturer worker's jobs, run in the test's own process and loop, on demand."""

    def __init__(self, settings: Settings) -> None:
        self.jobs = Jobs(settings)
        self.ctx: dict[str, Any] = {"job_try": 1}
        self.settings = settings

    async def __aenter__(self) -> LecturerWorker:
        self.ctx["database"] = connect(self.settings.database_url("lecturers"))
        self.ctx["redis"] = await create_pool(redis_settings(self.settings.redis_url))
        await self.jobs.start(self.ctx)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.jobs.stop(self.ctx)
        await self.ctx["redis"].aclose()
        await self.ctx["database"].dispose()

    async def match(self, run_id: str) -> None:
        await self.jobs.match(self.ctx, run_id)

    async def expire(self, offer_id: str) -> None:
        await self.jobs.expire_offer(self.ctx, offer_id)


@pytest.fixture
async def lecturer_worker(lecturers_settings: Settings) -> AsyncIterator[LecturerWorker]:
    async with LecturerWorker(lecturers_settings) as worker:
        yield worker


async def registry_event_handled(
    booking: AsyncTestClient,  # type: ignore[type-arg]
    event_type: str,
    data: dict[str, Any],
) -> None:
    """A registry event, handled as booking's worker handles it (reading the registry)."""
    event = Event(
        id=new_id(), type=event_type, source="registry", occurred_at=datetime.now(UTC), data=data
    )
    registry = registry_http(booking.app.state["service"].settings)
    try:
        async with database_of(booking, "booking") as database:
            handled = await handle_once(
                database, booking_store.tables, event, sync.handlers(registry)
            )
            assert handled
    finally:
        await registry.aclose()


async def hours_change_handled(booking: AsyncTestClient, venue_id: str) -> None:  # type: ignore[type-arg]
    """The registry's `opening_hours.changed` for `venue_id`, handled as booking's worker does."""
    await registry_event_handled(
        booking, "opening_hours.changed", {"venue_id": venue_id, "resource_id": None}
    )


async def moved_into_the_past(booking: AsyncTestClient, booking_id: str) -> None:  # type: ignore[type-arg]
    """Move a booking to end an hour ago, as time would (attendance is recorded after the end)."""
    async with database_of(booking, "booking") as database, database.write() as session:
        await session.execute(
            update(booking_store.BookingRow)
            .where(booking_store.BookingRow.id == booking_id)
            .values(
                start_at=datetime.now(UTC) - timedelta(hours=3),
                end_at=datetime.now(UTC) - timedelta(hours=1),
            )
        )


# --- notify: a real SMTP server, a real identity naming recipients, notify's own parts ------


class MailServer:
    """What an aiosmtpd server on loopback received, and what it is to answer: a recipient's
    queued answers (`451 ...`, `550 ...`) are given one per try, then 250."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []
        self.answers: dict[str, list[str]] = {}
        # The client end of the connection each message came over.
        self.peers: list[Any] = []

    # aiosmtpd calls its hooks with every argument by position, used or not.
    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: Any,  # noqa: ARG002
        session: Any,  # noqa: ARG002
        envelope: Any,
        address: str,
        rcpt_options: Any,  # noqa: ARG002
    ) -> str:
        queued = self.answers.get(address)
        if queued:
            return queued.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: Any,  # noqa: ARG002
        session: Any,
        envelope: Any,
    ) -> str:
        self.received.append((list(envelope.rcpt_tos), bytes(envelope.original_content)))
        self.peers.append(session.peer)
        return "250 Message accepted for delivery"

    def messages_to(self, address: str) -> list[EmailMessage]:
        return [parsed(content) for to, content in self.received if address in to]


@pytest.fixture(scope="session")
def smtp_port() -> Iterator[tuple[int, MailServer]]:
    """One real SMTP server for the session (a free port chosen first: aiosmtpd connects to
    itself to start, so it cannot take port 0)."""
    handler = MailServer()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, handler
    finally:
        controller.stop()


@pytest.fixture
def smtp(smtp_port: tuple[int, MailServer]) -> MailServer:
    _, server = smtp_port
    server.received.clear()
    server.answers.clear()
    server.peers.clear()
    return server


@dataclass
class People:
    """A real identity process and its database, where a test makes the users it mails."""

    url: str
    settings: Settings

    async def add(
        self,
        org: str,
        role: Role,
        locale: Locale = Locale.ZH_CN,
        name: str = "读者",
        lecturer_id: str | None = None,
    ) -> tuple[str, str]:
        """A new user holding `role` in `org` (a lecturer's, `lecturer_id`): (id, address)."""
        address = f"u-{uuid.uuid4().hex[:10]}@example.org"
        user_id = await add_user(
            self.settings,
            email=address,
            password=None,
            membership=Membership(org=org, role=role, lecturer_id=lecturer_id),
            name=name,
            locale=locale,
        )
        return user_id, address


@pytest.fixture(scope="session")
def people(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[People]:
    folder = tmp_path_factory.mktemp("notify-identity")
    url = f"sqlite+aiosqlite:///{folder / 'identity.db'}"
    settings = make_settings(redis_url, identity_url="http://127.0.0.1:1", identity=url)
    with serving("identity", settings, tmp_path_factory, url) as base:
        yield People(base, settings)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def notify_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    async for url in migrated_database(
        request.param, service_package("notify"), request, tmp_path_factory.mktemp("notify")
    ):
        yield url


@dataclass
class Notify:
    """Notify's worker parts, run in the test's own loop: handle an event, send what is due."""

    settings: Settings
    database: Database
    notifier: Notifier
    mailer: Mailer
    sent_events: list[Event] = field(default_factory=list)

    async def deliver(self, event: Event) -> bool:
        """The event as the worker's queue hands it over (again, where it was before)."""
        return await handle_once(
            self.database, notify_store.tables, event, self.notifier.handlers()
        )

    async def send(self, now: datetime | None = None) -> int:
        return await send_due(
            self.database,
            self.mailer,
            mail_from=self.settings.mail_from,
            now=now or datetime.now(UTC),
        )

    async def deliveries(self) -> list[notify_store.DeliveryRow]:
        async with self.database.read() as session:
            return await notify_store.list_deliveries(
                session, recipient=None, status=None, event_id=None, after=None, limit=500
            )


def notify_settings(
    notify_db: str, redis_url: str, people: People, smtp_url: str | None
) -> Settings:
    settings = as_client(
        make_settings(redis_url, identity_url=people.url, notify=notify_db), "notify"
    ).with_service_url("web", TEST_WEB_URL)
    return replace(settings, smtp_url=smtp_url)


@pytest.fixture
async def notify(
    notify_db: str, redis_url: str, people: People, smtp_port: tuple[int, MailServer]
) -> AsyncIterator[Notify]:
    await wipe(notify_db, notify_store.Base.metadata)
    settings = notify_settings(notify_db, redis_url, people, f"smtp://127.0.0.1:{smtp_port[0]}")
    directory = Directory(settings)
    database = connect(notify_db)
    try:
        yield Notify(
            settings, database, Notifier(settings, directory), SmtpMailer(settings.smtp_url or "")
        )
    finally:
        await directory.aclose()
        await database.dispose()


def parsed(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def calendar_of(message: EmailMessage) -> tuple[str, icalendar.Calendar]:
    """The calendar part's `method` parameter and its calendar, parsed with icalendar."""
    parts = [part for part in message.walk() if part.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    part = parts[0]
    return str(part.get_param("method")), icalendar.Calendar.from_ical(part.get_content())
