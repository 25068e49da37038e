"""Booking creation against a bare Litestar handler, and availability of one room over a week.

Starts, each in its own process: identity (SQLite; it signs booking's own token for its calls to
the registry, and publishes the key every token is checked against), a registry (SQLite), one
booking service on a fresh PostgreSQL database, and a bare Litestar app whose one handler decodes
the same JSON body and answers 201. The bench's own tokens are signed with identity's key file.
Then, with 64 concurrent keep-alive clients:

1. the bare handler's throughput (requests per second) over `--seconds`;
2. booking creation's throughput the same way (every request a new, non-conflicting booking);
3. booking creation at 70% of that rate, open loop, for its p99 latency;
4. `GET /v1/resources/{id}/availability` over a week, one client, for its median.

Targets: ratio (2)/(1) >= 0.30, p99 at 70% < 100 ms, availability median < 5 ms. The fair-use
limits are off (one organisation booking thousands of hours is what they stop); `--limits` counts
every booking against a rate limit never reached, as an ordinary caller's are counted (in the
process; Redis only every tenth of the limit, which a huge limit never reaches).

    .venv/bin/python bench/bench_booking.py [--seconds 10] [--server postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--redis redis://127.0.0.1:6379/14] [--profile-sequential] [--limits]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from bench_identity import BenchTokens, identity_running, installation, start_service
from bench_resources import create_database, drop_database  # the script's own folder

from services.booking import store as booking_store
from services.registry import store as registry_store
from services.up import stop_children, wait_ready
from shared.auth import Role
from shared.migrations import upgrade
from shared.processes import guarded

CLIENTS = 64
ROOMS = 50
# Rooms booked as a city books them (three bookings a day), for the availability figure; the
# ROOMS above are packed wall to wall by the throughput runs.
TYPICAL_ROOMS = 10
DAYS = 20
SHANGHAI = ZoneInfo("Asia/Shanghai")

BARE_APP = """
import msgspec
from litestar import Litestar, post

class Body(msgspec.Struct):
    resource_ids: list[str]
    start: str
    end: str
    purpose: str

@post("/v1/bookings", status_code=201)
async def create(data: Body) -> dict[str, str]:
    return {"id": "0", "status": "confirmed"}

app = Litestar([create])
"""


class Connection:
    """A minimal HTTP/1.1 keep-alive client: the load generator must not be the bottleneck."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def post(self, path: str, body: bytes, token: str) -> int:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        return await self._response()

    async def get(self, path: str, token: str) -> int:
        head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        self.writer.write(head.encode() + b"\r\n")
        return await self._response()

    async def _response(self) -> int:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def bodies(rooms: list[str]) -> Iterator[bytes]:
    """Booking bodies that never collide: every room, every 15 minutes of `DAYS` days."""
    first = (datetime.now(SHANGHAI) + timedelta(days=2)).replace(
        hour=8, minute=0, second=0, microsecond=0
    )
    for day, quarter, room in itertools.product(range(DAYS), range(56), rooms):
        start = first + timedelta(days=day, minutes=15 * quarter)
        yield json.dumps(
            {
                "resource_ids": [room],
                "start": start.isoformat(),
                "end": (start + timedelta(minutes=15)).isoformat(),
                "purpose": "bench",
            }
        ).encode()


async def saturate(
    port: int, token: str, payloads: Iterator[bytes], seconds: float
) -> tuple[float, dict[int, int]]:
    """Requests per second with CLIENTS connections, each sending as fast as answers come."""
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        connection = await Connection.open(port)
        try:
            while time.perf_counter() < deadline:
                status = await connection.post("/v1/bookings", next(payloads), token)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            connection.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return sum(statuses.values()) / (time.perf_counter() - began), statuses


