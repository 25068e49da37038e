"""GET /v1/resources with 10,000 resources in the catalogue: the latency of a filtered page.

Seeds a fresh PostgreSQL database (a city, 10 towns, 100 communities, 1,000 venues, 10,000
resources with features), serves the registry with `commonroom serve` in its own process, and times
filtered list requests over loopback with a community manager's token, signed with the key of a
real identity (SQLite, in a temporary folder) and checked against its published keys. Target:
median under 20 ms.

    .venv/bin/python bench/bench_resources.py [--server postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
        [--rounds 300] [--redis redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from bench_identity import BenchTokens, identity_running, installation, start_service
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.registry import store
from services.up import stop_children, wait_ready
from shared.auth import Role
from shared.db import connect
from shared.ids import new_id
from shared.migrations import upgrade

FEATURES = ["projector", "piano", "stage", "wifi", "whiteboard", "kitchen", "computers", "sound"]
PORT = 8101


async def create_database(server: str) -> str:
    name = f"bench_registry_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


async def drop_database(server: str, url: str) -> None:
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(
            text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
        )
    await admin.dispose()


async def seed(url: str, rng: random.Random) -> dict[str, str]:
    now = datetime.now(UTC)
    city = new_id()
    areas = [
        {
            "id": city,
            "name": "市",
            "parent_id": None,
            "path": f"{city}/",
            "population": None,
            "created_at": now,
        }
    ]
    towns: list[str] = []
    communities: list[tuple[str, str]] = []
    for t in range(10):
        town = new_id()
        towns.append(town)
        areas.append(
            {
                "id": town,
                "name": f"镇{t}",
                "parent_id": city,
                "path": f"{city}/{town}/",
                "population": None,
                "created_at": now,
            }
        )
        for c in range(10):
            community = new_id()
            path = f"{city}/{town}/{community}/"
            communities.append((community, path))
            areas.append(
                {
                    "id": community,
                    "name": f"社区{t}-{c}",
                    "parent_id": town,
                    "path": path,
                    "population": None,
                    "created_at": now,
                }
            )
    venues = []
    for v in range(1000):
        community, _ = communities[v % len(communities)]
        venues.append(
            {
                "id": new_id(),
                "name": f"学校{v}",
                "kind": rng.choice(["school", "citizen_school", "cultural_centre"]),
                "area_id": community,
                "owner_org": f"org-{v % 50}",
                "address": None,
                "timezone": "Asia/Shanghai",
                "holiday_calendar": "CN",
                "lat": None,
                "lon": None,
                "description": None,
                "opening_hours": None,
                "created_at": now,
                "updated_at": now,
            }
        )
    resources, features = [], []
    rules = {
        "min_minutes": 30,
        "max_minutes": 240,
        "lead_minutes": 0,
        "horizon_days": 90,
        "buffer_minutes": 0,
        "slot_minutes": 15,
    }
    for r in range(10_000):
        resource_id = new_id()
        is_room = rng.random() < 0.8
        resources.append(
            {
                "id": resource_id,
                "venue_id": venues[r % len(venues)]["id"],
                "name": f"教室{r}",
                "type": "room" if is_room else "equipment",
                "capacity": rng.randint(10, 300) if is_room else None,
                "requires_approval": rng.random() < 0.2,
                "rules": rules,
                "description": None,
                "opening_hours": None,
                "created_at": now,
                "updated_at": now,
            }
        )
        features += [
            {"resource_id": resource_id, "feature": f}
            for f in rng.sample(FEATURES, rng.randint(0, 3))
        ]
    database = connect(url)
    async with database.write() as session:
        await session.execute(insert(store.AreaRow), areas)
        await session.execute(insert(store.VenueRow), venues)
        await session.execute(insert(store.ResourceRow), resources)
        await session.execute(insert(store.ResourceFeatureRow), features)
    async with database.engine.connect() as connection:
        await connection.execute(text("ANALYZE"))
    await database.dispose()
    return {"town": towns[3], "venue": venues[17]["id"]}


def measure(client: httpx.Client, label: str, params: dict[str, object], rounds: int) -> float:
    client.get("/v1/resources", params=params)  # warm the path
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get("/v1/resources", params=params)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    median = statistics.median(timings)
    p95 = statistics.quantiles(timings, n=20)[-1]
    count = len(response.json()["items"])
    print(f"  {label:<45} median {median:6.2f} ms   p95 {p95:6.2f} ms   ({count} items)")
    return median


@contextmanager
def measured_registry(folder: Path, url: str, redis: str) -> Iterator[str]:
    """Identity, and the registry on the seeded database, each in its own process until the
    block ends; a community manager's token signed with identity's key."""
    settings, secrets = installation(
        folder,
        {
            "REDIS_URL": redis,
            "REGISTRY_DATABASE_URL": url,
            "REGISTRY_URL": f"http://127.0.0.1:{PORT}",
        },
    )
    with identity_running(settings, secrets):
        server = start_service(settings, secrets, "registry")
        try:
            wait_ready([settings.service_url("registry")], [server])
            yield BenchTokens(settings).token(Role.COMMUNITY_MANAGER, "bench")
        finally:
            stop_children([server])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--server",
        default=os.environ.get(
            "TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    url = asyncio.run(create_database(args.server))
    package = Path(store.__file__).parent
    try:
        upgrade(package, url)
        ids = asyncio.run(seed(url, random.Random(7)))
        with (
            tempfile.TemporaryDirectory() as folder,
            measured_registry(Path(folder), url, args.redis) as token,
            httpx.Client(
                base_url=f"http://127.0.0.1:{PORT}", headers={"Authorization": f"Bearer {token}"}
            ) as client,
        ):
            print("GET /v1/resources, 10,000 resources, PostgreSQL, one uvicorn process:")
            medians = [
                measure(client, "first page, no filter", {}, args.rounds),
                measure(
                    client,
                    "type=room&min_capacity=100",
                    {"type": "room", "min_capacity": 100},
                    args.rounds,
                ),
                measure(
                    client,
                    "feature=projector&feature=wifi",
                    {"feature": ["projector", "wifi"]},
                    args.rounds,
                ),
                measure(
                    client,
                    "area_id=<town>&type=room&feature=projector",
                    {"area_id": ids["town"], "type": "room", "feature": "projector"},
                    args.rounds,
                ),
                measure(client, "venue_id=<venue>", {"venue_id": ids["venue"]}, args.rounds),
                measure(client, "limit=500", {"limit": 500}, args.rounds // 3),
            ]
        worst = max(medians[:-1])
        print(
            f"worst filtered median (50 per page): {worst:.2f} ms, target < 20 ms:",
            "PASS" if worst < 20 else "FAIL",
        )
    finally:
        asyncio.run(drop_database(args.server, url))


if __name__ == "__main__":
    main()
