"""The job queue: a table in the same database as the cases (transactional outbox).

Every side effect is a row in ``jobs``, written in the transaction that
changed the case. Workers claim one job at a time:

- **per-case order**: a job is claimable only when no earlier job of its case (and
  lane) is pending, running or dead, so a case's jobs run one at a time, in order, and a
  dead job holds the jobs behind it until it is replayed or discarded; the jobs of a
  route's further sinks each run in their own lane (jobs/tickets.py);
- **leases**: a claimed job belongs to its worker until ``lease_until``; the
  worker extends the lease while it runs, and if it dies another worker takes the
  job over once the lease has expired — no operator action;
- **claims** use ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers on
  many machines never wait on each other; SQLite serializes writers anyway;
- **retries**: transient failures back off exponentially with jitter, never
  sooner than the vendor's Retry-After; permanent ones are dead-lettered at once;
- **held**: a job that needs its case's ticket, on a case that has none (its
  create was discarded), waits in state ``held`` — it blocks nothing, so a fresh
  create can run — and goes back to ``pending`` when the case gets its ticket.

States: pending → running → done | pending (retry) | dead | held; dead → pending
(replay) | discarded; held → pending (the case got its ticket).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, and_, case, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import Retry
from ..errors import AlertbridgeError, Permanent, Retryable
from ..store import Store
from ..store.tables import jobs

STATES = ("pending", "running", "done", "dead", "held", "discarded")


class JobPayload(BaseModel):
    """What a job of one kind carries; each kind's model names its `kind` (see jobs/registry.py)."""

    # Keys an older version wrote (e.g. a create's pre-rendered draft) are ignored, not refused.
    model_config = ConfigDict(extra="ignore", frozen=True)
    kind: ClassVar[str]


class Held(AlertbridgeError):
    """Raised by a handler whose job cannot run until its case has a ticket: the job waits, it is not a failure."""


@dataclass
class Job:
    """A claimed job, owned by this worker until its lease runs out."""

    id: int
    case_id: int | None
    kind: str
    payload: dict[str, Any]
    attempts: int
    created_at: float


async def enqueue(conn: AsyncConnection, payload: JobPayload, *, case_id: int | None = None, delay: float = 0.0,
                  lane: str | None = None) -> None:
    """Add a job inside the caller's transaction, so it exists if and only if the change that caused it does."""
    now = time.time()
    await conn.execute(insert(jobs).values(
        case_id=case_id, kind=payload.kind, payload=payload.model_dump(mode="json"), run_after=now + delay, created_at=now,
        lane=lane,
    ))


def job_values(payload: JobPayload, *, now: float, delay: float = 0.0, lane: str | None = None) -> dict[str, Any]:
    """Return the jobs-table row that queues `payload` (without its case id), for `enqueue_many`."""
    return dict(kind=payload.kind, payload=payload.model_dump(mode="json"), state="pending", run_after=now + delay,
                created_at=now, finished_at=None, last_error=None, lane=lane)