async def at_rate(
    port: int, token: str, payloads: Iterator[bytes], rate: float, seconds: float
) -> list[float]:
    """Latencies (ms) of requests sent on a fixed schedule, counted from when each was due."""
    connections = asyncio.Queue[Connection]()
    for _ in range(CLIENTS):
        connections.put_nowait(await Connection.open(port))
    latencies: list[float] = []
    start = time.perf_counter()

    async def one(due: float) -> None:
        connection = await connections.get()
        await connection.post("/v1/bookings", next(payloads), token)
        latencies.append((time.perf_counter() - due) * 1000)
        connections.put_nowait(connection)

    tasks = []
    for n in range(int(rate * seconds)):
        due = start + n / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    while not connections.empty():
        connections.get_nowait().close()
    return latencies


def seed_registry(base: str, token: str) -> list[str]:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        area = http.post("/v1/areas", json={"name": "镇"}).json()["id"]
        venue = http.post(
            "/v1/venues",
            json={"name": "学校", "kind": "school", "area_id": area, "owner_org": "org-v"},
        ).json()["id"]
        http.put(
            f"/v1/venues/{venue}/opening-hours",
            json={
                "periods": [
                    {
                        "name": "all",
                        "start_date": "2026-01-01",
                        "spans": [
                            {"weekdays": [1, 2, 3, 4, 5, 6, 7], "start": "08:00", "end": "22:00"}
                        ],
                    }
                ],
                "public_holidays": "open",
            },
        ).raise_for_status()
        rules = {"min_minutes": 15, "slot_minutes": 15}
        return [
            http.post(
                f"/v1/venues/{venue}/resources",
                json={"name": f"教室{n}", "type": "room", "rules": rules},
            ).json()["id"]
            for n in range(ROOMS + TYPICAL_ROOMS)
        ]


