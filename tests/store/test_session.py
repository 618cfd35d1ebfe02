"""A PostgreSQL session: one connection, one transaction across steps on the unit threads, its locks held in between."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Connection, select

from alertbridge.pipeline.inbox import insert_events
from alertbridge.store import Store, upgrade
from alertbridge.store.tables import inbox
from support.waiting import until


@pytest.fixture
async def store(pg_url):
    upgrade(pg_url)
    s = Store(pg_url)
    await s.run(lambda conn: conn.exec_driver_sql("TRUNCATE inbox RESTART IDENTITY CASCADE"))
    yield s
    await s.run(lambda conn: conn.exec_driver_sql("TRUNCATE inbox RESTART IDENTITY CASCADE"))  # the database is the session's
    await s.aclose()


def _lock_pending(conn: Connection) -> list[int]:
    return list(conn.exec_driver_sql("SELECT id FROM inbox WHERE state = 'pending' ORDER BY id FOR UPDATE SKIP LOCKED").scalars())


def _sources(conn: Connection) -> list[str]:
    return list(conn.execute(select(inbox.c.source).order_by(inbox.c.id)).scalars())


async def test_steps_share_one_transaction_whose_locks_last_between_them(store):
    await store.run(insert_events, [("a", None, b"{}"), ("b", None, b"{}")])
    async with store.session() as session:
        locked = await session.run(_lock_pending)
        assert await store.run(_lock_pending) == []  # another unit skips what the session holds, between its steps too
        await session.run(insert_events, [("c", None, b"{}")])
        assert await store.run_read(_sources) == ["a", "b"]  # not committed yet
    assert len(locked) == 2
    assert await store.run_read(_sources) == ["a", "b", "c"]
    assert len(await store.run(_lock_pending)) == 3  # the locks went with the commit


async def test_a_failing_block_rolls_the_session_back(store):
    with pytest.raises(ValueError, match="parser bug"):
        async with store.session() as session:
            await session.run(insert_events, [("lost", None, b"{}")])
            raise ValueError("parser bug")
    assert await store.run_read(_sources) == []
    async with store.session() as session:  # the connection went back to the pool clean
        await session.run(insert_events, [("kept", None, b"{}")])
    assert await store.run_read(_sources) == ["kept"]


async def test_a_rollback_lets_go_of_the_locks_and_the_next_step_begins_afresh(store):
    await store.run(insert_events, [("a", None, b"{}")])
    async with store.session() as session:
        assert len(await session.run(_lock_pending)) == 1
        await session.rollback()
        assert len(await store.run(_lock_pending)) == 1
        await session.run(insert_events, [("b", None, b"{}")])
    assert await store.run_read(_sources) == ["a", "b"]


async def test_a_session_commits_while_every_unit_thread_waits_for_a_row_it_holds(pg_url):
    """Units blocked on the session's locks hold every unit thread: the session's own steps still run, and free them."""
    upgrade(pg_url)
    store = Store(pg_url, pool_size=1)  # one unit thread
    try:
        await store.run(lambda conn: conn.exec_driver_sql("TRUNCATE inbox RESTART IDENTITY CASCADE"))
        await store.run(insert_events, [("a", None, b"{}")])
        waiting: list[asyncio.Task] = []

        async def hold_and_write() -> None:
            async with store.session() as session:
                assert len(await session.run(_lock_pending)) == 1
                waiting.append(asyncio.create_task(store.run(lambda conn: conn.exec_driver_sql(
                    "UPDATE inbox SET state = 'done' WHERE state = 'pending'").rowcount)))
                await until(lambda: _blocked(pg_url), "the unit waits for the session's lock")
                await session.run(insert_events, [("b", None, b"{}")])  # a step of the session, the unit thread taken

        held = asyncio.create_task(hold_and_write())
        done, _ = await asyncio.wait([held], timeout=30)
        if not done:  # stuck as the old design was: free the unit's thread so that the test ends, and fail
            _cancel_lock_waits(pg_url)
            await asyncio.gather(held, *waiting, return_exceptions=True)
            raise AssertionError("the session never got to commit: its step waited for the unit thread")
        await held
        assert await asyncio.wait_for(waiting[0], 30) == 1  # it went on once the session committed
    finally:
        await store.run(lambda conn: conn.exec_driver_sql("TRUNCATE inbox RESTART IDENTITY CASCADE"))
        await store.aclose()


def _blocked(url: str) -> bool:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                            ).fetchone()[0] > 0


def _cancel_lock_waits(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
