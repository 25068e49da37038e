"""Mail end to end: 10,000 booking events in booking's outbox reach a local SMTP server.

Booking's worker (its outbox relay) and notify's worker, each its own process as shipped, on
fresh PostgreSQL databases and the machine's Redis, beside a real identity (API on SQLite in a
temporary folder) that names the readers; mail goes to an aiosmtpd server on loopback in this
process (a thread of its own), which counts what it takes. The people are made first at identity:
40 venue organisations with two venue managers each (one reading Chinese, one English) and 400
community managers who book. A warm-up event goes through first, so both workers are up and
connected. Then 10,000 events are written to booking's outbox in one transaction (as a busy
booking service leaves them), half `booking.created` (pending: each mails the venue's two
managers) and half `booking.confirmed` (each mails its booker, with an iTIP REQUEST part), and the
clock runs from that commit until the SMTP server holds every message: 15,000 in all. Each message
must arrive once (by Message-ID) and every delivery must read `sent`. Beside the rate, the
processor time each process used per message over the same span: on a machine shared with other
work the rate follows the load, the processor time much less. The Redis database of `--redis` is
emptied first.

    .venv/bin/python bench/bench_notify.py \
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres] \
        [--redis redis://127.0.0.1:6379/14] [--events 10000] [--seed 1] [--logs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psutil
from aiosmtpd.controller import Controller
from bench_identity import identity_running, installation, start_service
from bench_resources import create_database, drop_database  # the script's own folder
from redis import Redis
from sqlalchemy import func, select

from services.booking import store as booking_store
from services.cli import service_package
from services.identity.domain.accounts import Locale, OrgKind
from services.identity.domain.tokens import Membership
from services.identity.store import accounts
from services.notify import store as notify_store
from services.up import stop_children
from shared.auth import Role
from shared.config import ServiceName, Settings
from shared.contracts import BookingChanged
from shared.db import connect
from shared.ids import new_id
from shared.migrations import upgrade
from shared.outbox import publish_all
from shared.processes import free_port

TARGET_PER_SECOND = 200.0
VENUE_ORGS = 40
BOOKERS = 400
SHANGHAI = ZoneInfo("Asia/Shanghai")
# The services whose workers carry the events, each on a PostgreSQL database of its own.
SUITE: tuple[ServiceName, ...] = ("booking", "notify")
TIMEOUT_SECONDS = 600.0
MESSAGE_ID = re.compile(rb"^Message-ID: *(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


@dataclass
class Inbox:
    """What the SMTP server took: each message's Message-ID, and when the last one came."""

    message_ids: Counter[str] = field(default_factory=Counter)
    last_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    # aiosmtpd calls its hooks with every argument by position, used or not.
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802, ARG002
        # The header read straight from the bytes: parsing whole messages here would load the
        # machine the bench measures.
        found = MESSAGE_ID.search(envelope.original_content)
        with self.lock:
            self.message_ids[found.group(1).decode() if found else "none"] += 1
            self.last_at = time.perf_counter()
        return "250 Message accepted for delivery"

    def count(self) -> int:
        with self.lock:
            return sum(self.message_ids.values())

    def clear(self) -> None:
        with self.lock:
            self.message_ids.clear()


@contextmanager
def smtp_server(inbox: Inbox) -> Iterator[int]:
    # aiosmtpd connects to itself to start, so it cannot take port 0: a free port first.
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


@dataclass(frozen=True)
class People:
    venue_orgs: list[str]
    bookers: list[str]


async def make_people(settings: Settings) -> People:
    """The readers at identity, written to its database in one transaction (as `commonroom
    user add` writes one): two managers per venue organisation (zh-CN and en), and the bookers,
    each a community manager of one of ten centres."""
    orgs = [f"school-{n}" for n in range(VENUE_ORGS)]
    centres = [f"centre-{n}" for n in range(10)]
    now = datetime.now(UTC)
    database = connect(settings.database_url("identity"))
    try:
        async with database.write() as session:

            async def person(email: str, name: str, locale: Locale, membership: Membership) -> str:
                row = await accounts.create_user(
                    session, email=email, name=name, locale=locale, password_hash=None, now=now
                )
                await accounts.add_membership(
                    session, user_id=row.id, membership=membership, now=now
                )
                return row.id

            for org, kind in [
                *((o, OrgKind.SCHOOL) for o in orgs),
                *((c, OrgKind.COMMUNITY) for c in centres),
            ]:
                await accounts.ensure_org(session, org_id=org, name=org, kind=kind, now=now)
            for org in orgs:
                for locale in (Locale.ZH_CN, Locale.EN):
                    await person(
                        f"manager-{locale.value.lower()}@{org}.example.org",
                        f"{org} 管理员",
                        locale,
                        Membership(org=org, role=Role.VENUE_MANAGER),
                    )
            bookers = [
                await person(
                    f"booker-{n}@example.org",
                    f"预约人{n}",
                    Locale.ZH_CN,
                    Membership(org=centres[n % 10], role=Role.COMMUNITY_MANAGER),
                )
                for n in range(BOOKERS)
            ]
    finally:
        await database.dispose()
    return People(orgs, bookers)


