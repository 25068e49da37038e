"""A year's utilisation report grouped by venue: 1,000 resources, 1,000,000 bookings.

Builds a booking database (PostgreSQL: a fresh database, dropped after; SQLite: a temp file),
migrated to head, and fills it with bulk SQL, not through the API: 10 towns of 10 venues of 10
rooms, each open 08:00-22:00 daily (Asia/Shanghai), its open hours for 2026 in booking's replica
of the catalogue (cut by the same `pieces_of` the service uses), and 1,000 bookings a room over the
year (2-3 a day at fixed times; 85% confirmed, 15% cancelled; programmes at random). Then times
`reports.store.utilisation` for the whole year grouped by venue, the call the route makes, and
the route itself through HTTP (in process; the replica already covers the year, so the
registry is never asked; the office's token is signed with the key of a real identity, SQLite in
a temporary folder, and checked against its published keys), each the median of `--rounds` runs.

Targets: < 2 s on PostgreSQL, < 5 s on SQLite.

    .venv/bin/python bench/bench_reports.py [--rounds 5] [--only postgresql|sqlite]
        [--server postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--redis redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any
from zoneinfo import ZoneInfo

from bench_identity import (
    BenchTokens,
    Installation,
    as_service,
    identity_running,
    installation,
)
from bench_resources import create_database, drop_database  # the script's own folder
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from services.booking import store
from services.booking.app import create_app
from services.booking.catalogue.reader import day_window
from services.booking.catalogue.store import OpenPieceRow
from services.booking.domain.reports import GroupBy, pieces_of
from services.booking.reports.store import Scope, utilisation
from shared.auth import Role
from shared.db import Database, connect
from shared.migrations import upgrade
from shared.time import Interval

SHANGHAI = ZoneInfo("Asia/Shanghai")
TOWNS, VENUES_PER_TOWN, ROOMS_PER_VENUE = 10, 10, 10
BOOKINGS_PER_ROOM = 1000
YEAR = Interval(datetime(2026, 1, 1, tzinfo=SHANGHAI), datetime(2027, 1, 1, tzinfo=SHANGHAI))
# What a report of YEAR fills the replica for: whole UTC days around it.
COVERED = day_window(YEAR)
# Local (start, end) hours of the day's bookings; the first two every day, the third on 2/3 days.
SLOTS = ((9, 10.5), (13, 15), (18, 20))
PROGRAMMES = ("degree", "workforce", "assistance", "youth", "elderly", "citizen", None)
CHUNK = 100_000
TARGETS = {"postgresql": 2.0, "sqlite": 5.0}
BOOKING_COLUMNS = [column.key for column in store.BookingRow.__table__.columns]
SLOT_COLUMNS = [column.key for column in store.SlotRow.__table__.columns]
PIECE_COLUMNS = [column.key for column in OpenPieceRow.__table__.columns]


class City:
    """The catalogue: areas, and rooms with their venue's facts."""

    def __init__(self) -> None:
        self.city = str(uuid.uuid4())
        self.areas = [(self.city, "市", f"/{self.city}/")]
        self.rooms: list[dict[str, Any]] = []
        for town in range(TOWNS):
            town_id = str(uuid.uuid4())
            path = f"/{self.city}/{town_id}/"
            self.areas.append((town_id, f"街道{town}", path))
            for venue in range(VENUES_PER_TOWN):
                venue_id = str(uuid.uuid4())
                self.rooms += [
                    {
                        "resource_id": str(uuid.uuid4()),
                        "name": f"教室{room}",
                        "type": "room",
                        "capacity": 30,
                        "requires_approval": False,
                        "rules": "{}",
                        "parts": "[]",
                        "part_of": None,
                        "smallest": True,
                        "venue_id": venue_id,
                        "venue_name": f"市民学校{town}-{venue}",
                        "venue_kind": "citizen_school",
                        "owner_org": f"org-{town}-{venue}",
                        "timezone": "Asia/Shanghai",
                        "area_id": town_id,
                        "area_path": path,
                        "generation": 0,
                        "covered_from": COVERED.start,
                        "covered_until": COVERED.end,
                        "hours_generation": 0,
                    }
                    for room in range(ROOMS_PER_VENUE)
                ]


