"""Database engines and sessions for SQLite (the embedded default) and PostgreSQL.

SQLite runs in WAL mode with foreign keys on; write transactions start with `BEGIN IMMEDIATE`, so
a check and the write that depends on it cannot interleave with another writer. PostgreSQL goes
through asyncpg; a restarted server costs the requests on its broken connections a 503, not a 500.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import DateTime, MetaData, Select, event, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator

from shared.errors import NotFound

Row = TypeVar("Row")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_SQLITE_BUSY_TIMEOUT_SECONDS = 30


def new_metadata() -> MetaData:
    """Each service's own MetaData, with constraint names stable across both dialects."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware instant stored in UTC; SQLite gives back naive values, so they are re-tagged."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002 - the signature TypeDecorator calls
    ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def one_or_404(
    session: AsyncSession, query: Select[Row], what: str, *, lock: bool = False
) -> Row:
    """The one row `query` finds, or 404 `no such <what>`; `lock` holds it (PostgreSQL's FOR
    UPDATE) until the transaction ends. SQLite needs no row lock: its write transactions begin
    IMMEDIATE, one at a time."""
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = await session.scalar(query)
    if row is None:
        raise NotFound(f"no such {what}")
    return row


# SQLSTATEs that say the server cannot serve now, not that a statement was wrong: class 08
# (connection exception), admin and crash shutdown, and "the database system is starting up".
_OUTAGE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def database_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database is away (down, restarting, a connection it dropped): as
    SQLAlchemy reports it, as asyncpg does on a bare driver connection, or as the socket error of
    a refused connect, which SQLAlchemy passes on unwrapped."""
    if isinstance(exc, DBAPIError):
        if isinstance(exc, OperationalError) or exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_OUTAGE_SQLSTATES):
        return True
    if isinstance(exc, asyncpg.InterfaceError):
        return "connection" in str(exc) and "closed" in str(exc)
    return isinstance(exc, ConnectionError | TimeoutError)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that `begin` below decides how they start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = "IMMEDIATE" if connection.get_execution_options().get("sqlite_write") else ""
        connection.exec_driver_sql(f"BEGIN {mode}".strip())


@dataclass
class Database:
    """One service's database: an engine and the two ways a unit of work begins."""

    engine: AsyncEngine
    reader: async_sessionmaker[AsyncSession]
    writer: async_sessionmaker[AsyncSession]
    # PostgreSQL only: bare driver connections for the hot paths' single statements.
    statements: StatementConnections | None = field(default=None, repr=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed when the block ends, rolled back when it raises."""
        async with self.writer() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self.reader() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Whether the database answers now. A pooled connection that a restart broke fails
        once and is thrown away (with every older one): that says nothing of the database, so
        the probe asks again on a fresh connection before it says the database is away."""
        for attempt in range(2):
            try:
                async with self.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
            except DBAPIError as exc:
                if attempt or not exc.connection_invalidated:
                    raise
            else:
                return

    def driver(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A bare asyncpg connection (PostgreSQL only), in autocommit, for a hot path's single
        statement: no session, no SQLAlchemy pool machinery around it."""
        if self.statements is None:
            raise RuntimeError(f"no bare driver connections to a {self.dialect} database")
        return self.statements.connection()

    async def dispose(self) -> None:
        if self.statements is not None:
            await self.statements.close()
        await self.engine.dispose()


class StatementConnections:
    """Up to `size` bare asyncpg connections, opened on demand and kept, each lent to one
    statement at a time; the one returned last goes out first, while its server process is warm.

    Not asyncpg's pool: under the booking benchmark it cost each booking about 8% of the
    service's CPU (a task and a timeout for every release, a proxy for every acquire), and its
    default reset of the session state a round trip more. What runs here is single autocommit
    statements that leave no session state (no SET, LISTEN or advisory lock), so a connection
    needs nothing done between two of them. One whose statement failed other than by the
    server's refusal (cancelled, broken) is in an unknown state, and is closed instead.
    """

    def __init__(self, dsn: str, size: int) -> None:
        self._dsn = dsn
        self._in_use = asyncio.Semaphore(size)
        self._idle: list[asyncpg.Connection] = []
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._in_use:
            connection = self._idle.pop() if self._idle else await self._connect()
            try:
                yield connection
            except asyncpg.PostgresError:
                self._give_back(connection)
                raise
            except BaseException:
                connection.terminate()
                raise
            self._give_back(connection)

    async def _connect(self) -> asyncpg.Connection:
        # The hot paths' statements have one shape whatever their values: left to choose, the
        # server planned booking's statement anew on every execution (0.23 ms of its 0.5 ms),
        # since no custom plan ever costs more than the generic one it would keep.
        return await asyncpg.connect(
            self._dsn, server_settings={"plan_cache_mode": "force_generic_plan"}
        )

    def _give_back(self, connection: asyncpg.Connection) -> None:
        if self._closed:
            connection.terminate()
        elif not connection.is_closed():
            self._idle.append(connection)

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()


def connect(url: str, *, pool_size: int = 10) -> Database:
    """Open a service database by SQLAlchemy URL (`sqlite+aiosqlite:///...`, `postgresql+asyncpg://...`)."""
    statements = None
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_SECONDS})
        _configure_sqlite(engine)
        write_engine = engine.execution_options(sqlite_write=True)
        read_engine = engine
    else:
        # No pre-ping: a round trip on every checkout cost booking a quarter of its throughput.
        # A connection broken by a database restart fails its one request (503
        # `database_unavailable`), and SQLAlchemy then recycles every older connection of the pool.
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
        write_engine = engine
        # Under READ COMMITTED every statement sees its own snapshot anyway, so a read-only unit of
        # work loses nothing without BEGIN and COMMIT, and saves their two round trips.
        read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        statements = StatementConnections(dsn, size=pool_size)
    return Database(
        engine=engine,
        reader=async_sessionmaker(read_engine, expire_on_commit=False),
        writer=async_sessionmaker(write_engine, expire_on_commit=False),
        statements=statements,
    )