def enqueue_many(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Add many jobs (`job_values` rows with their `case_id`) in one executemany, in order, inside a unit of work."""
    if rows:
        conn.execute(insert(jobs), rows)


def backoff(attempt: int, retry: Retry, retry_after: float | None) -> float:
    """Return the delay before retry number `attempt`: exponential with full jitter, at least Retry-After."""
    ceiling = min(retry.max_delay, retry.base_delay * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        # A little jitter on top, so many jobs told the same Retry-After don't all return in the same instant.
        delay = max(delay, retry_after + random.uniform(0, min(1.0, retry_after * 0.1 + 0.05)))
    return delay


_EARLIER = jobs.alias("earlier")  # built once: a fresh alias per claim defeats SQLAlchemy's statement cache
# New tickets first: a burst of repeat comments must not hold back the first ticket of a new case.
# Per-case order is kept by the blocking rule, not by this order.
_PRIORITY = case((jobs.c.kind.in_(("create_ticket", "create_sink_ticket")), 0), else_=1)


class JobQueue:
    """Claim, finish, retry and dead-letter jobs."""

    def __init__(self, store: Store, retry: Retry, lease: float, worker: str):
        self.store = store
        self.retry = retry
        self.lease = lease
        self.worker = worker

    def _claimable(self, now: float, limit: int = 1):
        earlier = _EARLIER
        blocked = exists().where(
            earlier.c.case_id == jobs.c.case_id,
            earlier.c.lane.is_not_distinct_from(jobs.c.lane),  # a further sink's jobs wait for that sink's only (jobs/tickets.py)
            earlier.c.id < jobs.c.id,
            earlier.c.state.in_(("pending", "running", "dead")),
        )
        ready = or_(
            and_(jobs.c.state == "pending", jobs.c.run_after <= now),
            and_(jobs.c.state == "running", jobs.c.lease_until < now),
        )
        return select(jobs).where(ready, ~blocked).order_by(_PRIORITY, jobs.c.id).limit(limit).with_for_update(skip_locked=True)

    async def claim(self) -> Job | None:
        """Take a ready job whose case has nothing earlier outstanding (new tickets first, then oldest), or None."""
        claimed = await self._claim(self._claimable(time.time()))
        return claimed[0] if claimed else None

    async def claim_similar(self, kind: str, case_ids, limit: int) -> list[Job]:
        """Take up to `limit` more ready jobs of one kind among the cases `case_ids` (a subquery), for batching."""
        query = self._claimable(time.time(), limit).where(jobs.c.kind == kind, jobs.c.case_id.in_(case_ids))
        return await self._claim(query)

    async def _claim(self, query) -> list[Job]:
        now = time.time()
        if self.store.is_sqlite:
            # SQLite has one writer: look on a read connection first, so an idle worker never queues for the write lock.
            async with self.store.read() as conn:
                if (await conn.execute(query.with_only_columns(jobs.c.id))).first() is None:
                    return []
        async with self.store.tx() as conn:
            rows = (await conn.execute(query)).mappings().all()
            if rows:
                await conn.execute(
                    update(jobs).where(jobs.c.id.in_([r["id"] for r in rows])).values(
                        state="running", lease_until=now + self.lease, worker=self.worker, attempts=jobs.c.attempts + 1
                    )
                )
        return [Job(r["id"], r["case_id"], r["kind"], r["payload"], r["attempts"] + 1, r["created_at"]) for r in rows]

    def _owned(self, job: Job):
        # The worker that claimed this attempt, and only while no other worker has taken it over.
        return and_(jobs.c.id == job.id, jobs.c.state == "running", jobs.c.worker == self.worker, jobs.c.attempts == job.attempts)

    async def extend(self, job: Job) -> bool:
        """Push the lease forward; False if the job was taken over by another worker."""
        async with self.store.tx() as conn:
            result = await conn.execute(update(jobs).where(self._owned(job)).values(lease_until=time.time() + self.lease))
        return result.rowcount == 1

    async def complete(self, job: Job, conn: AsyncConnection | None = None) -> bool:
        """Mark the job done (inside `conn` when given, with the effects it recorded)."""
        statement = update(jobs).where(self._owned(job)).values(state="done", finished_at=time.time(), lease_until=None)
        if conn is not None:
            return (await conn.execute(statement)).rowcount == 1
        async with self.store.tx() as own:
            return (await own.execute(statement)).rowcount == 1

    async def fail(self, job: Job, error: Exception) -> str:
        """Schedule a retry or dead-letter the job; return the new state."""
        message = str(error)[:4000]
        if isinstance(error, Retryable) and job.attempts < self.retry.max_attempts:
            delay = backoff(job.attempts, self.retry, error.retry_after)
            values = dict(state="pending", run_after=time.time() + delay, last_error=message, lease_until=None)
        else:
            if isinstance(error, Retryable):
                message = f"gave up after {job.attempts} attempts: {message}"
            elif not isinstance(error, Permanent):
                message = f"{type(error).__name__}: {message}"
            values = dict(state="dead", last_error=message, finished_at=time.time(), lease_until=None)
        async with self.store.tx() as conn:
            await conn.execute(update(jobs).where(self._owned(job)).values(**values))
        return values["state"]

    async def hold(self, job: Job, reason: str) -> None:
        """Park a job until its case has a ticket (`release_held`); it blocks nothing meanwhile, so a fresh create can run."""
        async with self.store.tx() as conn:
            await conn.execute(update(jobs).where(self._owned(job)).values(
                state="held", last_error=reason[:4000], lease_until=None, attempts=jobs.c.attempts - 1,
            ))

    async def release(self, job: Job) -> None:
        """Give a claimed job back untouched (on shutdown), so another worker can run it now."""
        async with self.store.tx() as conn:
            await conn.execute(
                update(jobs).where(self._owned(job)).values(state="pending", lease_until=None, attempts=jobs.c.attempts - 1)
            )


async def dead_jobs(conn: AsyncConnection, limit: int = 100) -> list[dict[str, Any]]:
    """List dead-lettered jobs, oldest first."""
    rows = await conn.execute(select(jobs).where(jobs.c.state == "dead").order_by(jobs.c.id).limit(limit))
    return [dict(r) for r in rows.mappings()]


async def get_job(conn: AsyncConnection, job_id: int) -> dict[str, Any] | None:
    """Return one job row."""
    row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).mappings().first()
    return dict(row) if row else None


async def replay(conn: AsyncConnection, job_id: int | None = None, *, kind: str | None = None) -> int:
    """Put one dead job (or all, or all of one kind, when job_id is None) back in the queue with fresh attempts."""
    where = [jobs.c.state == "dead"] + ([jobs.c.id == job_id] if job_id is not None else [])
    where += [jobs.c.kind == kind] if kind is not None else []
    result = await conn.execute(update(jobs).where(*where).values(state="pending", attempts=0, run_after=time.time(), finished_at=None))
    return result.rowcount


async def discard(conn: AsyncConnection, job_id: int) -> int:
    """Drop a dead job for good (it stays in the table as 'discarded' for the record)."""
    result = await conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.state == "dead").values(state="discarded"))
    return result.rowcount


async def release_held(conn: AsyncConnection, case_ids: list[int]) -> None:
    """Let the held jobs of these cases run again (their cases have tickets now), in their original order."""
    await conn.execute(update(jobs).where(jobs.c.case_id.in_(case_ids), jobs.c.state == "held").values(
        state="pending", run_after=time.time(), last_error=None,
    ))


async def job_counts(conn: AsyncConnection) -> dict[str, int]:
    """Count jobs by state."""
    rows = await conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
    counts = dict.fromkeys(STATES, 0)
    counts.update({state: n for state, n in rows})
    return counts
