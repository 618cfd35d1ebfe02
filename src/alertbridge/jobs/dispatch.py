"""The dispatcher: one loop per process that claims due jobs in batches and runs each as an asyncio task.

Many calls are in flight at once — up to ``workers`` jobs per process — so a
sink that hangs on a few calls holds a few tasks, not the whole process. What a
sink receives is bounded by its call budget (``rate_limit``, jobs/budget.py) and
its connection slots, not by how many loops run. Each turn of the loop:

1. records the outcomes of every job that finished since the last turn, in one
   statement (jobs/runner.py ``record``);
2. claims as many due jobs as there is room for, in one statement (one per
   case: per-case order is the queue's rule), leaving the jobs of paused sinks
   in the queue, plus one probe job for a sink whose pause is over
   (jobs/sink_health.py);
3. starts each claimed job as a task whose calls wait for their sink's budget
   at the job's rank (new Critical/High tickets first, repeat comments last);
   when every worker is busy, creates run beside the workers, up to
   ``CREATING`` tasks at once (each one bulk call), so a new ticket waits
   neither for a worker held by repeat comments nor for another ticket's call;
4. waits for a job to finish, for new work (``ready``), or ``poll_interval``.

A create task looks for due creates only when there may be some: this process
queued work (``ready``), the last claim took all it asked for, a create task
finished, or ``poll_interval`` passed (another process's work, retries due).

A job that has run longer than ``SLOW_AFTER`` (its call hangs until the client's
timeout, or it waits out a Retry-After) no longer holds one of the ``workers``:
another job takes its place, up to ``MOST_IN_FLIGHT`` times ``workers`` in flight.

One heartbeat per process renews the leases of all its jobs in one statement.
On shutdown the loop stops claiming and lets running jobs finish; jobs still
running when the grace is over are cancelled and released (jobs/runner.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from ..connectors._http.gate import CALL_GATE
from ..metrics import JOBS_IN_FLIGHT
from .budget import JobGate, SinkBudget
from ..connectors.roles import BulkCreate
from .payloads import CreateTicket
from .queue import CREATES, Job
from .runner import JobRunner, Result

log = structlog.get_logger("alertbridge.jobs")

# A job still running after SLOW_AFTER seconds waits on a slow or hung sink (a call that will time out, a long
# Retry-After): it stops holding a worker, so a few hangs do not stall every other job (issue 16 point 7). What the
# sink is sent stays bounded by its connection slots and `rate_limit`; jobs in flight by MOST_IN_FLIGHT × workers.
SLOW_AFTER = 2.0
MOST_IN_FLIGHT = 4
# Create tasks in flight beside the workers. One at a time made each new ticket wait for the call before it (a round
# of ~200 ms at 150 ms of Jira latency, so p99 near twice that); four let a create leave at once up to ~20 new cases a
# second and still gather what waits into one bulk call beyond. A sink with a call budget gets one at a time: its
# calls wait for their send times anyway, and one task's bulk gathers what came meanwhile instead of spending budget.
CREATING = 4


class Dispatcher:
    """Claim jobs in batches and run them concurrently, up to `capacity` at once."""

    def __init__(self, runner: JobRunner, budgets: dict[str, SinkBudget], *, capacity: int, poll_interval: float = 0.5,
                 slow_after: float = SLOW_AFTER):
        self.runner = runner
        self.queue = runner.queue
        self.budgets = budgets
        self.capacity = capacity
        self.poll_interval = poll_interval
        self.slow_after = slow_after
        self.running: dict[asyncio.Task[list[Result]], Job] = {}
        self.started: dict[asyncio.Task[list[Result]], float] = {}  # monotonic start of each running task
        self._maybe_due = True  # creates may be due that no claim has looked for since they were queued
        self._looked = -1e9  # monotonic time a create task last looked for creates while every worker was busy

    async def run_forever(self, stopping: asyncio.Event, ready: asyncio.Event) -> None:
        """Dispatch until `stopping` is set, then let the running jobs finish (or be released when cancelled)."""
        heartbeat = asyncio.create_task(self._renew_leases(), name="heartbeat")
        try:
            while not stopping.is_set():
                # Cleared before the claim, not after it: work queued while the claim runs wakes the next wait.
                if ready.is_set():
                    ready.clear()
                    self._maybe_due = True
                await self._record_finished()
                claimed = await self._claim()
                for group in self._groups(claimed):
                    self._start(group)
                if claimed:
                    continue  # there may be more: claim again once these are under way
                await self._wait(ready)
            while self.running:
                await asyncio.wait(list(self.running), return_when=asyncio.FIRST_COMPLETED)
                await self._record_finished()
        except asyncio.CancelledError:
            await asyncio.shield(self._give_back())
            raise
        finally:
            heartbeat.cancel()

    def _room(self) -> int:
        """Return how many more jobs may start: workers not held by a fresh job, within the ceiling of jobs in flight."""
        now = time.monotonic()
        busy = sum(1 for started in self.started.values() if now - started < self.slow_after)
        return min(self.capacity - busy, self.capacity * MOST_IN_FLIGHT - len(self.running))

    def _creating(self) -> list[str | None]:
        """Return the sink of each create task that still counts against CREATING (not yet slow)."""
        now = time.monotonic()
        return [job.sink for task, job in self.running.items() if job.kind in CREATES and now - self.started[task] < self.slow_after]

    async def _claim(self) -> list[Job]:
        """Claim the jobs that may start now, a bulk-capable sink's due creates together."""
        room = self._room()
        kinds: tuple[str, ...] = ()
        healths = self.runner.healths
        skip = healths.paused()
        if room <= 0:
            # A new ticket never waits for a worker: one more task takes the due creates (a bulk-capable sink's up to
            # its bulk limit), however many comments hold the workers, up to CREATING of them at once.
            creating, now = self._creating(), time.monotonic()
            if len(creating) >= CREATING or len(self.running) >= self.capacity * MOST_IN_FLIGHT + CREATING:
                return []
            if not self._maybe_due and now - self._looked < self.poll_interval:
                return []  # nothing queued since the last look: no claim that would find nothing
            room, kinds, self._looked = 1, CREATES, now
            skip = skip | {sink for sink in creating if sink in self.budgets}
        try:
            in_hand = list(self.runner.in_hand)
            claimed = await self.queue.claim_many(room, skip_sinks=skip, in_hand=in_hand, kinds=kinds)
            self._maybe_due = len(claimed) >= room  # fewer than asked for: nothing else this claim could take is due
            if self._maybe_due:
                claimed += await self._gather(claimed, in_hand)
            for sink in healths.probes_wanted():
                if len(claimed) < room and (probe := await self.queue.claim_many(1, only_sink=sink, in_hand=in_hand)):
                    healths.of(sink).probe()
                    log.info("sink pause over: one job tries it", sink=sink, job=probe[0].id)
                    claimed += probe
        except Exception:
            log.exception("claiming jobs failed; retrying")
            await asyncio.sleep(self.poll_interval * 4)
            return []
        self.runner.in_hand.update((job.id, job) for job in claimed)
        return claimed

    async def _gather(self, claimed: list[Job], in_hand: list[int]) -> list[Job]:
        """Claim the other due creates of each bulk-capable sink a claimed create is for, to leave in its bulk call.

        Here, not in the create's task: the next claim would otherwise race the task for them and split creates
        that were due together over two calls.
        """
        taken: dict[str, int] = {}
        for job in claimed:
            if job.kind == CreateTicket.kind and job.sink is not None:
                taken[job.sink] = taken.get(job.sink, 0) + 1
        more: list[Job] = []
        for name, count in taken.items():
            sink = self.runner.ctx.sinks.get(name)
            if isinstance(sink, BulkCreate) and count < sink.bulk_limit:
                more += await self.queue.claim_many(sink.bulk_limit - count, only_sink=name, kinds=(CreateTicket.kind,),
                                                    in_hand=[*in_hand, *(job.id for job in claimed), *(job.id for job in more)])
        return more

    def _groups(self, claimed: list[Job]) -> list[list[Job]]:
        """Put the claimed creates of one bulk-capable sink together (one bulk call each), every other job alone."""
        groups: list[list[Job]] = []
        bulks: dict[str, list[Job]] = {}
        for job in claimed:
            sink = self.runner.ctx.sinks.get(job.sink or "")
            if job.kind != CreateTicket.kind or not isinstance(sink, BulkCreate):
                groups.append([job])
                continue
            group = bulks.get(sink.name)
            if group is None or len(group) >= sink.bulk_limit:
                group = bulks[sink.name] = []
                groups.append(group)
            group.append(job)
        return groups

    def _start(self, group: list[Job]) -> None:
        task = asyncio.create_task(self._attempt(group), name=f"job-{group[0].id}")
        self.running[task] = group[0]
        self.started[task] = time.monotonic()
        JOBS_IN_FLIGHT.set(len(self.running))

    async def _attempt(self, group: list[Job]) -> list[Result]:
        # This task's own context: its calls wait for their budget at the best rank of the group.
        CALL_GATE.set(JobGate(self.budgets, min(job.rank for job in group)))
        return await self.runner.attempt(group[0], group[1:], gathered=True)

    async def _record_finished(self) -> None:
        finished = [task for task in self.running if task.done()]
        if not finished:
            return
        results: list[Result] = []
        for task in finished:
            job = self.running.pop(task)
            self.started.pop(task, None)
            if task.cancelled():
                continue  # released by the attempt itself
            if (error := task.exception()) is not None:  # attempt() catches everything else: a bug in it
                log.error("a job task failed", job=job.id, exc_info=error)
                continue  # its lease expires and the job runs again
            results += task.result()
            if job.kind in CREATES:
                self._maybe_due = True  # its sink's creates that waited for it (a budgeted sink's) may go now
        JOBS_IN_FLIGHT.set(len(self.running))
        await self.runner.record(results)

    async def _wait(self, ready: asyncio.Event) -> None:
        waiter = asyncio.create_task(ready.wait())
        try:
            await asyncio.wait([waiter, *self.running], timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()

    async def _give_back(self) -> None:
        """Cut the running jobs short (their attempts release them), record the finished ones, release the rest."""
        for task in self.running:
            task.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._record_finished()
        if self.runner.in_hand:
            await self.runner.release(list(self.runner.in_hand.values()))

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.queue.lease / 3)
            jobs = list(self.runner.in_hand.values())
            try:
                ours = await self.queue.renew(jobs)
            except Exception:  # a database hiccup must not end the heartbeat: try again next beat
                log.warning("renewing leases failed; will retry", jobs=len(jobs), exc_info=True)
                continue
            if ours < len(jobs):
                log.info("some leases are no longer ours: finished or taken over", renewed=ours, held=len(jobs))
