"""A PostgreSQL session: one connection, one transaction across steps on the unit threads, its locks held in between."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, select

from alertbridge.pipeline.inbox import insert_events
from alertbridge.store import Store, upgrade
from alertbridge.store.tables import inbox


@pytest.fixture
async def store(pg_url):
    upgrade(pg_url)
    s = Store(pg_url)
    await s.run(lambda conn: conn.exec_driver_sql("TRUNCATE inbox RESTART IDENTITY CASCADE"))
    yield s
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
