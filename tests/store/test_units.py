"""Units of work on SQLite: one call on the database thread each, intake's commits ahead of every other writer."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import pytest
from sqlalchemy import select

from alertbridge.pipeline.inbox import DUPLICATE, Inbox, insert_events
from alertbridge.store import gate as gate_module
from alertbridge.store.tables import inbox
from support.waiting import until


async def test_intake_commits_first_when_a_processing_batch_ends(store):
    """A request's event waits for the unit running now, never for the writers queued before it."""
    running, release = threading.Event(), threading.Event()

    def long_batch(conn):  # a processing batch holding the database thread
        running.set()
        assert release.wait(timeout=30), "the test never released the batch"
        insert_events(conn, [("batch", None, b"{}")])

    batch = asyncio.create_task(store.run(long_batch))
    await until(running.is_set, "the batch started")

    async def worker() -> None:  # a job worker's update, through the async write connection
        async with store.tx() as conn:
            await conn.run_sync(insert_events, [("worker", None, b"{}")])

    queued = [asyncio.create_task(worker()), asyncio.create_task(store.run(insert_events, [("next batch", None, b"{}")]))]
    await until(lambda: store.gate.waiting == 2, "the worker and the next batch wait for the gate")
    intake = Inbox(store)
    request = asyncio.create_task(intake.put("intake", b"{}"))
    await until(lambda: store.gate.waiting == 3, "the intake commit waits for the gate")
    release.set()
    await asyncio.gather(batch, request, *queued)
    await intake.aclose()
    async with store.read() as conn:
        committed = (await conn.execute(select(inbox.c.source).order_by(inbox.c.id))).scalars().all()
    assert committed == ["batch", "intake", "worker", "next batch"]


async def test_a_failed_unit_rolls_back_and_the_next_one_runs(store):
    def half_done(conn):
        insert_events(conn, [("lost", None, b"{}")])
        raise ValueError("bug in the unit")

    with pytest.raises(ValueError, match="bug in the unit"):
        await store.run(half_done)
    (kept,) = await store.run(insert_events, [("kept", None, b"{}")])
    assert kept > 0
    async with store.read() as conn:
        assert (await conn.execute(select(inbox.c.source))).scalars().all() == ["kept"]


async def test_a_cancelled_waiter_does_not_keep_the_gate(store):
    running, release = threading.Event(), threading.Event()

    def hold(conn):
        running.set()
        assert release.wait(timeout=30)

    first = asyncio.create_task(store.run(hold))
    await until(running.is_set, "the first unit started")
    gone = asyncio.create_task(store.run(insert_events, [("gone", None, b"{}")]))
    await until(lambda: store.gate.waiting == 1, "the second unit waits")
    gone.cancel()
    release.set()
    await first
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert await store.run(insert_events, [("after", None, b"{}")])  # the gate is free again


async def test_the_gate_remembers_when_intake_last_wrote(store):
    """Only an urgent writer (intake) counts: the processor reads this to keep its units short during a burst."""
    assert not store.gate.urgent_within(3600)
    async with store.gate.hold():
        pass
    assert not store.gate.urgent_within(3600)
    intake = Inbox(store)
    await intake.put("hook", b"{}")
    await intake.aclose()
    assert store.gate.urgent_within(3600)


async def test_events_that_arrive_while_intake_waits_for_the_gate_go_in_its_commit(store):
    """The group commit collects its events once its turn comes, not when it started to wait."""
    running, release = threading.Event(), threading.Event()

    def long_batch(conn):  # a processing batch holding the database thread
        running.set()
        assert release.wait(timeout=30), "the test never released the batch"

    batch = asyncio.create_task(store.run(long_batch))
    await until(running.is_set, "the batch started")
    intake = Inbox(store)
    first = asyncio.create_task(intake.put("hook", b'{"n": 0}'))
    await until(lambda: store.gate.waiting == 1, "the first event's commit waits for the gate")
    later = [asyncio.create_task(intake.put("hook", b'{"n": %d}' % n)) for n in (1, 2, 3)]
    await until(lambda: intake._queue.qsize() == 3, "three more events queued behind it")
    units = store._writing.run
    calls = []

    async def counted(work, args):
        calls.append(len(args[0]))
        return await units(work, args)

    store._writing.run = counted
    release.set()
    ids = await asyncio.gather(first, *later)
    await batch
    await intake.aclose()
    assert calls == [4]  # one commit for all four
    assert ids == sorted(ids) and len(set(ids)) == 4


