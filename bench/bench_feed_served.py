# ruff: noqa: RUF001  (Chinese text takes full-width punctuation on purpose)
"""Serving a lecturer's calendar feed of 1,000 events over HTTP, end to end.

The lecturer service runs as `commonroom serve lecturers` in its own process on a fresh database
(SQLite by default, or PostgreSQL with `--postgres URL` of a server where it may create a
database), beside a real identity (SQLite, in a temporary folder, with the installation's
secrets: the lecturer links' secret among them); one lecturer gets 1,000 offers (open with
signed links, accepted, declined, in two zones), and the feed is fetched over HTTP `--rounds`
times, one request at a time. The issue's budget is 200 ms per feed served.

    .venv/bin/python bench/bench_feed_served.py [--rounds 100] [--events 1000] [--postgres URL]
        [--redis redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from bench_identity import identity_running, installation, start_service
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.cli import service_package
from services.lecturers import store
from services.up import stop_children, wait_ready
from shared.db import connect
from shared.ids import new_id
from shared.migrations import upgrade
from shared.processes import free_port

TARGET_MS = 200.0
STATES = ("offered", "accepted", "declined", "cancelled")
ZONES = ("Asia/Shanghai", "Europe/Berlin")


async def _admin(server: str, statement: str) -> None:
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def fill(url: str, events: int) -> tuple[str, str]:
    """A lecturer with `events` offers; its id and feed token."""
    database = connect(url)
    now = datetime.now(UTC)
    lecturer_id, token = new_id(), "bench-feed-token-" + "x" * 30
    try:
        async with database.write() as session:
            session.add(
                store.LecturerRow(
                    id=lecturer_id,
                    name="王老师",
                    topics=["law"],
                    languages=["zh"],
                    area_id=new_id(),
                    lat=None,
                    lon=None,
                    max_per_month=31,
                    availability=[],
                    blackout_dates=[],
                    email=None,
                    phone=None,
                    feed_token=token,
                    created_at=now,
                    updated_at=now,
                )
            )
            venues = []
            for zone in ZONES:
                venue = store.VenueRow(
                    id=new_id(),
                    name="城关第一市民学校",
                    address="城关镇人民路 1 号",
                    timezone=zone,
                    area_id=new_id(),
                    owner_org="school-a",
                    lat=None,
                    lon=None,
                    deleted=False,
                    updated_at=now,
                )
                venues.append(venue)
                session.add(venue)
            await session.flush()
            requests = []
            for venue in venues:
                request = store.RequestRow(
                    id=new_id(),
                    venue_id=venue.id,
                    org="school-a",
                    topic="智能手机入门：微信、支付与防诈骗",
                    programme="elderly",
                    month=f"{now:%Y-%m}",
                    sessions=31,
                    minutes=90,
                    audience="社区老年居民",
                    attendees=40,
                    preferred=[],
                    status="offered",
                    created_by="bench",
                    created_at=now,
                    updated_at=now,
                )
                requests.append(request)
                session.add(request)
            await session.flush()
            for n in range(events):
                start = now + timedelta(days=n % 365, hours=n % 5)
                status = STATES[n % len(STATES)]
                session.add(
                    store.OfferRow(
                        id=new_id(),
                        run_id=new_id(),
                        request_id=requests[n % 2].id,
                        session_index=n,
                        lecturer_id=lecturer_id,
                        venue_id=venues[n % 2].id,
                        venue_org="school-a",
                        room_id=new_id(),
                        booking_id=new_id(),
                        timezone=venues[n % 2].timezone,
                        start_at=start,
                        end_at=start + timedelta(minutes=90),
                        status=status,
                        sequence=n % 3,
                        expires_at=now + timedelta(days=2),
                        reason=None,
                        created_at=now,
                        updated_at=now,
                    )
                )
    finally:
        await database.dispose()
    return lecturer_id, token


def measure(base: str, path: str, rounds: int) -> tuple[list[float], int]:
    """Each request's time in ms, and the feed's size in bytes."""
    timings = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(3):  # warm the process: imports, zones, caches
            size = len(client.get(path).raise_for_status().content)
        for _ in range(rounds):
            began = time.perf_counter()
            response = client.get(path)
            timings.append((time.perf_counter() - began) * 1000)
            response.raise_for_status()
    return timings, size


def serve_and_measure(
    url: str, var_dir: str, redis: str, path: str, rounds: int
) -> tuple[list[float], int]:
    """Start identity and the service on the database, fetch the feed `rounds` times, stop them."""
    settings, secrets = installation(
        Path(var_dir),
        {
            "REDIS_URL": redis,
            "LECTURERS_DATABASE_URL": url,
            "LECTURERS_URL": f"http://127.0.0.1:{free_port()}",
        },
    )
    base = settings.service_url("lecturers")
    with identity_running(settings, secrets):
        child = start_service(settings, secrets, "lecturers")
        try:
            wait_ready([base], [child])
            return measure(base, path, rounds)
        finally:
            stop_children([child])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--postgres", help="postgresql+asyncpg:// URL of a server")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    scratch = "bench_feed_served"
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres:
            url = make_url(args.postgres).set(database=scratch).render_as_string(False)
            asyncio.run(_admin(args.postgres, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
            asyncio.run(_admin(args.postgres, f'CREATE DATABASE "{scratch}"'))
        else:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'lecturers.db'}"
        try:
            upgrade(service_package("lecturers"), url)
            lecturer_id, token = asyncio.run(fill(url, args.events))
            path = f"/v1/lecturers/{lecturer_id}/feed.ics?token={token}"
            timings, size = serve_and_measure(url, tmp, args.redis, path, args.rounds)
        finally:
            if args.postgres:
                asyncio.run(_admin(args.postgres, f'DROP DATABASE "{scratch}" WITH (FORCE)'))
    timings.sort()
    p95 = timings[int(len(timings) * 0.95) - 1]
    print(
        f"feed of {args.events} offers ({size / 1024:.0f} KiB) on "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}, {args.rounds} requests: "
        f"median {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, max {timings[-1]:.1f} ms "
        f"(budget {TARGET_MS:.0f} ms; load {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
