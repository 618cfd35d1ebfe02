"""Node names across restarts: a restarted process runs its killed boot's jobs at once, and never a live process's."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from alertbridge.config import Retry
from alertbridge.jobs.queue import JobPayload, JobQueue, enqueue
from alertbridge.store import Store
from alertbridge.store.leases import Node, take_lease
from alertbridge.store.tables import leases

LEASE = 3600.0  # no lease runs out during a test: only a release can make a claimed job claimable again


class Step(JobPayload):
    """A job that only carries its place in its case."""

    kind = "k"
    seq: int


@pytest.fixture
async def store(db_url):
    s = Store(db_url)
    yield s
    await s.aclose()


def boot(store: Store, worker: str) -> JobQueue:
    return JobQueue(store, Retry(), LEASE, worker)


async def add(store: Store, cases: int) -> None:
    async with store.tx() as conn:
        for case_id in range(1, cases + 1):
            await enqueue(conn, Step(seq=0), case_id=case_id)


async def test_a_restart_runs_the_killed_boots_jobs_at_once_and_leaves_a_live_nodes_alone(store):
    await add(store, 3)
    killed, other = Node(store, "serve@h", "h:100"), Node(store, "serve@h", "h:200")
    assert (await killed.claim())[0] == "serve@h"
    assert (await other.claim())[0] == "serve@h#2"  # a live process holds the first name: the second takes the next
    killed_job, other_job = await boot(store, "h:100").claim(), await boot(store, "h:200").claim()
    assert await take_lease(store, "poll:crowdstrike", "h:100", LEASE)
    assert await boot(store, "h:300").claim() is not None  # the third case; the two others are leased
    assert await boot(store, "h:300").claim() is None

    await killed.aclose()  # what SIGKILL does too: the server (or the kernel) lets go of the dead process's lock
    restarted = Node(store, "serve@h", "h:300")
    try:
        assert await restarted.claim() == ("serve@h", "h:100", 1)
        taken = await boot(store, "h:300").claim()
        assert taken is not None and taken.id == killed_job.id and taken.attempts == 2  # the cut attempt counts, as after a lease expiry
        assert await boot(store, "h:300").claim() is None  # the live node's job stays leased to it
        assert await boot(store, "h:200").complete(other_job)
        assert await take_lease(store, "poll:crowdstrike", "h:300", LEASE)  # the killed boot's poller lease is free too
        async with store.read() as conn:
            holder = (await conn.execute(select(leases.c.holder).where(leases.c.name == "node:serve@h"))).scalar()
        assert holder == f"h:300/{restarted.boot}"
    finally:
        await restarted.aclose()
        await other.aclose()


async def test_a_name_held_by_a_live_process_is_never_taken(store):
    await add(store, 1)
    first = Node(store, "worker@h", "h:1", slots=2)
    second = Node(store, "worker@h", "h:2", slots=2)
    third = Node(store, "worker@h", "h:3", slots=2)
    try:
        assert (await first.claim())[0] == "worker@h"
        job = await boot(store, "h:1").claim()
        assert (await second.claim())[0] == "worker@h#2"
        assert await third.claim() == (None, None, 0)  # both names are held: nothing released
        assert await boot(store, "h:3").claim() is None
        assert await boot(store, "h:1").complete(job)
    finally:
        for node in (first, second, third):
            await node.aclose()


async def test_a_first_boot_and_a_clean_restart_release_nothing(store):
    await add(store, 1)
    node = Node(store, "serve@h", "h:1")
    assert await node.claim() == ("serve@h", None, 0)
    await node.aclose()
    again = Node(store, "serve@h", "h:2")
    try:
        assert await again.claim() == ("serve@h", "h:1", 0)  # the boot before stopped cleanly: nothing left running
    finally:
        await again.aclose()


async def test_a_boot_with_the_same_worker_id_as_the_killed_one_still_runs_its_cut_jobs(store):
    # In a container, serve is pid 1 on the same hostname at every start: the worker id repeats, the boot id does not.
    await add(store, 1)
    killed = Node(store, "serve@box", "box:1")
    await killed.claim()
    cut = await boot(store, "box:1").claim()
    await killed.aclose()
    restarted = Node(store, "serve@box", "box:1")
    try:
        assert await restarted.claim() == ("serve@box", "box:1", 1)
        again = await boot(store, "box:1").claim()
        assert again is not None and again.id == cut.id and again.attempts == 2
    finally:
        await restarted.aclose()


@pytest.fixture
async def pg_store(pg_url):
    from alertbridge.store import upgrade

    upgrade(pg_url)
    s = Store(pg_url)
    yield s
    async with s.tx() as conn:  # the database is the session's: leave no name behind for the next test
        await conn.execute(leases.delete())
    await s.aclose()


async def kill_session(store: Store, node: Node) -> None:
    """End the database session that holds `node`'s name lock, as a server restart does."""
    from sqlalchemy import text

    pid = (await node._held.execute(text("SELECT pg_backend_pid()"))).scalar()
    await node._held.commit()
    async with store.tx() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    # pg_terminate_backend only signals: the backend, and the lock it holds, may outlive the call by a moment.
    for _ in range(200):  # bounded: 10 s
        async with store.tx() as conn:
            alive = (await conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid})).scalar()
        if not alive:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"backend {pid} still running 10 s after pg_terminate_backend")


async def test_a_name_whose_session_died_is_taken_again_unless_another_process_took_it(pg_store):
    # PostgreSQL only: a SQLite name's file lock lives as long as the process, a session may die under it.
    store = pg_store

    node = Node(store, "worker@h", "h:1")
    newcomer = Node(store, "worker@h", "h:2", slots=1)
    try:
        assert (await node.claim())[0] == "worker@h"
        assert await node.keep()
        await kill_session(store, node)
        assert await node.keep()  # taken again on a fresh session
        assert (await newcomer.claim())[0] is None  # and so held: nobody else gets it
        await kill_session(store, node)
        assert (await newcomer.claim())[0] == "worker@h"  # the name was free while the session was gone
        assert not await node.keep()  # and this boot is told so
    finally:
        await node.aclose()
        await newcomer.aclose()


async def test_a_take_over_that_could_not_be_recorded_lets_the_name_go_for_the_retry(store, monkeypatch):
    node = Node(store, "serve@h", "h:1")
    working = store.run

    async def away(work, *args, urgent=False):
        raise ConnectionError("the database went away")

    monkeypatch.setattr(store, "run", away)
    with pytest.raises(ConnectionError):
        await node.claim()
    monkeypatch.setattr(store, "run", working)
    try:
        assert await node.claim() == ("serve@h", None, 0)  # the same name again, not serve@h#2 behind its own lock
    finally:
        await node.aclose()


async def test_a_name_lost_while_the_database_was_away_is_taken_again_once_it_is_back(pg_store, pg_url):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    node = Node(pg_store, "worker@h", "h:1")
    newcomer = Node(pg_store, "worker@h", "h:2", slots=1)
    away = Store(make_url(pg_url).set(port=1).render_as_string(hide_password=False))  # nothing listens there
    try:
        assert (await node.claim())[0] == "worker@h"
        await kill_session(pg_store, node)
        node.store = away  # the server is still down when the node first checks its lock
        with pytest.raises(OperationalError):
            await node.keep()
        node.store = pg_store  # and back up at the next check
        assert await node.keep()
        assert (await newcomer.claim())[0] is None  # held again: nobody else gets it
    finally:
        await node.aclose()
        await newcomer.aclose()
        await away.aclose()