def crowd(gate, requests: int) -> contextlib.ExitStack:
    """Open `requests` intake requests waiting for their commit, and a commit that leaves them waiting."""
    stack = contextlib.ExitStack()
    for _ in range(requests):
        stack.enter_context(gate.request())
    gate.committed()
    return stack


async def test_other_writers_wait_while_a_crowd_of_requests_is_answered(store, monkeypatch):
    """A processing batch or a job outcome queues only once the crowd's requests are answered; intake goes on."""
    monkeypatch.setattr(gate_module, "DEFER_AT_MOST", 3600.0)  # only the crowd's end lets the writer in
    waiting = crowd(store.gate, gate_module.CROWD)
    batch = asyncio.create_task(store.run(insert_events, [("batch", None, b"{}")]))
    intake = Inbox(store)
    await intake.put("intake", b"{}")  # the crowd's next commit is not held up
    await asyncio.sleep(0)
    assert not batch.done() and store.gate.waiting == 0  # deferred before the gate, not queued at it
    waiting.close()  # every request answered: the batch goes once intake has been quiet a moment
    await batch
    await intake.aclose()
    async with store.read() as conn:
        assert (await conn.execute(select(inbox.c.source).order_by(inbox.c.id))).scalars().all() == ["intake", "batch"]


async def test_a_deferral_to_intake_is_bounded(store, monkeypatch):
    """Under a crowd that never ends, the other writers still get their turn."""
    monkeypatch.setattr(gate_module, "DEFER_AT_MOST", 0.01)
    with crowd(store.gate, gate_module.CROWD):
        assert await store.run(insert_events, [("batch", None, b"{}")])
        await store.gate.defer_to_intake()  # the processor's wait before it reads is bounded too


async def test_a_trickle_of_requests_defers_no_one(store):
    """Requests that come one at a time are no crowd: processing and jobs are never held up by them."""
    with crowd(store.gate, gate_module.CROWD - 1):
        assert store.gate.deferred_for() == 0
        assert await store.run(insert_events, [("batch", None, b"{}")])


async def test_a_crowd_thinned_to_a_trickle_soon_stops_deferring(store, monkeypatch):
    """After a hiccup (a crowd formed while a unit ran), steady requests one at a time do not hold processing up."""
    monkeypatch.setattr(gate_module, "DEFER_AT_MOST", 3600.0)
    monkeypatch.setattr(gate_module, "REMEMBER", 0.01)
    waiting = crowd(store.gate, gate_module.CROWD)
    with store.gate.request():  # one request still waits for its commit, the crowd's are answered
        waiting.close()
        assert await store.run(insert_events, [("batch", None, b"{}")])


async def test_a_group_commit_gives_each_event_its_own_id_in_order_on_both_databases(db_url):
    """The ids answered are the rows' own, in the events' order, replays of a delivery id marked, on SQLite and PostgreSQL."""
    from alertbridge.store import Store

    store = Store(db_url)
    try:
        events = [("hook", f"d{n % 5}" if n % 3 else None, b'{"n": %d}' % n) for n in range(40)]
        ids = await store.run(insert_events, events)
        again = await store.run(insert_events, [("hook", "d1", b"{}"), ("hook", None, b'{"n": 40}')])
        async with store.read() as conn:
            stored = dict((await conn.execute(select(inbox.c.id, inbox.c.body))).all())
    finally:
        await store.aclose()
    fresh = [(n, row_id) for n, row_id in enumerate(ids) if row_id != DUPLICATE]
    firsts = {delivery: n for n, (_, delivery, _) in reversed(list(enumerate(events)))}  # each delivery id's first event
    assert [n for n, _ in fresh] == [n for n, (_, delivery, _) in enumerate(events) if delivery is None or firsts[delivery] == n]
    assert [stored[row_id] for _, row_id in fresh] == [events[n][2] for n, _ in fresh]
    assert [row_id for _, row_id in fresh] == sorted(row_id for _, row_id in fresh)
    assert again[0] == DUPLICATE and stored[again[1]] == b'{"n": 40}'
