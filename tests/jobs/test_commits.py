"""Shared commits (jobs/commits.py): job units that wait for the SQLite writer together go in one transaction."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import select, text

from alertbridge.jobs.commits import SharedCommits
from alertbridge.pipeline.inbox import insert_events
from alertbridge.store.tables import inbox
from support.waiting import until


def add(conn, source: str) -> int:
    """Store one event; return how many rows this unit sees."""
    insert_events(conn, [(source, None, b"{}")])
    return conn.execute(text("SELECT count(*) FROM inbox")).scalar_one()


def add_in(conn, source: str):
    """Store one event; return the transaction it ran in (kept alive by the caller, so identity tells them apart)."""
    add(conn, source)
    return conn.get_transaction()


def fail(conn, source: str) -> None:
    insert_events(conn, [(source, None, b"{}")])
    raise LookupError(f"{source} refused")


async def sources(store) -> list[str]:
    async with store.read() as conn:
        return sorted((await conn.execute(select(inbox.c.source))).scalars())


async def hold_the_writer(store) -> tuple[asyncio.Task, threading.Event]:
    """Start a unit that keeps the database thread busy until the returned event is set."""
    running, release = threading.Event(), threading.Event()

    def busy(conn):
        running.set()
        assert release.wait(timeout=30), "the test never released the writer"

    task = asyncio.create_task(store.run(busy))
    await until(running.is_set, "the writer is busy")
    return task, release


async def five_queued_at_once(store, commits: SharedCommits) -> list:
    """Queue five units while the writer is busy, then let it go; return the transaction each ran in."""
    busy, release = await hold_the_writer(store)
    units = [asyncio.create_task(commits.run(add_in, f"job-{n}")) for n in range(5)]
    await until(lambda: len(commits._queued) == 5, "the five units are queued")
    release.set()
    await busy
    transactions = await asyncio.gather(*units)
    assert await sources(store) == [f"job-{n}" for n in range(5)]
    return transactions


async def test_units_waiting_together_share_one_transaction_and_each_gets_its_result(store):
    transactions = await five_queued_at_once(store, SharedCommits(store))
    assert all(transaction is transactions[0] for transaction in transactions)


async def test_a_failing_unit_is_rolled_back_alone_and_its_error_reaches_its_caller_only(store):
    commits = SharedCommits(store)
    busy, release = await hold_the_writer(store)
    good = asyncio.create_task(commits.run(add, "good"))
    bad = asyncio.create_task(commits.run(fail, "bad"))
    after = asyncio.create_task(commits.run(add, "after"))
    await until(lambda: len(commits._queued) == 3, "the three units are queued")
    release.set()
    await busy
    assert await good == 1
    with pytest.raises(LookupError, match="bad refused"):
        await bad
    assert await after == 2  # the failed unit's row is gone, the one before it stays
    assert await sources(store) == ["after", "good"]


async def test_a_lone_failing_unit_rolls_its_transaction_back(store):
    commits = SharedCommits(store)
    with pytest.raises(LookupError):
        await commits.run(fail, "alone")
    assert await commits.run(add, "next") == 1
    assert await sources(store) == ["next"]


async def test_a_unit_whose_caller_was_cancelled_before_its_turn_is_not_run(store):
    commits = SharedCommits(store)
    busy, release = await hold_the_writer(store)
    dropped = asyncio.create_task(commits.run(add, "dropped"))
    kept = asyncio.create_task(commits.run(add, "kept"))
    await until(lambda: len(commits._queued) == 2, "both units are queued")
    dropped.cancel()
    release.set()
    await busy
    with pytest.raises(asyncio.CancelledError):
        await dropped
    assert await kept == 1
    assert await sources(store) == ["kept"]


async def test_at_most_the_bound_of_units_share_a_transaction(store):
    transactions = await five_queued_at_once(store, SharedCommits(store, most=2))
    assert len({id(transaction) for transaction in transactions}) == 3  # 2 + 2 + 1
