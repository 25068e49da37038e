"""Signing in at identity: the password grant one at a time and 4 in flight, the refresh grant,
and what checking a token costs a service once it has seen it.

Identity alone (`commonroom serve identity` in its own process, SQLite in a temporary folder,
default settings: argon2id as shipped, hashed in a pool as wide as the machine), one account made
with `add_user` (what `commonroom users add` runs); then over loopback, each after a warm-up
login: `--logins` password grants one at a time (median, p95), the same number with `--in-flight`
at once (median, p95, logins a second), and `--refreshes` refresh grants one at a time, each with
the refresh token the last one returned. Target: a password login answers in under 300 ms at the
median.

Then, in this process, `shared.auth.TokenVerifier` with identity's published keys: a token it has
checked before (what every request after a client's first costs a service: no signature, a
revocation set lookup), calls a second over `--checks` calls; and, for comparison, a token's
first check (the Ed25519 signature), over 1,000 tokens signed with identity's key file.

    .venv/bin/python bench/bench_login.py [--logins 50] [--in-flight 4] [--refreshes 50]
        [--checks 100000] [--redis redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import tempfile
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx
from bench_identity import BenchTokens, identity_running, installation

from services.identity.cli import add_user
from services.identity.domain.tokens import Membership
from shared.auth import PublishedKeys, Revocations, Role, TokenVerifier
from shared.config import Settings

TARGET_MS = 300.0
EMAIL = "bench@luhu.example.org"
MEMBERSHIP = Membership(org="bench-community", role=Role.COMMUNITY_MANAGER)
FIRST_CHECKS = 1000


def _summary(label: str, samples: list[float]) -> str:
    p95 = statistics.quantiles(samples, n=20)[-1]
    return f"  {label:<38} median {statistics.median(samples):6.1f} ms   p95 {p95:6.1f} ms"


async def _grant(client: httpx.AsyncClient, body: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """One call of the token endpoint: its time in ms, and its answer."""
    began = perf_counter()
    response = await client.post("/v1/token", json=body)
    elapsed = (perf_counter() - began) * 1000
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return elapsed, answer


async def measure_grants(settings: Settings, password: str, args: argparse.Namespace) -> str:
    """Print the grants' figures; return an access token of the account."""
    login = {"grant_type": "password", "username": EMAIL, "password": password}
    async with httpx.AsyncClient(base_url=settings.service_url("identity"), timeout=60) as client:
        await _grant(client, login)  # warm: connection, statements, the hashing pool
        sequential = [(await _grant(client, login))[0] for _ in range(args.logins)]

        gate = asyncio.Semaphore(args.in_flight)

        async def gated() -> float:
            async with gate:
                return (await _grant(client, login))[0]

        began = perf_counter()
        concurrent = await asyncio.gather(*(gated() for _ in range(args.logins)))
        wall = perf_counter() - began

        _, answer = await _grant(client, login)
        refresh_token = answer["refresh_token"]
        refreshes = []
        for _ in range(args.refreshes):
            elapsed, refreshed = await _grant(
                client, {"grant_type": "refresh_token", "refresh_token": refresh_token}
            )
            refreshes.append(elapsed)
            refresh_token = refreshed["refresh_token"]

    median = statistics.median(sequential)
    print("identity alone (SQLite, default settings), one account, over loopback:")
    print(
        _summary(f"password grant, one at a time ({args.logins})", sequential),
        f"  target < {TARGET_MS:.0f} ms:",
        "PASS" if median < TARGET_MS else "FAIL",
    )
    print(
        _summary(f"password grant, {args.in_flight} in flight ({args.logins})", concurrent),
        f"  {args.logins / wall:5.1f} logins/s",
    )
    print(_summary(f"refresh grant, one at a time ({args.refreshes})", refreshes))
    token: str = answer["access_token"]
    return token


async def measure_checks(settings: Settings, token: str, checks: int) -> None:
    """Print what `TokenVerifier` costs on a token it has seen, and on a token's first check."""
    async with httpx.AsyncClient(base_url=settings.service_url("identity"), timeout=10) as http:

        async def fetch() -> bytes:
            response = await http.get("/.well-known/jwks.json")
            response.raise_for_status()
            return response.content

        verifier = TokenVerifier(
            PublishedKeys(fetch, max_age=settings.jwks_max_age_seconds),
            Revocations(),
            issuer=settings.issuer,
        )
        header = f"Bearer {token}"
        await verifier(header)  # the first check: reads identity's keys, checks the signature
        began = perf_counter()
        for _ in range(checks):
            await verifier(header)
        warm = perf_counter() - began

        signed = BenchTokens(settings)
        fresh = [
            f"Bearer {signed.token(MEMBERSHIP.role, MEMBERSHIP.org)}" for _ in range(FIRST_CHECKS)
        ]
        began = perf_counter()
        for each in fresh:
            await verifier(each)
        first = perf_counter() - began

    print("token check in this process (shared.auth.TokenVerifier, identity's published keys):")
    print(
        f"  a token checked before ({checks} calls)      {checks / warm:10,.0f} calls/s "
        f"({warm / checks * 1e6:.1f} µs each)"
    )
    print(
        f"  a token's first check ({FIRST_CHECKS} tokens)       "
        f"{first / FIRST_CHECKS * 1e6:10.1f} µs each (the Ed25519 signature)"
    )


async def bench(settings: Settings, password: str, args: argparse.Namespace) -> None:
    await add_user(settings, email=EMAIL, password=password, membership=MEMBERSHIP)
    token = await measure_grants(settings, password, args)
    await measure_checks(settings, token, args.checks)
    print(f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=50)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--refreshes", type=int, default=50)
    parser.add_argument("--checks", type=int, default=100_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings, client_secrets = installation(Path(folder), {"REDIS_URL": args.redis})
        with identity_running(settings, client_secrets):
            asyncio.run(bench(settings, secrets.token_urlsafe(18), args))


if __name__ == "__main__":
    main()
