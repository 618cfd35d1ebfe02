"""The database: one SQL store holds state and queue (SQLite by default, PostgreSQL to scale out)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from . import tables
from .cursor import in_autocommit
from .gate import WriteGate
from .session import Session, end_session

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


async def _on_thread(executor: ThreadPoolExecutor, run_here: Callable[..., T], *args: Any) -> T:
    """Run `run_here(*args)` on the executor and return its result; a cancelled caller waits until the unit is through."""
    done = asyncio.get_running_loop().run_in_executor(executor, run_here, *args)
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        # The unit commits or rolls back whole: whoever holds the gate keeps it, and the caller goes on, only after that.
        await asyncio.wait([done])
        raise


@contextlib.contextmanager
def savepoint(conn: Connection) -> Iterator[None]:
    """Undo what the block wrote if it raises, as `conn.begin_nested()` does, keeping the enclosing transaction.

    Written out because SQLAlchemy names each savepoint afresh and so compiles its SAVEPOINT and RELEASE statements
    every time: more CPU than the few statements of a small unit inside it.
    """
    conn.exec_driver_sql("SAVEPOINT unit")
    try:
        yield
    except BaseException:
        conn.exec_driver_sql("ROLLBACK TO SAVEPOINT unit")
        conn.exec_driver_sql("RELEASE SAVEPOINT unit")
        raise
    conn.exec_driver_sql("RELEASE SAVEPOINT unit")


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
        return await _on_thread(self._executor, self._run_here, work, args)

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


# A pooled connection unused for longer than this is pinged before it is handed out; one in steady use is not. A ping on
# every checkout (pool_pre_ping) was a round trip per unit of work, as many as the units' own statements.
IDLE_PING = 1.0
SESSIONS = 2  # sessions in flight at once in a process (store/session.py): the processor holds one at a time
_RETURNED = "alertbridge_returned"  # the pool record's key for when the connection last came back (time.monotonic())


def _ping_when_idle(engine: Engine) -> None:
    """Ping a connection that sat idle in the pool before handing it out; a dead one is replaced (a server restart)."""

    @event.listens_for(engine.pool, "checkin")
    def on_checkin(_dbapi_conn, record):
        record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def on_checkout(dbapi_conn, record, _proxy):
        returned = record.info.get(_RETURNED)
        if returned is None or time.monotonic() - returned < IDLE_PING:
            return  # just opened, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # noqa: BLE001 — any failure: the pool drops this connection and opens another
            raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc


class _PostgresUnits:
    """Threads with synchronous psycopg connections: each unit of work runs whole on one of them, in one transaction.

    Driven from the event loop through the async engine, every statement of a unit cost greenlet switches, futures and
    a reader registration per round trip (about twice the CPU of the same unit on a thread); here the loop pays one
    hand-off per unit, and the thread waits for the server with the GIL released. Read units and single statements run
    in autocommit: at READ COMMITTED a read-only transaction sees what autocommit sees, and one statement is atomic by
    itself, without the BEGIN and COMMIT (or ROLLBACK) round trips around it.
    """

    def __init__(self, url: str, threads: int):
        self.engine = create_engine(_sync_url(url), pool_size=threads + SESSIONS, max_overflow=0, pool_recycle=300, pool_use_lifo=True)
        _ping_when_idle(self.engine)
        self.threads = threads
        self._executor: ThreadPoolExecutor | None = None  # started by the first unit
        # A session's steps run on threads of their own: a unit waiting for a row the session has locked holds a unit
        # thread, and with every unit thread so held, a session that needed one to commit would never let go.
        self._sessions = asyncio.Semaphore(SESSIONS)
        self._session_threads: ThreadPoolExecutor | None = None

    async def run(self, work: Callable[..., T], args: tuple, *, autocommit: bool = False) -> T:
        """Run `work(conn, *args)` on a thread and return what it returns (the thread finishes it even if we are cancelled)."""
        return await _on_thread(self._started(), self._run_here, work, args, autocommit)

    def _started(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="alertbridge-pg")
        return self._executor

    def _run_here(self, work: Callable[..., T], args: tuple, autocommit: bool) -> T:
        if autocommit:
            with self.engine.connect() as conn:
                return in_autocommit(conn, work, args)
        with self.engine.begin() as conn:
            return work(conn, *args)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """Hold one connection in one transaction across several steps, each on a session thread: committed if the block ends well."""
        async with self._sessions:  # a thread for each session in flight: none of its steps waits for another's
            if self._session_threads is None:
                self._session_threads = ThreadPoolExecutor(max_workers=SESSIONS, thread_name_prefix="alertbridge-pg-session")
            threads = self._session_threads
            conn = await _on_thread(threads, self.engine.connect)
            step = functools.partial(_session_step, threads)
            try:
                yield Session(step, conn)
            except BaseException:
                await step(end_session, (False,), connection=conn)
                raise
            await step(end_session, (True,), connection=conn)

    async def aclose(self) -> None:
        """Stop the threads and close their connections (a later unit starts them again)."""
        for executor in (self._executor, self._session_threads):
            if executor is not None:
                await asyncio.to_thread(executor.shutdown, wait=True)
        self._executor = self._session_threads = None
        self.engine.dispose()


async def _session_step(threads: ThreadPoolExecutor, work: Callable[..., T], args: tuple, *, connection: Connection) -> T:
    return await _on_thread(threads, work, connection, *args)


class Store:
    """Engines over one database: `run()`/`run_read()` for units of work, `tx()` for writes, `read()` for reads.

    A unit of work is one synchronous function over a Connection, run as one transaction. On SQLite it runs
    whole on a database thread (one for writes, one for reads): one hand-off per unit instead of one per
    statement (aiosqlite's cost). On PostgreSQL it runs whole on one of a few threads with synchronous connections,
    its statements batched by the caller. In one process, SQLite writers take turns through a gate that lets intake go
    first.
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
                _async_url(url), pool_size=pool_size, max_overflow=pool_size, pool_recycle=300, pool_use_lifo=True
            )
            _ping_when_idle(self.writer.sync_engine)
            self.reader = self.writer
            self._units = _PostgresUnits(url, threads=pool_size)

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
            return await self._units.run(work, (collect(),))
        async with self.gate.hold(urgent=urgent):
            return await self._writing.run(work, (collect(),))

    async def run_one(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(conn, *args)`, which executes exactly one statement (not an executemany), as a write unit of its own.

        On PostgreSQL the statement is its own transaction (autocommit): one round trip where BEGIN and COMMIT around it
        made three. On SQLite it is a unit like any other.
        """
        if not self.is_sqlite:
            return await self._units.run(work, args, autocommit=True)
        return await self.run(work, *args)

    def session(self) -> contextlib.AbstractAsyncContextManager[Session]:
        """Hold one PostgreSQL connection in one transaction across several units, each on a thread (store/session.py)."""
        if self.is_sqlite:
            raise RuntimeError("a session is PostgreSQL's: on SQLite a unit of work runs whole on the database thread")
        return self._units.session()

    async def run_read(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(conn, *args)` as one read-only transaction and return what it returns."""
        if not self.is_sqlite:
            return await self._units.run(work, args, autocommit=True)
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
        else:
            await self._units.aclose()
