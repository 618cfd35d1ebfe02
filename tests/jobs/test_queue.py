"""The job queue on SQLite and PostgreSQL: order, leases, retries, dead letters, replay."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select, update

from alertbridge.config import Retry
from alertbridge.errors import Permanent, RateLimited, Retryable
from alertbridge.jobs import queue
from alertbridge.jobs.queue import JobPayload, JobQueue, backoff, enqueue, release_held
from alertbridge.store import Store
from alertbridge.store.tables import jobs


@pytest.fixture
async def store(db_url):
    s = Store(db_url)
    yield s
    await s.aclose()


def make_queue(store, worker="w1", lease=30.0, max_attempts=3):
    return JobQueue(store, Retry(max_attempts=max_attempts, base_delay=0.001, max_delay=0.002), lease, worker)


class Seq(JobPayload):
    """A job that only carries its place in its case."""

    kind = "k"
    seq: int


async def add(store, case_id, n):
    async with store.tx() as conn:
        for i in range(n):
            await enqueue(conn, Seq(seq=i), case_id=case_id)


async def test_jobs_of_one_case_run_one_at_a_time_in_order(store):
    await add(store, 1, 3)
    await add(store, 2, 1)
    q = make_queue(store)
    first = await q.claim()
    second = await q.claim()
    assert (first.case_id, first.payload) == (1, {"seq": 0})
    assert second.case_id == 2  # case 1's next job waits for its first
    assert await q.claim() is None
    assert await q.complete(first)
    nxt = await q.claim()
    assert (nxt.case_id, nxt.payload) == (1, {"seq": 1})


async def test_a_dead_job_holds_its_case_until_replayed_or_discarded(store):
    await add(store, 7, 2)
    q = make_queue(store)
    job = await q.claim()
    assert await q.fail(job, Permanent("400: field 'x' unknown")) == "dead"
    assert await q.claim() is None
    async with store.read() as conn:
        dead = await queue.dead_jobs(conn)
    assert [d["last_error"] for d in dead] == ["400: field 'x' unknown"]
    async with store.tx() as conn:
        assert await queue.replay(conn, job.id) == 1
    again = await q.claim()
    assert again.id == job.id and again.attempts == 1
    assert await q.fail(again, Permanent("still bad")) == "dead"
    async with store.tx() as conn:
        assert await queue.discard(conn, job.id) == 1
    assert (await q.claim()).payload == {"seq": 1}


async def test_a_held_job_blocks_nothing_and_runs_again_once_released(store):
    await add(store, 3, 2)
    q = make_queue(store)
    held = await q.claim()
    await q.hold(held, "case 3 has no ticket yet")
    nxt = await q.claim()
    assert nxt.payload == {"seq": 1}  # a held job does not hold its case back (a fresh create must be able to run)
    assert await q.complete(nxt)
    assert await q.claim() is None
    async with store.tx() as conn:
        assert (await queue.job_counts(conn))["held"] == 1
        await conn.run_sync(release_held, [3])
    again = await q.claim()
    assert again.id == held.id and again.attempts == 1  # being held was not an attempt


async def test_transient_failures_retry_then_dead_letter_after_max_attempts(store):
    await add(store, 1, 1)
    q = make_queue(store, max_attempts=2)
    job = await q.claim()
    assert await q.fail(job, Retryable("503")) == "pending"
    await asyncio.sleep(0.01)
    job = await q.claim()
    assert job.attempts == 2
    assert await q.fail(job, Retryable("503 again")) == "dead"
    async with store.read() as conn:
        (dead,) = await queue.dead_jobs(conn)
    assert dead["last_error"] == "gave up after 2 attempts: 503 again"


async def test_retry_after_is_honoured(store):
    await add(store, 1, 1)
    q = make_queue(store)
    job = await q.claim()
    before = time.time()
    await q.fail(job, RateLimited("429", retry_after=30, cause="jira-burst-based"))
    async with store.read() as conn:
        run_after = (await conn.execute(select(jobs.c.run_after))).scalar()
    assert run_after >= before + 30
    assert await q.claim() is None


async def claim_when_due(q: JobQueue):
    for _ in range(1000):  # bounded: the retry is due within a fraction of a second
        if (job := await q.claim()) is not None:
            return job
        await asyncio.sleep(0.01)
    raise AssertionError("the retried job never came due")


async def test_a_rate_limited_attempt_costs_no_attempt(store):
    await add(store, 1, 1)
    q = make_queue(store, max_attempts=2)
    for _ in range(5):  # more 429s than max_attempts: still pending, never dead
        job = await claim_when_due(q)
        assert job.attempts == 1
        assert await q.fail(job, RateLimited("429", retry_after=0.001, cause="jira-burst-based")) == "pending"
    job = await claim_when_due(q)
    assert await q.fail(job, Retryable("503")) == "pending"  # a real failure still counts
    assert (await claim_when_due(q)).attempts == 2


async def test_an_expired_lease_is_taken_over_and_the_old_owner_cannot_finish(store):
    await add(store, 1, 1)
    dead_worker, survivor = make_queue(store, "dead"), make_queue(store, "alive")
    job = await dead_worker.claim()
    assert await survivor.claim() is None  # leased
    async with store.tx() as conn:  # the lease runs out (the worker was killed)
        await conn.execute(update(jobs).values(lease_until=time.time() - 1))
    taken = await survivor.claim()
    assert taken.id == job.id and taken.attempts == 2
    assert not await dead_worker.complete(job)  # a late finish of the old attempt changes nothing
    assert not await dead_worker.extend(job)
    assert await survivor.complete(taken)
    async with store.read() as conn:
        assert (await queue.job_counts(conn))["done"] == 1


async def test_concurrent_claimers_never_share_a_job(store):
    for case in range(20):
        await add(store, case, 5)
    queues = [make_queue(store, f"w{i}") for i in range(6)]
    seen: list[int] = []
    running_cases: set[int] = set()

    async def work(q):
        idle = 0
        while idle < 20:
            job = await q.claim()
            if job is None:
                idle += 1
                await asyncio.sleep(0.005)
                continue
            idle = 0
            assert job.case_id not in running_cases
            running_cases.add(job.case_id)
            seen.append(job.id)
            await asyncio.sleep(0.001)
            running_cases.discard(job.case_id)
            assert await q.complete(job)

    await asyncio.gather(*(work(q) for q in queues))
    assert sorted(seen) == list(range(1, 101))


def test_backoff_grows_with_jitter_and_respects_retry_after():
    retry = Retry(base_delay=1, max_delay=60)
    assert 0.5 <= backoff(1, retry, None) <= 1
    assert 4 <= backoff(4, retry, None) <= 8
    assert 30 <= backoff(20, retry, None) <= 60
    assert backoff(1, retry, 12.0) >= 12.0
