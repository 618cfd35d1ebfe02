"""The database: one SQL store holds state and queue (SQLite by default, PostgreSQL to scale out)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from . import tables
from .gate import WriteGate

T = TypeVar("T")
A = TypeVar("A")

__all__ = ["Store", "tables", "upgrade"]

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _async_url(url: str) -> str:
    parsed = make_url(url)
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}.get(parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False) if driver else url


async def _open_sqlite(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
    """Open an aiosqlite connection; when the open fails, wait for its worker thread to stop before raising."""
    connection = aiosqlite.connect(*args, **kwargs)
    connection._thread.daemon = True  # as SQLAlchemy's own aiosqlite connect does: a stuck worker never blocks exit
    try:
        return await connection
    except BaseException:
        # A failed open stops aiosqlite's worker without waiting for it; the worker then reports to the event loop,
        # which may have closed by then ("Event loop is closed" in a thread). Wait while the loop still runs.
        # https://github.com/omnilib/aiosqlite/pull/389
        await asyncio.to_thread(connection._thread.join)
        raise


def _sync_url(url: str) -> str:
    parsed = make_url(url)
    driver = {"sqlite+aiosqlite": "sqlite", "postgresql": "postgresql+psycopg", "postgresql+psycopg": "postgresql+psycopg"}.get(parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False) if driver else url


def _alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = _sync_url(url)
    return config


@functools.cache  # the scripts ship with the code; reading them is ~0.1 s of CPU, and start-up asked three times
def head_revision() -> str:
    """Return the newest migration this code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def schema_revision(url: str) -> str | None:
    """Return the migration the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(_sync_url(url))
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str) -> None:
    """Bring the database schema to the newest migration (creates the SQLite file if needed)."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from ..errors import SchemaTooNew

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        _create_sqlite(parsed.database)
    current = schema_revision(url)
    if current is not None and current not in {s.revision for s in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}:
        raise SchemaTooNew(
            f"the database is at schema {current!r}, newer than this alertbridge knows (up to {head_revision()!r}): "
            "upgrade alertbridge, or restore a backup made by this version"
        )
    command.upgrade(_alembic_config(url), "head")


def _create_sqlite(path: str) -> None:
    # auto_vacuum must be chosen before the first table exists: INCREMENTAL lets retention give pages back to the disk.
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def _sqlite_pragmas(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn, _record):
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: an acknowledged alert survives power loss too, not only a killed process.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class _DatabaseThread:
    """One thread with one synchronous SQLite connection: each call runs a whole unit of work there, in one transaction."""

    def __init__(self, url: str, *, immediate: bool, name: str):
        self.engine = create_engine(_sync_url(url), pool_size=1, max_overflow=0, connect_args={"timeout": 60, "isolation_level": None})
        _sqlite_pragmas(self.engine, immediate=immediate)
        self.name = name
        self._executor: ThreadPoolExecutor | None = None  # started by the first unit
        self._connection: Connection | None = None  # used on the thread only

    async def run(self, work: Callable[..., T], args: tuple) -> T:
        """Run `work(conn, *args)` on the thread and return what it returns (the thread finishes it even if we are cancelled)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        done = asyncio.get_running_loop().run_in_executor(self._executor, self._run_here, work, args)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            await asyncio.wait([done])  # whoever holds the gate keeps it until the thread is through with the unit
            raise

    def _run_here(self, work: Callable[..., T], args: tuple) -> T:
        if self._connection is None or self._connection.closed:
            self._connection = self.engine.connect()
        with self._connection.begin():
            return work(self._connection, *args)

    async def aclose(self) -> None:
        """Close the connection and stop the thread (a later unit starts them again)."""
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(executor, self._close_here)
            executor.shutdown(wait=True)

    def _close_here(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self.engine.dispose()


class Store:
    """Engines over one database: `run()`/`run_read()` for units of work, `tx()` for writes, `read()` for reads.

    A unit of work is one synchronous function over a Connection, run as one transaction. On SQLite it runs
    whole on a database thread (one for writes, one for reads): one hand-off per unit instead of one per
    statement (aiosqlite's cost). On PostgreSQL it runs through the async engine's connection, its statements
    batched by the caller. In one process, SQLite writers take turns through a gate that lets intake go first.
    """

    def __init__(self, url: str, pool_size: int = 10):
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self.gate = WriteGate()
        if self.is_sqlite:
            # SQLite allows one writer: a single write connection makes in-process writers
            # queue instead of failing with "database is locked", and BEGIN IMMEDIATE takes
            # the write lock up front so another process waits (busy_timeout) rather than deadlocks.
            self.writer = self._sqlite_engine(immediate=True, pool_size=1)
            self.reader = self._sqlite_engine(immediate=False, pool_size=4)
            self._writing = _DatabaseThread(url, immediate=True, name="alertbridge-db")
            self._reading = _DatabaseThread(url, immediate=False, name="alertbridge-db-read")
        else:
            self.writer = create_async_engine(
                _async_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=300
            )
            self.reader = self.writer

    def _sqlite_engine(self, *, immediate: bool, pool_size: int) -> AsyncEngine:
        url = make_url(_async_url(self.url))
        args, params = url.get_dialect()().create_connect_args(url)
        params |= {"timeout": 60, "isolation_level": None}
        engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=0, pool_timeout=600, async_creator=lambda: _open_sqlite(*args, **params),
        )
        _sqlite_pragmas(engine.sync_engine, immediate=immediate)
        return engine

    async def run(self, work: Callable[..., T], *args: Any, urgent: bool = False) -> T:
        """Run `work(conn, *args)` as one write transaction and return what it returns; `urgent` goes first (intake)."""
        return await self.run_collected(lambda conn, given: work(conn, *given), lambda: args, urgent=urgent)

    async def run_collected(self, work: Callable[[Connection, A], T], collect: Callable[[], A], *, urgent: bool = False) -> T:
        """Run `work(conn, collect())` as one write transaction, calling `collect` only once this writer's turn has come.

        A group commit collects its events then: those that came in while it waited for the gate go in this commit
        rather than the next one.
        """
        if not self.is_sqlite:
            async with self.writer.begin() as conn:
                return await conn.run_sync(work, collect())
        async with self.gate.hold(urgent=urgent):
            return await self._writing.run(work, (collect(),))

    async def run_read(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(conn, *args)` as one read-only transaction and return what it returns."""
        if not self.is_sqlite:
            async with self.reader.connect() as conn:
                return await conn.run_sync(work, *args)
        return await self._reading.run(work, args)

    @contextlib.asynccontextmanager
    async def tx(self) -> AsyncIterator[AsyncConnection]:
        """Run a write transaction: commit on success, roll back on error."""
        if self.is_sqlite:
            async with self.gate.hold(), self.writer.begin() as conn:
                yield conn
        else:
            async with self.writer.begin() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """Run a read-only transaction."""
        async with self.reader.connect() as conn:
            yield conn

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
        if self.is_sqlite:
            await self._writing.aclose()
            await self._reading.aclose()
