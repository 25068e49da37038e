"""A whole matching run through the running suite: 500 lecturers, 300 schools, 600 sessions.

Registry, booking and lecturers (each API and worker its own process) on fresh PostgreSQL
databases and the machine's Redis, beside identity (API and worker, SQLite in a temporary folder
with the installation's signing key and clients file; every process gets its own client secret).
The city is made through the public APIs (10 towns, 300 citizen schools open weekday evenings and
weekends, 1-3 rooms each, 500 lecturers with 2-3 of 12 topics, one request of two 90-minute
sessions per school for next month) with an office token signed with identity's key file. Then
`POST /v1/matching/runs` is timed until the run reads `done`: the lecturer worker asks the
registry for every school's rooms and the booking service for their free time, solves, and holds
a room per assignment as a pending booking. Before the run, the same problem is read the way the
worker reads it and given to the greedy first-fit baseline, whose count is printed beside the
run's. The solver's own figures on synthetic data are bench_matching.py's. The Redis database of
`--redis` is emptied first. The holds' own times are read from booking's request log (every
process logs to `--logs`, or to a temporary folder).

    .venv/bin/python bench/bench_matching_run.py [--seed 1] \
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres] \
        [--redis redis://127.0.0.1:6379/14] [--logs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from bench_identity import (
    BenchTokens,
    as_service,
    identity_running,
    installation,
    start_service,
)
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.cli import service_package
from services.lecturers.domain.matching import first_fit
from services.lecturers.worker import Jobs
from services.up import stop_children, wait_ready
from shared.auth import Role
from shared.config import ServiceName, Settings
from shared.db import connect
from shared.migrations import upgrade
from shared.processes import free_port
from shared.time import next_month

TOPICS = ["健康", "法律", "育儿", "数字技能", "养老护理", "防诈骗", "书法", "太极拳", "营养",
          "急救", "理财", "园艺"]  # fmt: skip
HOURS = {
    "periods": [
        {
            "name": "全年",
            "start_date": "2026-01-01",
            "spans": [
                {"weekdays": [1, 2, 3, 4, 5], "start": "18:00", "end": "21:30"},
                {"weekdays": [6, 7], "start": "08:30", "end": "17:00"},
            ],
        }
    ],
    "public_holidays": "closed",
}
AVAILABILITY = [
    [{"weekdays": [1, 2, 3, 4, 5], "start": "18:00", "end": "21:30"}],
    [{"weekdays": [6, 7], "start": "08:30", "end": "17:00"}],
    [
        {"weekdays": [2, 4], "start": "18:00", "end": "21:30"},
        {"weekdays": [6], "start": "08:30", "end": "12:00"},
    ],
]
TARGET_SECONDS = 10.0
# The services of the run, each on PostgreSQL; identity runs beside them on SQLite.
SUITE: tuple[ServiceName, ...] = ("registry", "booking", "lecturers")


async def _admin(server: str, statement: str) -> None:
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def _flush(url: str) -> None:
    """An empty queue: no job of an earlier run may reach these databases."""
    redis = Redis.from_url(url)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


class Running:
    """Every service and worker, each its own process with its service's client secret; logs in
    `logs/<service>-<role>.log`."""

    def __init__(self, settings: Settings, secrets: dict[str, str], logs: Path | None) -> None:
        self.settings = settings
        self.secrets = secrets
        self.logs = logs
        self.children: dict[tuple[str, str], subprocess.Popen[bytes]] = {}

    def start(self, service: ServiceName, role: Literal["serve", "worker"]) -> None:
        log = None if self.logs is None else self.logs / f"{service}-{role}.log"
        self.children[service, role] = start_service(
            self.settings, self.secrets, service, role, log=log
        )

    def ready(self) -> None:
        services = [self.settings.service_url(service) for service in SUITE]
        wait_ready(services, list(self.children.values()))

    def restart_cold(self, service: ServiceName) -> None:
        """The service's API process anew, and its database's replica of the registry emptied:
        nothing an earlier caller asked stays warm for the next."""
        stop_children([self.children[service, "serve"]])
        # The listing goes too: the reports must not take a catalogue without resources as whole.
        for table in ("catalogue_open_hours", "catalogue_resources", "catalogue_listed"):
            asyncio.run(_admin(self.settings.database_url(service), f"DELETE FROM {table}"))  # noqa: S608
        self.start(service, "serve")
        self.ready()


@contextmanager
def running(settings: Settings, secrets: dict[str, str], logs: Path | None) -> Iterator[Running]:
    suite = Running(settings, secrets, logs)
    try:
        for service in SUITE:
            for role in ("serve", "worker"):
                suite.start(service, role)
        suite.ready()
        yield suite
    finally:
        stop_children(list(suite.children.values()))


async def _gather(calls: list[Awaitable[Any]], at_once: int = 16) -> list[Any]:
    gate = asyncio.Semaphore(at_once)

    async def one(call: Awaitable[Any]) -> Any:
        async with gate:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


async def _made(response: Awaitable[httpx.Response]) -> str:
    answer = await response
    answer.raise_for_status()
    return str(answer.json()["id"])


async def build_city(settings: Settings, seed: int, month: str) -> None:
    rng = random.Random(seed)
    office = BenchTokens(settings).headers(Role.OFFICE, "office")

    def client(service: ServiceName) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=settings.service_url(service), headers=office, timeout=60)

    async with client("registry") as registry, client("lecturers") as lecturers:
        city = await _made(registry.post("/v1/areas", json={"name": "鹭湖市"}))
        towns = await _gather(
            [
                _made(registry.post("/v1/areas", json={"name": f"第{n}镇", "parent_id": city}))
                for n in range(10)
            ]
        )
        centres = {town: (24.4 + rng.random() / 5, 118.0 + rng.random() / 5) for town in towns}

        def near(town: str) -> dict[str, float]:
            lat, lon = centres[town]
            return {"lat": lat + rng.uniform(-0.03, 0.03), "lon": lon + rng.uniform(-0.03, 0.03)}

        schools = [(n, rng.choice(towns)) for n in range(300)]  # (number, town)
        venues = await _gather(
            [
                _made(
                    registry.post(
                        "/v1/venues",
                        json={
                            "name": f"第{n}市民学校",
                            "kind": "citizen_school",
                            "area_id": town,
                            "owner_org": f"school-{n}",
                            "location": near(town),
                        },
                    )
                )
                for n, town in schools
            ]
        )
        for answer in await _gather(
            [registry.put(f"/v1/venues/{venue}/opening-hours", json=HOURS) for venue in venues]
        ):
            answer.raise_for_status()
        await _gather(
            [
                _made(
                    registry.post(
                        f"/v1/venues/{venue}/resources",
                        json={"name": f"教室{k + 1}", "type": "room", "capacity": 60},
                    )
                )
                for venue in venues
                for k in range(rng.randint(1, 3))
            ]
        )
        await _gather(
            [
                _made(
                    lecturers.post(
                        "/v1/lecturers",
                        json={
                            "name": f"讲师{n}",
                            "topics": rng.sample(TOPICS, rng.randint(2, 3)),
                            "area_id": town,
                            "location": near(town),
                            "max_per_month": rng.randint(2, 4),
                            "availability": rng.choice(AVAILABILITY),
                        },
                    )
                )
                for n in range(500)
                for town in (rng.choice(towns),)
            ]
        )
        await _gather(
            [
                _made(
                    lecturers.post(
                        "/v1/requests",
                        json={
                            "venue_id": venue,
                            "topic": rng.choice(TOPICS),
                            "programme": "citizen",
                            "month": month,
                            "sessions": 2,
                            "minutes": 90,
                            "attendees": 40,
                        },
                    )
                )
                for venue in venues
            ]
        )


async def first_fit_covers(settings: Settings, month: str) -> int:
    """Sessions the greedy first-fit baseline covers, on the problem the run is about to solve
    (read as the lecturers' worker reads it: `settings` with the lecturers' client secret)."""
    jobs = Jobs(settings)
    database = connect(settings.database_url("lecturers"))
    try:
        plan = await jobs.plan(database, month, None, datetime.now(UTC))
    finally:
        await jobs.stop({})
        await database.engine.dispose()
    return len(first_fit(plan.problem).assignments)


async def time_run(settings: Settings, month: str) -> tuple[float, dict[str, Any]]:
    office = BenchTokens(settings).headers(Role.OFFICE, "office")
    async with httpx.AsyncClient(
        base_url=settings.service_url("lecturers"), headers=office, timeout=60
    ) as lecturers:
        began = time.perf_counter()
        asked = await lecturers.post("/v1/matching/runs", json={"month": month})
        asked.raise_for_status()
        run_id = asked.json()["run_id"]
        while True:
            run: dict[str, Any] = (await lecturers.get(f"/v1/matching/runs/{run_id}")).json()
            if run["status"] in ("done", "failed"):
                return time.perf_counter() - began, run
            await asyncio.sleep(0.05)


def hold_times(log: Path) -> list[float]:
    """Milliseconds booking took over each hold it made, from its request log."""
    found = []
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if (entry.get("method"), entry.get("path"), entry.get("status")) == (
            "POST",
            "/v1/bookings",
            201,
        ):
            found.append(float(entry["duration_ms"]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--logs", type=Path, help="a folder for the processes' logs")
    args = parser.parse_args()
    month = f"{next_month(datetime.now(UTC).date()):%Y-%m}"
    names = {service: f"bench_run_{service}" for service in SUITE}
    with tempfile.TemporaryDirectory() as tmp:
        logs: Path = args.logs or Path(tmp) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        settings, secrets = installation(Path(tmp), {"REDIS_URL": args.redis})
        for service, name in names.items():
            asyncio.run(_admin(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            asyncio.run(_admin(args.postgres, f'CREATE DATABASE "{name}"'))
            url = make_url(args.postgres).set(database=name).render_as_string(False)
            upgrade(service_package(service), url)
            settings = settings.with_database(service, url).with_service_url(
                service, f"http://127.0.0.1:{free_port()}"
            )
        try:
            asyncio.run(_flush(args.redis))
            with (
                identity_running(settings, secrets, worker=True, logs=logs),
                running(settings, secrets, logs) as suite,
            ):
                began = time.perf_counter()
                asyncio.run(build_city(settings, args.seed, month))
                print(f"city made through the APIs in {time.perf_counter() - began:.1f} s")
                baseline = asyncio.run(
                    first_fit_covers(as_service(settings, secrets, "lecturers"), month)
                )
                # The baseline asked booking for the rooms' free time: the run starts cold.
                suite.restart_cold("booking")
                elapsed, run = asyncio.run(time_run(settings, month))
            holds = hold_times(logs / "booking-serve.log")
        finally:
            for name in names.values():
                asyncio.run(_admin(args.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    reasons = Counter(item["reason"] for item in run["unmatched"])
    print(
        f"run {run['status']} in {elapsed:.2f} s (target {TARGET_SECONDS:.0f} s): "
        f"{len(run['assignments'])} of 600 sessions offered and held, optimal={run['optimal']}, "
        f"unmatched {dict(reasons)}{' failure ' + run['failure'] if run['failure'] else ''}"
    )
    print(f"first-fit on the same problem: {baseline} of 600 sessions")
    if holds:
        cuts = statistics.quantiles(holds, n=100)
        print(
            f"holds as booking served them: {len(holds)}, p50 {statistics.median(holds):.1f} ms, "
            f"p95 {cuts[94]:.1f} ms"
        )


if __name__ == "__main__":
    main()