async def measure(
    args: argparse.Namespace, tokens: BenchTokens, booking_port: int, bare_port: int, registry: str
) -> None:
    office = tokens.token(Role.OFFICE, "office")
    manager = tokens.token(Role.COMMUNITY_MANAGER, "org-a")
    rooms = seed_registry(registry, office)
    typical, rooms = rooms[ROOMS:], rooms[:ROOMS]
    week_from = (datetime.now(SHANGHAI) + timedelta(days=2)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    typical_connection = await Connection.open(booking_port)
    for room, day, (start, end) in itertools.product(
        typical, range(7), ((9, 10), (14, 16), (19, 21))
    ):
        day_start = week_from + timedelta(days=day)
        body = {
            "resource_ids": [room],
            "start": (day_start + timedelta(hours=start)).isoformat(),
            "end": (day_start + timedelta(hours=end)).isoformat(),
            "purpose": "bench",
        }
        assert (
            await typical_connection.post("/v1/bookings", json.dumps(body).encode(), manager) == 201
        )
    typical_connection.close()
    payloads = bodies(rooms)
    # Warm the registry cache: a booking per room and day (the last quarter of each day, which
    # the measured runs reach last), as a city that has been running a while would have.
    all_bodies = list(payloads)
    per_day = 56 * ROOMS
    warm = [
        body
        for day in range(DAYS)
        for body in all_bodies[(day + 1) * per_day - ROOMS : (day + 1) * per_day]
    ]
    warm_connection = await Connection.open(booking_port)
    for body in warm:
        assert await warm_connection.post("/v1/bookings", body, manager) == 201
    warm_connection.close()
    warmed = set(warm)
    payloads = iter([body for body in all_bodies if body not in warmed])
    if args.profile_sequential:
        sequential = await Connection.open(booking_port)
        began = time.perf_counter()
        for _ in range(300):
            await sequential.post("/v1/bookings", next(payloads), manager)
        print(f"one client: {(time.perf_counter() - began) / 300 * 1000:.2f} ms per booking")
        sequential.close()
    bare_rps, _ = await saturate(bare_port, manager, itertools.cycle(warm), args.seconds)
    booking_rps, statuses = await saturate(booking_port, manager, payloads, args.seconds)
    ratio = booking_rps / bare_rps
    latencies = await at_rate(booking_port, manager, payloads, 0.7 * booking_rps, args.seconds)
    p99 = statistics.quantiles(latencies, n=100)[98]

    query = httpx.QueryParams(
        {"from": week_from.isoformat(), "to": (week_from + timedelta(days=7)).isoformat()}
    )
    connection = await Connection.open(booking_port)
    samples = []
    for n in range(300):
        began = time.perf_counter()
        status = await connection.get(
            f"/v1/resources/{typical[n % TYPICAL_ROOMS]}/availability?{query}", manager
        )
        samples.append((time.perf_counter() - began) * 1000)
        assert status == 200, status
    connection.close()
    availability = statistics.median(samples[50:])

    print(f"bare Litestar handler: {bare_rps:8.0f} req/s ({CLIENTS} clients, {args.seconds:.0f} s)")
    print(f"booking creation:      {booking_rps:8.0f} req/s  statuses {statuses}")
    print(
        f"ratio booking/bare:    {ratio:8.2f}   target >= 0.30:",
        "PASS" if ratio >= 0.30 else "FAIL",
    )
    print(
        f"p99 at 70% ({0.7 * booking_rps:.0f} req/s): {p99:6.1f} ms  target < 100 ms:",
        "PASS" if p99 < 100 else "FAIL",
    )
    print(
        f"availability, one room (21 bookings) over a week: median {availability:.2f} ms"
        "  target < 5 ms:",
        "PASS" if availability < 5 else "FAIL",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--server", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--profile-sequential", action="store_true", help="also time one client")
    parser.add_argument(
        "--limits",
        action="store_true",
        help="count every booking against a rate limit never reached",
    )
    args = parser.parse_args()

    booking_url = asyncio.run(create_database(args.server))
    with tempfile.TemporaryDirectory() as scratch:
        registry_url = f"sqlite+aiosqlite:///{Path(scratch) / 'registry.db'}"
        ports = {"registry": 8181, "booking": 8182, "bare": 8183}
        settings, secrets = installation(
            Path(scratch),
            {
                "REDIS_URL": args.redis,
                # One organisation books thousands of hours a second here: what the fair-use
                # limits exist to stop. `--limits` keeps the rate limit's Redis round trip in.
                "COMMONROOM_BOOKING_RATE_PER_MINUTE": "1000000000" if args.limits else "0",
                "COMMONROOM_FAIR_USE_HOURS_PER_WEEK": "0",
                "REGISTRY_DATABASE_URL": registry_url,
                "BOOKING_DATABASE_URL": booking_url,
                "REGISTRY_URL": f"http://127.0.0.1:{ports['registry']}",
                "BOOKING_URL": f"http://127.0.0.1:{ports['booking']}",
            },
        )
        bare = Path(scratch) / "bare_app.py"
        bare.write_text(BARE_APP)
        try:
            upgrade(Path(registry_store.__file__).parent, registry_url)
            upgrade(Path(booking_store.__file__).parent, booking_url)
            with identity_running(settings, secrets):
                children: list[subprocess.Popen[bytes]] = []
                try:
                    children.append(start_service(settings, secrets, "registry"))
                    children.append(start_service(settings, secrets, "booking"))
                    children.append(
                        subprocess.Popen(
                            guarded(
                                [
                                    sys.executable,
                                    "-m",
                                    "uvicorn",
                                    "--app-dir",
                                    scratch,
                                    "bare_app:app",
                                    "--port",
                                    str(ports["bare"]),
                                    "--log-level",
                                    "warning",
                                    "--no-access-log",
                                ]
                            ),
                            stdout=subprocess.DEVNULL,
                        )
                    )
                    wait_ready(
                        [settings.service_url(name) for name in ("registry", "booking")], children
                    )
                    for _ in range(100):
                        try:
                            httpx.post(f"http://127.0.0.1:{ports['bare']}/v1/bookings", json={})
                            break
                        except httpx.HTTPError:
                            time.sleep(0.1)
                    asyncio.run(
                        measure(
                            args,
                            BenchTokens(settings),
                            ports["booking"],
                            ports["bare"],
                            settings.service_url("registry"),
                        )
                    )
                finally:
                    stop_children(children)
        finally:
            asyncio.run(drop_database(args.server, booking_url))


if __name__ == "__main__":
    main()
