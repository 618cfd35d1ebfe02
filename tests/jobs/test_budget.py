"""The call budget per sink: send times 1/rate apart, handed out by rank; a Critical create overtakes queued comments."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from sqlalchemy import insert, update

from alertbridge.config import Retry
from alertbridge.jobs.budget import JobGate, LocalSlots, SinkBudget
from alertbridge.jobs.payloads import CommentRepeats, CreateTicket
from alertbridge.jobs.queue import CREATE, RANK_HEAD_START, REPEATS, URGENT_CREATE, JobQueue, enqueue
from alertbridge.store import Store, upgrade
from alertbridge.store.rates import SharedSlots
from alertbridge.store.tables import cases, jobs
from support.clock import FakeClock


class Clock(FakeClock):
    """Fake time that lets the other tasks run while it waits: admitted calls note when they left, new calls join the line."""

    async def sleep(self, seconds: float) -> None:
        for _ in range(5):
            await asyncio.sleep(0)
        await super().sleep(seconds)


async def admitted_in_order(budget: SinkBudget, clock: Clock, ranks: list[int], late: list[int] = ()) -> list[tuple[str, float]]:
    """Queue calls of `ranks`, then (once the first has left) calls of `late`; return (name, send time) in the order they left."""
    order: list[tuple[str, float]] = []

    async def call(name: str, rank: int) -> None:
        await budget.take(rank)
        order.append((name, clock.now()))

    tasks = [asyncio.create_task(call(f"r{rank}#{n}", rank)) for n, rank in enumerate(ranks)]
    while not order:
        await asyncio.sleep(0)
    tasks += [asyncio.create_task(call(f"late r{rank}#{n}", rank)) for n, rank in enumerate(late)]
    await asyncio.gather(*tasks)
    return order


async def test_calls_leave_one_every_interval_never_faster():
    clock = Clock()
    budget = SinkBudget("jira", 5.0, LocalSlots(), clock)
    order = await admitted_in_order(budget, clock, [REPEATS] * 12)
    times = [at for _, at in order]
    assert len(times) == 12
    assert all(later - earlier >= 0.2 - 1e-9 for earlier, later in zip(times, times[1:]))
    assert times[-1] - times[0] == pytest.approx(11 * 0.2)


class OverrunningClock(Clock):
    """Fake time whose first sleep overruns by `overrun` seconds, as a sleep on a busy machine does."""

    def __init__(self, overrun: float) -> None:
        super().__init__()
        self.overrun = overrun

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds + self.overrun)
        self.overrun = 0.0


async def test_a_send_time_an_overrun_sleep_passed_goes_unused_so_calls_never_bunch():
    clock = OverrunningClock(overrun=0.35)  # rate 5/s: the sleep wakes 1.75 intervals late
    budget = SinkBudget("jira", 5.0, LocalSlots(), clock)
    clock.time = 1000.1  # the first send time lies ahead: the dispenser sleeps (and overruns) before the first call
    budget.slots.next_free = 1000.2
    times = [at for _, at in await admitted_in_order(budget, clock, [REPEATS] * 6)]
    # The sleep woke at 1000.55: both reserved send times (1000.2, 1000.4) had passed by more than half an interval, so
    # neither was used (sent then, the first call and the one at 1000.6 would have left 0.05 s apart).
    assert times[0] == pytest.approx(1000.6)
    # No call leaves more than half an interval after its send time, so no two within less than half an interval.
    assert all(later - earlier >= 0.1 - 1e-9 for earlier, later in zip(times, times[1:]))


async def test_a_critical_create_overtakes_queued_comments():
    clock = Clock()
    budget = SinkBudget("jira", 2.0, LocalSlots(), clock)
    order = await admitted_in_order(budget, clock, [REPEATS] * 8, late=[URGENT_CREATE, CREATE])
    names = [name for name, _ in order]
    # The first comment had left already; the Critical create takes the very next send time, the other create the one after.
    assert names[1].startswith("late r0") and names[2].startswith("late r1"), names
    assert sorted(names[3:]) == sorted(f"r3#{n}" for n in range(1, 8))


async def test_comments_that_waited_long_go_before_a_fresh_create():
    clock = Clock()
    budget = SinkBudget("jira", 1.0, LocalSlots(), clock)
    order: list[str] = []

    async def call(name: str, rank: int) -> None:
        await budget.take(rank)
        order.append(name)

    tasks = [asyncio.create_task(call(f"comment{n}", REPEATS)) for n in range(4)]
    while not order:
        await asyncio.sleep(0)
    clock.time += 3 * RANK_HEAD_START + 1  # the comments in line have waited longer than three ranks' head start
    tasks.append(asyncio.create_task(call("create", URGENT_CREATE)))
    await asyncio.gather(*tasks)
    # Priority, not starvation: a Critical create queued this much later goes after them (without aging: second).
    assert order == ["comment0", "comment1", "comment2", "comment3", "create"]


async def test_a_cancelled_call_gives_its_place_up():
    clock = Clock()
    budget = SinkBudget("jira", 1.0, LocalSlots(), clock)
    first = asyncio.create_task(budget.take(REPEATS))
    cut = asyncio.create_task(budget.take(REPEATS))
    last = asyncio.create_task(budget.take(REPEATS))
    await first
    cut.cancel()
    await last
    assert cut.cancelled() and clock.now() - 1000.0 == pytest.approx(1.0)  # `last` left one interval after `first`


async def test_the_gate_charges_only_budgeted_connectors():
    clock = Clock()
    budget = SinkBudget("jira", 1.0, LocalSlots(), clock)
    gate = JobGate({"jira": budget}, REPEATS)
    for _ in range(3):
        await gate.admit("slack")  # a notifier has no budget: it waits for nothing
    assert clock.now() == 1000.0
    for _ in range(3):
        await gate.admit("jira")
    assert clock.now() == pytest.approx(1002.0)


@pytest.mark.postgres
async def test_shared_send_times_never_overlap_across_processes(pg_url):
    upgrade(pg_url)
    stores = [Store(pg_url), Store(pg_url)]  # two processes' engines
    try:
        sink = f"jira-{uuid.uuid4().hex[:8]}"
        slots = [SharedSlots(store, sink) for store in stores]
        now = time.time()
        firsts = await asyncio.gather(*(slots[n % 2].reserve(5, 0.1, now) for n in range(10)))
        # Ten reservations of five send times each: fifty distinct times 0.1 s apart, starting now, whoever asked.
        starts = sorted(firsts)
        assert starts[0] == pytest.approx(now)
        assert all(later - earlier == pytest.approx(0.5) for earlier, later in zip(starts, starts[1:]))
    finally:
        for store in stores:
            await store.aclose()


async def test_claims_put_critical_creates_first_and_repeat_comments_last(db_url):
    store = Store(db_url)
    try:
        async with store.tx() as conn:
            now = time.time()
            for n, severity in enumerate(["medium", "critical", "low", "high"]):
                case_id = (await conn.execute(insert(cases).values(
                    route="r", key=f"k{n}", key_hash=f"{n:064x}", state="open", title=f"case {n}", severity=severity, source="t",
                    first_seen=now, last_seen=now, sink="jira", observables={},
                ).returning(cases.c.id))).scalar_one()
                await enqueue(conn, CreateTicket(), case_id=case_id) if n % 2 else None
                await enqueue(conn, CommentRepeats(), case_id=case_id + 100)
                await enqueue(conn, CreateTicket(), case_id=case_id) if not n % 2 else None
        queue = JobQueue(store, Retry(), 30.0, "w1")
        claimed = await queue.claim_many(3)
        assert [(job.kind, job.rank) for job in claimed] == [("create_ticket", URGENT_CREATE)] * 2 + [("create_ticket", CREATE)]
        assert {job.sink for job in claimed} == {"jira"}
        rest = await queue.claim_many(10)
        assert [job.kind for job in rest] == ["create_ticket"] + ["comment_repeats"] * 4
    finally:
        await store.aclose()


async def test_claims_age_so_repeat_comments_never_starve_behind_creates(db_url):
    store = Store(db_url)
    try:
        async with store.tx() as conn:
            now = time.time()
            ids = []
            for n in range(3):
                ids.append((await conn.execute(insert(cases).values(
                    route="r", key=f"k{n}", key_hash=f"{n:064x}", state="open", title=f"case {n}", severity="critical", source="t",
                    first_seen=now, last_seen=now, sink="jira", observables={}, ticket_key=f"SOC-{n}" if n == 0 else None,
                ).returning(cases.c.id))).scalar_one())
            await enqueue(conn, CommentRepeats(), case_id=ids[0])
            await enqueue(conn, CreateTicket(), case_id=ids[1])
            await enqueue(conn, CreateTicket(), case_id=ids[2])
            comment, younger, much_younger = ids
            # The comment was queued 3 × the head start + 5 s before one create, and only a little before the other.
            await conn.execute(update(jobs).where(jobs.c.case_id == comment).values(created_at=now - 3 * RANK_HEAD_START - 5))
            await conn.execute(update(jobs).where(jobs.c.case_id == younger).values(created_at=now - 3 * RANK_HEAD_START))
        queue = JobQueue(store, Retry(), 30.0, "w1")
        claimed = await queue.claim_many(3)
        # The create queued 5 s after the comment still goes first (a critical create is worth 30 s of waiting);
        # the create queued 35 s after it goes after it.
        assert [(job.case_id, job.kind) for job in claimed] == [
            (younger, "create_ticket"), (comment, "comment_repeats"), (much_younger, "create_ticket")]
        assert [job.case_id for job in await JobQueue(store, Retry(), 30.0, "w2").claim_many(3)] == []
    finally:
        await store.aclose()
