"""Alembic, one history per service: each service's `migrations/env.py` calls `run_env`.

`upgrade` is what `commonroom migrate` runs; it needs no alembic.ini, so it works the same from a
checkout, an installed wheel and a container.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from shared.db import connect, is_sqlite


def alembic_config(service_package: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(service_package / "migrations"))
    config.set_main_option("path_separator", "os")
    config.attributes["url"] = url
    return config


def upgrade(service_package: Path, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service_package, url), revision)


def _run_sync(connection: Connection, metadata: MetaData) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str, metadata: MetaData) -> None:
    database = connect(url)
    try:
        async with database.engine.connect() as connection:
            await connection.run_sync(_run_sync, metadata)
            await connection.commit()
    finally:
        await database.dispose()


def run_env(metadata: MetaData) -> None:
    """The body of a service's env.py: migrate the database named by the config's URL."""
    url = context.config.attributes["url"]
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, render_as_batch=is_sqlite(url))
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_async(url, metadata))
