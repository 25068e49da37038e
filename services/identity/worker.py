"""Identity's worker: relays its outbox, and keeps every verifier's view of revocations whole."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from arq.cron import cron

from services.identity.store import tables
from services.identity.store.logins import live_revocations, publish_revocations
from shared.config import Settings
from shared.worker import WorkerSettings, worker_settings


async def republish_revocations(ctx: dict[str, Any]) -> None:
    """Every revocation still in force, into the set verifiers read: a Redis that restarted
    empty, or a publish that failed after its commit, is made whole within half a minute."""
    async with ctx["database"].read() as session:
        live = await live_revocations(session, datetime.now(UTC))
    await publish_revocations(ctx["redis"], live)


def create_worker_settings(settings: Settings) -> WorkerSettings:
    return worker_settings(
        "identity",
        settings,
        tables=tables,
        handlers={},
        cron_jobs=[cron(republish_revocations, second={0, 30}, run_at_startup=True, unique=True)],
    )
