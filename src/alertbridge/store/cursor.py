"""The busiest PostgreSQL units on their own psycopg connection: fixed statements on its cursor, autocommit set on it.

Through SQLAlchemy, even ``exec_driver_sql``, a statement cost the hub 100-150 µs of Python (its execution context,
its result's wrappers) around the driver's 30-50: a job's units run a handful each, one transaction apiece on
PostgreSQL. Here the statement goes to the cursor of the unit's connection, in the unit's transaction, and a failure
is raised as SQLAlchemy would raise it (``IntegrityError``, ``OperationalError``...; a lost connection invalidated,
so the pool replaces it): callers and the crash and restart handling see no difference. The same reasons as
pipeline/inbox.py's multi-row insert on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]


def fetch_all(conn: Connection, sql: str, params: Params) -> list[tuple]:
    """Run `sql` in the unit's transaction and return its rows as tuples."""
    return _run(conn, sql, params, lambda cursor: cursor.fetchall())


def fetch_one(conn: Connection, sql: str, params: Params) -> tuple | None:
    """Run `sql` in the unit's transaction and return its first row (None if it has none)."""
    return _run(conn, sql, params, lambda cursor: cursor.fetchone())


def execute(conn: Connection, sql: str, params: Params) -> int:
    """Run `sql` (an UPDATE, INSERT or DELETE) in the unit's transaction and return how many rows it touched."""
    return _run(conn, sql, params, lambda cursor: cursor.rowcount)


def _run(conn: Connection, sql: str, params: Params, take: Callable[[Any], T]) -> T:
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql, params)
        return take(cursor)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _raised(conn, sql, params, exc) from exc
    finally:
        cursor.close()


def in_autocommit(conn: Connection, work: Callable[..., T], args: tuple) -> T:
    """Run `work(conn, *args)` with the driver's connection in autocommit, and set it back before the pool has it again.

    Set on psycopg's connection itself, as SQLAlchemy's own ping does: an engine's AUTOCOMMIT execution option set it,
    and reset it through the pool's events, at every checkout and checkin (some 75 µs of CPU a unit).
    """
    dbapi_connection = conn.connection.dbapi_connection
    dbapi_connection.autocommit = True
    try:
        return work(conn, *args)
    finally:
        try:
            dbapi_connection.autocommit = False
        except Exception:  # noqa: BLE001 — lost during the unit: it must not go back to the pool in autocommit
            conn.invalidate()


def _raised(conn: Connection, sql: str, params: Params, exc: Exception) -> DBAPIError:
    """Return the error SQLAlchemy raises for `exc`, the connection invalidated first if `exc` means it is lost."""
    lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
    if lost:
        conn.invalidate(exc)
    return DBAPIError.instance(sql, params, exc, conn.dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=conn.dialect)