def open_intervals() -> list[Interval]:
    days = (YEAR.end.date() - YEAR.start.date()).days
    return [
        Interval(
            datetime.combine(YEAR.start.date() + timedelta(days=n), _clock(8), tzinfo=SHANGHAI),
            datetime.combine(YEAR.start.date() + timedelta(days=n), _clock(22), tzinfo=SHANGHAI),
        )
        for n in range(days)
    ]


def _clock(hours: float) -> time:
    return time(int(hours), int(hours % 1 * 60))


def bookings(city: City, rng: random.Random) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(booking, slot) pairs: BOOKINGS_PER_ROOM for each room over the year."""
    created = datetime(2025, 12, 1, tzinfo=UTC)
    days = [YEAR.start.date() + timedelta(days=n) for n in range(365)]
    for room in city.rooms:
        times = [(day, slot) for day in days for slot in SLOTS[:2]]
        times += rng.sample([(day, SLOTS[2]) for day in days], BOOKINGS_PER_ROOM - len(times))
        for day, (start_hour, end_hour) in times:
            start = _at(day, start_hour)
            end = _at(day, end_hour)
            confirmed = rng.random() < 0.85
            booking_id = str(uuid.uuid4())
            yield (
                {
                    "id": booking_id,
                    "org": "org-community",
                    "venue_id": room["venue_id"],
                    "venue_org": room["owner_org"],
                    "timezone": "Asia/Shanghai",
                    "resource_ids": json.dumps([room["resource_id"]]),
                    "start_at": start,
                    "end_at": end,
                    "status": "confirmed" if confirmed else "cancelled",
                    "purpose": "课程",
                    "programme": rng.choice(PROGRAMMES),
                    "attendees": rng.randint(5, 40),
                    "attended": None,
                    "series_id": None,
                    "hold": False,
                    "override_hours": False,
                    "outside_opening_hours": False,
                    "reason": None,
                    "booked_by": "bench",
                    "version": 1,
                    "created_at": created,
                    "updated_at": created,
                },
                {
                    "booking_id": booking_id,
                    "resource_id": room["resource_id"],
                    "start_at": start,
                    "end_at": end,
                    "blocked_from": start,
                    "blocked_until": end,
                    "live": confirmed,
                },
            )


def _at(day: date, hours: float) -> datetime:
    return datetime.combine(day, _clock(hours), tzinfo=SHANGHAI).astimezone(UTC)


def pieces(city: City) -> Iterator[dict[str, Any]]:
    cut = pieces_of(open_intervals(), SHANGHAI)
    for room in city.rooms:
        for piece in cut:
            yield {
                "resource_id": room["resource_id"],
                "day": piece.day,
                "start_at": piece.start,
                "end_at": piece.end,
                "weekday": piece.weekday,
                "wall_second": piece.wall_second,
            }


def chunks(rows: Iterator[Any]) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def fill_postgresql(url: str, city: City, rng: random.Random) -> None:
    """COPY into the tables (asyncpg), then VACUUM ANALYZE as autovacuum would in time."""
    database = connect(url)
    try:
        async with database.driver() as connection:
            await _copy(connection, "catalogue_areas", ["area_id", "name", "path"], city.areas)
            await _copy(connection, "catalogue_resources", list(city.rooms[0]), city.rooms)
            for chunk in chunks(pieces(city)):
                await _copy(connection, "catalogue_open_hours", PIECE_COLUMNS, chunk)
            for chunk in chunks(bookings(city, rng)):
                await _copy(connection, "bookings", BOOKING_COLUMNS, [b for b, _ in chunk])
                await _copy(connection, "booking_slots", SLOT_COLUMNS, [s for _, s in chunk])
            await connection.execute(
                "INSERT INTO catalogue_listed (id, listed_at) VALUES (1, now())"
            )
            await connection.execute("VACUUM ANALYZE")
    finally:
        await database.dispose()


async def _copy(connection: Any, table: str, columns: list[str], rows: list[Any]) -> None:
    records = [
        tuple(row[column] for column in columns) if isinstance(row, dict) else row for row in rows
    ]
    await connection.copy_records_to_table(table, records=records, columns=columns)


def fill_sqlite(path: Path, city: City, rng: random.Random) -> None:
    """executemany in one transaction, instants written as SQLAlchemy writes them."""

    def value(item: Any) -> Any:
        if isinstance(item, datetime):
            return item.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return item

    def insert(connection: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> None:
        columns = list(rows[0])
        marks = ", ".join("?" for _ in columns)
        connection.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
            [tuple(value(row[c]) for c in columns) for row in rows],
        )

    with sqlite3.connect(path) as connection:
        connection.executemany("INSERT INTO catalogue_areas VALUES (?, ?, ?)", city.areas)
        insert(connection, "catalogue_resources", city.rooms)
        for chunk in chunks(pieces(city)):
            insert(connection, "catalogue_open_hours", chunk)
        for chunk in chunks(bookings(city, rng)):
            insert(connection, "bookings", [b for b, _ in chunk])
            insert(connection, "booking_slots", [s for _, s in chunk])
        connection.execute("INSERT INTO catalogue_listed VALUES (1, '2026-01-01 00:00:00.000000')")
    connection.close()


async def time_store(database: Database, rounds: int) -> tuple[list[float], int]:
    span = Interval(YEAR.start.astimezone(UTC), YEAR.end.astimezone(UTC))
    samples = []
    rows = 0
    for _ in range(rounds):
        started = perf_counter()
        async with database.read() as session:
            rows = len(await utilisation(session, span, Scope(), GroupBy.VENUE))
        samples.append(perf_counter() - started)
    return samples, rows


async def time_http(installed: Installation, url: str, rounds: int) -> list[float]:
    """The route in process, as booking's own process holds its settings."""
    settings, secrets = installed
    booking = as_service(settings, secrets, "booking").with_database("booking", url)
    token = BenchTokens(settings).token(Role.OFFICE, "office")
    params = {
        "from": YEAR.start.isoformat(),
        "to": YEAR.end.isoformat(),
        "group_by": "venue",
    }
    samples = []
    async with AsyncTestClient(app=create_app(booking)) as client:
        for _ in range(rounds):
            started = perf_counter()
            response = await client.get(
                "/v1/reports/utilisation",
                params=params,
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            samples.append(perf_counter() - started)
            assert response.status_code == 200, response.text
            assert len(response.json()["items"]) == TOWNS * VENUES_PER_TOWN
    return samples


async def run(kind: str, server: str, rounds: int, installed: Installation) -> None:
    rng = random.Random(7)
    city = City()
    with tempfile.TemporaryDirectory() as folder:
        url = (
            await create_database(server)
            if kind == "postgresql"
            else f"sqlite+aiosqlite:///{Path(folder) / 'booking.db'}"
        )
        try:
            booking_package = Path(store.__file__).parent
            await asyncio.to_thread(upgrade, booking_package, url)
            started = perf_counter()
            if kind == "postgresql":
                await fill_postgresql(url, city, rng)
            else:
                await asyncio.to_thread(fill_sqlite, Path(folder) / "booking.db", city, rng)
            print(f"{kind}: filled in {perf_counter() - started:.0f} s")
            database = connect(url)
            try:
                async with database.read() as session:
                    slots = await session.scalar(text("SELECT count(*) FROM booking_slots"))
                    pieces_count = await session.scalar(
                        text("SELECT count(*) FROM catalogue_open_hours")
                    )
                print(f"{kind}: {slots:,} slots, {pieces_count:,} open pieces")
                store_samples, rows = await time_store(database, rounds)
            finally:
                await database.dispose()
            _verdict(kind, f"store call, {rows} venues", store_samples)
            http_samples = await time_http(installed, url, rounds)
        finally:
            if kind == "postgresql":
                await drop_database(server, url)
    _verdict(kind, "HTTP, JSON", http_samples)


def _verdict(kind: str, label: str, samples: list[float]) -> None:
    median = statistics.median(samples)
    verdict = "PASS" if median < TARGETS[kind] else "FAIL"
    print(
        f"{kind}: {label}: median {median:.2f} s (min {min(samples):.2f}, "
        f"max {max(samples):.2f}), target < {TARGETS[kind]:.0f} s {verdict}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=sorted(TARGETS))
    parser.add_argument("--server", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        # The booking app is never asked to reach the registry: the replica covers the year.
        installed = installation(
            Path(folder), {"REDIS_URL": arguments.redis, "REGISTRY_URL": "http://127.0.0.1:9"}
        )
        with identity_running(*installed):
            for kind in [arguments.only] if arguments.only else ["postgresql", "sqlite"]:
                asyncio.run(run(kind, arguments.server, arguments.rounds, installed))


if __name__ == "__main__":
    main()
