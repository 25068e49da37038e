"""What identity's handlers are given besides the caller and the transaction."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import Request
from litestar.di import NamedDependency, Provide
from redis.asyncio import Redis

from services.identity.domain.passwords import Passwords
from services.identity.store.keys import Keyring
from services.identity.store.logins import live_revocations, publish_revocations
from shared.config import Settings
from shared.db import Database
from shared.web import service_state


@dataclass
class Identity:
    """Identity's own runtime: its keys, its password hasher, its clients' secrets."""

    settings: Settings
    database: Database
    redis: Redis
    keyring: Keyring
    passwords: Passwords
    clients: dict[str, str]

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def client_is(self, client_id: str, secret: str) -> bool:
        expected = self.clients.get(client_id)
        # Compared in constant time even for an unknown client.
        return hmac.compare_digest(secret.encode(), (expected or "\0" * 64).encode()) and (
            expected is not None
        )

    async def publish_revocations(self, members: list[str]) -> None:
        """Tell every verifier now; the worker re-publishes all of them every half minute too,
        so a Redis that was away or emptied learns them again."""
        if not members:
            return
        async with self.database.read() as session:
            live = await live_revocations(session, datetime.now(UTC))
        await publish_revocations(self.redis, {m: live[m] for m in members if m in live})


def identity_of(request: Request[Any, Any, Any]) -> Identity:
    held: Identity = service_state(request.app.state).extras["identity"]
    return held


DEPENDENCIES = {"identity": Provide(identity_of, sync_to_thread=False)}
# How a handler asks for it, by name (`identity: IdentityRuntime`), as for `Caller` and
# `DbSession`: a bare `identity: Identity` is an inferred dependency, which Litestar 2.25 warns of.
IdentityRuntime = NamedDependency[Identity]
