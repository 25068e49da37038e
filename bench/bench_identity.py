"""What the benches share since identity alone signs tokens: an installation of their own.

Each bench makes, under a temporary folder of its own, what `commonroom up` makes under `var/`:
identity's signing key, the clients file with a secret per service, the lecturer links' secret
(`services.up.installation_secrets`). It runs a real identity (`commonroom serve identity`, its
SQLite database in that folder), hands every process it starts that service's own client secret
and no other's, and mints its own bearer tokens by signing with the key file, as
`services.demo.load` and the tests' `Tokens` do. So services check every token against identity's
published keys, and call each other with the tokens identity grants them, as shipped.

Not a benchmark itself: the others import it from their own folder (`from bench_identity import`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal, NamedTuple

from services.cli import service_package
from services.identity.domain.keys import SigningKey
from services.identity.domain.tokens import Membership, access_token
from services.identity.store.keys import read_key_file
from services.identity.store.logins import new_sid
from services.up import child_env, installation_secrets, service_port, stop_children, wait_ready
from shared.auth import Role
from shared.config import ServiceName, Settings
from shared.migrations import upgrade
from shared.processes import free_port, guarded

# Long enough for the slowest bench between minting a token and its last request.
BENCH_TOKEN_TTL = timedelta(hours=2)


class Installation(NamedTuple):
    """A bench's settings, and each service's client secret (what identity's clients file holds)."""

    settings: Settings
    secrets: dict[str, str]


def installation(folder: Path, env: Mapping[str, str] | None = None) -> Installation:
    """Settings from `env` alone (not this process's environment), with `folder` as the var
    directory, identity on a free port of loopback (and so the tokens' issuer), and the
    installation's secrets made in `folder`."""
    settings = Settings.from_env(
        {
            "COMMONROOM_VAR_DIR": str(folder),
            "IDENTITY_URL": f"http://127.0.0.1:{free_port()}",
            **(env or {}),
        }
    )
    return Installation(*installation_secrets(settings))


def as_service(settings: Settings, secrets: Mapping[str, str], service: ServiceName) -> Settings:
    """`settings` as the process of `service` holds them: with its own client secret alone."""
    return replace(settings, client_secret=secrets[service])


def start_service(
    settings: Settings,
    secrets: Mapping[str, str],
    service: ServiceName,
    role: Literal["serve", "worker"] = "serve",
    *,
    port: int | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`commonroom serve <service>` (on `port`, else its URL's) or `commonroom worker <service>`
    as a child that dies with this process, in a process group of its own (stopped with
    `stop_children`), with that service's client secret; its output to `log`, else nowhere."""
    arguments = (
        ["serve", service, "--port", str(port or service_port(settings, service))]
        if role == "serve"
        else ["worker", service]
    )
    output: IO[bytes] | int = subprocess.DEVNULL if log is None else log.open("ab")
    try:
        return subprocess.Popen(
            guarded([sys.executable, "-m", "services.cli", *arguments]),
            env=child_env(as_service(settings, secrets, service)),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
    finally:
        if not isinstance(output, int):
            output.close()


@contextmanager
def identity_running(
    settings: Settings,
    secrets: Mapping[str, str],
    *,
    worker: bool = False,
    logs: Path | None = None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Identity serving at its URL (with its worker where asked) until the block ends, on its
    SQLite database in the var directory, migrated first; yields its processes."""
    upgrade(service_package("identity"), settings.database_url("identity"))
    children: list[subprocess.Popen[bytes]] = []
    try:
        for role in ("serve", "worker") if worker else ("serve",):
            log = None if logs is None else logs / f"identity-{role}.log"
            children.append(start_service(settings, secrets, "identity", role, log=log))
        wait_ready([settings.service_url("identity")], children)
        yield children
    finally:
        stop_children(children)


class BenchTokens:
    """Bearer tokens signed with identity's key file, as `commonroom token` signs an operator's
    (each its own login id): no login is recorded, so none can be revoked."""

    def __init__(self, settings: Settings) -> None:
        self.key: SigningKey = read_key_file(settings.signing_key_file)
        self.issuer = settings.issuer

    def token(
        self,
        role: Role,
        org: str,
        *,
        sub: str = "bench",
        lecturer_id: str | None = None,
        ttl: timedelta = BENCH_TOKEN_TTL,
    ) -> str:
        signed: str = access_token(
            self.key,
            issuer=self.issuer,
            sub=sub,
            membership=Membership(org=org, role=role, lecturer_id=lecturer_id),
            sid=new_sid(),
            now=datetime.now(UTC),
            ttl=ttl,
        )
        return signed

    def headers(self, role: Role, org: str, *, sub: str = "bench") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, org, sub=sub)}"}