def booking_events(people: People, count: int, rng: random.Random) -> list[tuple[str, Any]]:
    """`count` events, alternately a pending booking (to its venue's managers) and a
    confirmation (to its booker), over the next weeks' evenings."""
    events: list[tuple[str, Any]] = []
    today = datetime.now(SHANGHAI).replace(hour=18, minute=0, second=0, microsecond=0)
    for n in range(count):
        start = today + timedelta(days=rng.randint(2, 40))
        pending = n % 2 == 0
        events.append(
            (
                "booking.created" if pending else "booking.confirmed",
                BookingChanged(
                    id=new_id(),
                    venue_id=new_id(),
                    resource_ids=[new_id()],
                    start=start,
                    end=start + timedelta(hours=2),
                    status="pending" if pending else "confirmed",
                    org=f"centre-{n % 10}",
                    owner_org=rng.choice(people.venue_orgs),
                    booked_by=rng.choice(people.bookers),
                    hold=False,
                    purpose=rng.choice(["书法课", "合唱排练", "Tai chi", "防诈骗讲座"]),
                    version=1 if pending else 2,
                    timezone="Asia/Shanghai",
                ),
            )
        )
    return events


def messages_of(events: list[tuple[str, Any]]) -> int:
    return sum(2 if event_type == "booking.created" else 1 for event_type, _ in events)


async def write_outbox(settings: Settings, events: list[tuple[str, Any]]) -> float:
    """The events in booking's outbox, in one transaction; when it committed."""
    database = connect(settings.database_url("booking"))
    try:
        async with database.write() as session:
            await publish_all(session, booking_store.tables, source="booking", events=events)
        return time.perf_counter()
    finally:
        await database.dispose()


async def settled(settings: Settings, expected: int) -> dict[str, int]:
    """The deliveries by status, once `expected` of them are no longer queued (the server has
    a batch's last message before the sender has recorded the batch)."""
    database = connect(settings.database_url("notify"))
    deadline = time.monotonic() + TIMEOUT_SECONDS
    try:
        while True:
            async with database.read() as session:
                rows = await session.execute(
                    select(notify_store.DeliveryRow.status, func.count()).group_by(
                        notify_store.DeliveryRow.status
                    )
                )
                statuses: dict[str, int] = dict(rows.all())
            done = statuses.get(notify_store.SENT, 0) + statuses.get(notify_store.FAILED, 0)
            if done >= expected or time.monotonic() > deadline:
                return statuses
            await asyncio.sleep(0.2)
    finally:
        await database.dispose()


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """Processor time each process has used so far (user and system): what a message costs
    whatever else the machine is running."""
    used = {}
    for name, pid in pids.items():
        times = psutil.Process(pid).cpu_times()
        used[name] = times.user + times.system
    return used


def wait_for(inbox: Inbox, expected: int, children: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while inbox.count() < expected:
        if any(child.poll() is not None for child in children):
            raise RuntimeError("a worker stopped")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{inbox.count()} of {expected} messages after {TIMEOUT_SECONDS}s")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--logs", type=Path, help="a folder for the processes' logs")
    args = parser.parse_args()
    inbox = Inbox()
    with tempfile.TemporaryDirectory() as tmp, smtp_server(inbox) as port:
        settings, secrets = installation(
            Path(tmp),
            {"REDIS_URL": args.redis, "COMMONROOM_SMTP_URL": f"smtp://127.0.0.1:{port}"},
        )
        for service in SUITE:
            url = asyncio.run(create_database(args.postgres))
            upgrade(service_package(service), url)
            settings = settings.with_database(service, url)
        workers: list[subprocess.Popen[bytes]] = []
        try:
            # An empty queue: no job of an earlier run may reach these databases.
            with Redis.from_url(args.redis) as redis:
                redis.flushdb()
            with identity_running(settings, secrets, logs=args.logs) as identity:
                began = time.perf_counter()
                people = asyncio.run(make_people(settings))
                print(
                    f"{VENUE_ORGS * 2 + BOOKERS} people made at identity "
                    f"in {time.perf_counter() - began:.1f} s"
                )
                for service in SUITE:
                    log = None if args.logs is None else args.logs / f"{service}-worker.log"
                    workers.append(start_service(settings, secrets, service, "worker", log=log))
                rng = random.Random(args.seed)
                warm_up = booking_events(people, 2, rng)[1:]
                asyncio.run(write_outbox(settings, warm_up))
                wait_for(inbox, 1, workers)
                inbox.clear()
                events = booking_events(people, args.events, rng)
                expected = messages_of(events)
                pids = {
                    "notify worker": workers[1].pid,
                    "booking worker": workers[0].pid,
                    "identity": identity[0].pid,
                    "bench and SMTP server": os.getpid(),
                }
                load_before = os.getloadavg()[0]
                cpu_before = cpu_seconds(pids)
                committed = asyncio.run(write_outbox(settings, events))
                wait_for(inbox, expected, workers)
                elapsed = inbox.last_at - committed
                cpu = {name: used - cpu_before[name] for name, used in cpu_seconds(pids).items()}
                statuses = asyncio.run(settled(settings, expected + len(warm_up)))
        finally:
            stop_children(workers)
            for service in SUITE:
                asyncio.run(drop_database(args.postgres, settings.database_url(service)))
    doubled = sum(1 for seen in inbox.message_ids.values() if seen > 1)
    rate = expected / elapsed
    load = ", ".join(f"{figure:.2f}" for figure in os.getloadavg())
    per_message = ", ".join(f"{name} {1000 * used / expected:.2f} ms" for name, used in cpu.items())
    print(
        f"{args.events} events, {expected} messages in {elapsed:.1f} s: {rate:.0f} messages/s "
        f"(target {TARGET_PER_SECOND:.0f}) {'PASS' if rate >= TARGET_PER_SECOND else 'FAIL'}"
    )
    print(
        f"distinct Message-IDs {len(inbox.message_ids)}, doubled {doubled}; "
        f"deliveries {statuses}; load average before {load_before:.2f}, after {load}"
    )
    print(f"processor time per message: {per_message}")
    if doubled or len(inbox.message_ids) != expected:
        raise SystemExit("messages lost or doubled")


if __name__ == "__main__":
    main()
