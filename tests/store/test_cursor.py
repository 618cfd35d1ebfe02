"""PostgreSQL units on the driver's own connection: the errors SQLAlchemy raises, and autocommit set back after each unit."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from alertbridge.pipeline.inbox import insert_events
from alertbridge.store import Store, cursor, upgrade
from alertbridge.store.tables import inbox


@pytest.fixture
async def store(pg_url):
    upgrade(pg_url)
    s = Store(pg_url, pool_size=1)  # one unit thread, one pooled connection: every unit below gets the same one
    await s.run(lambda conn: conn.exec_driver_sql("TRUNCATE inbox RESTART IDENTITY CASCADE"))
    yield s
    await s.run(lambda conn: conn.exec_driver_sql("TRUNCATE inbox RESTART IDENTITY CASCADE"))  # the database is the session's
    await s.aclose()


def _count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(inbox)).scalar_one()


async def test_a_statement_on_the_cursor_is_in_the_unit_s_transaction(store):
    def half_done(conn: Connection) -> None:
        (row_id,) = insert_events(conn, [("a", None, b"{}")])
        assert cursor.execute(conn, "UPDATE inbox SET source = %s WHERE id = %s", ("b", row_id)) == 1
        assert cursor.fetch_all(conn, "SELECT source FROM inbox", ()) == [("b",)]
        raise ValueError("undone")

    with pytest.raises(ValueError, match="undone"):
        await store.run(half_done)
    assert await store.run_read(_count) == 0


async def test_a_failed_statement_raises_sqlalchemy_s_error(store):
    (row_id,) = await store.run(insert_events, [("a", None, b"{}")])

    def duplicate(conn: Connection) -> None:
        cursor.fetch_one(conn, "INSERT INTO inbox (id, source, received_at, body, state) VALUES (%s, 'b', 0, '', 'pending') RETURNING id",
                         (row_id,))

    with pytest.raises(IntegrityError):
        await store.run(duplicate)
    assert await store.run_read(_count) == 1


async def test_a_lost_connection_is_invalidated_and_the_next_unit_gets_a_new_one(store):
    pid = await store.run_read(lambda conn: cursor.fetch_one(conn, "SELECT pg_backend_pid()", ())[0])
    with psycopg.connect(store.url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(OperationalError) as raised:
        await store.run(lambda conn: cursor.fetch_one(conn, "SELECT 1", ()))
    assert raised.value.connection_invalidated
    assert await store.run_read(lambda conn: cursor.fetch_one(conn, "SELECT pg_backend_pid()", ())[0]) != pid


async def test_a_unit_after_an_autocommit_unit_is_one_transaction_again(store):
    def autocommit_of(conn: Connection) -> bool:
        return conn.connection.dbapi_connection.autocommit

    assert await store.run_read(autocommit_of)
    assert not await store.run(autocommit_of)

    def half_done(conn: Connection) -> None:
        insert_events(conn, [("lost", None, b"{}")])
        raise ValueError("undone")

    await store.run_read(_count)
    with pytest.raises(ValueError, match="undone"):
        await store.run(half_done)
    assert await store.run_read(_count) == 0
