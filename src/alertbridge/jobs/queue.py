"""The job queue: a table in the same database as the cases (transactional outbox).

Every side effect is a row in ``jobs``, written in the transaction that
changed the case. The dispatcher (jobs/dispatch.py) claims a batch of jobs in
one statement and writes the outcomes of a batch in one executemany:

- **per-case order**: a job is claimable only when no earlier job of its case (and
  lane) is pending, running or dead, so a case's jobs run one at a time, in order, and a
  dead job holds the jobs behind it until it is replayed or discarded; the jobs of a
  route's further sinks each run in their own lane (jobs/tickets.py);
- **leases**: a claimed job belongs to its worker until ``lease_until``; one
  heartbeat per process extends the leases of all its running jobs, and if it dies another worker takes the
  job over once the lease has expired — no operator action;
- **claims** use ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so workers on
  many machines never wait on each other; SQLite serializes writers anyway;
- **retries**: transient failures run again after the delay the caller chose (the
  sink's health and Retry-After, jobs/sink_health.py) or else back off
  exponentially with jitter, never sooner than Retry-After; a 429 costs no
  attempt (the sink paced the hub, nothing was done); permanent ones are
  dead-lettered at once;
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
from collections.abc import Callable, Collection
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, and_, bindparam, case, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import Retry
from ..errors import AlertbridgeError, Permanent, RateLimited, Retryable
from ..store import Store, cursor
from ..store.tables import cases, jobs
from .commits import SharedCommits
from . import queue_sql

T = TypeVar("T")

STATES = ("pending", "running", "done", "dead", "held", "discarded")
# The kinds whose handlers call their case's sink: a paused sink's jobs of these kinds wait, the others run.
SINK_KINDS = ("create_ticket", "create_sink_ticket", "comment_repeats", "update_fields", "transition", "sync_members",
              "attach_evidence", "playbook_comment", "review")

# The line for the call budget and for claims: new Critical/High tickets first, repeat comments last. Per-case order is
# kept by the blocking rule, not by this order.
URGENT_CREATE, CREATE, OTHER, REPEATS = range(4)
# Priority, not starvation: a job's place in line is when it was queued plus this many seconds per rank, so a repeat
# comment waits only behind creates queued less than 3 × this after it (under faults creates retry for ever and
# comments would otherwise never run, issue 16 point 7).
RANK_HEAD_START = 10.0


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
    sink: str | None = None  # the sink of the job's case, if it has one
    rank: int = OTHER  # its place in the line for claims and the call budget


@dataclass(frozen=True)
class Outcome:
    """How a claimed job's attempt ended, to be written with the others of its batch: the new state and its columns."""

    job: Job
    state: str  # pending (retry, or released untouched), dead or held
    run_after: float
    error: str | None = None
    uncounted: bool = False  # released or held: the attempt does not count against max_attempts


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
        delay = max(delay, after(retry_after))
    return delay


def after(retry_after: float) -> float:
    """Return Retry-After with a little jitter on top, so many jobs told the same Retry-After don't all return in one instant."""
    return retry_after + random.uniform(0, min(1.0, retry_after * 0.1 + 0.05))


def place(rank: int, since: float) -> float:
    """Return a job's place in line (smaller goes first): when it joined, plus RANK_HEAD_START seconds per rank."""
    return since + rank * RANK_HEAD_START


_SEVERITY = select(cases.c.severity).where(cases.c.id == jobs.c.case_id).scalar_subquery()
# A job in a further sink's lane (jobs/tickets.py) calls that sink, not its case's.
_SINK = func.coalesce(jobs.c.lane, select(cases.c.sink).where(cases.c.id == jobs.c.case_id).scalar_subquery())
CREATES = ("create_ticket", "create_sink_ticket")
_RANK = case(
    (and_(jobs.c.kind.in_(CREATES), _SEVERITY.in_(("critical", "high"))), URGENT_CREATE),
    (jobs.c.kind.in_(CREATES), CREATE), (jobs.c.kind == "comment_repeats", REPEATS), else_=OTHER,
)
_LINE = jobs.c.created_at + _RANK * RANK_HEAD_START
_EARLIER = jobs.alias("earlier")  # built once: a fresh alias per claim defeats SQLAlchemy's statement cache
_PG = queue_sql.QueueStatements(creates=CREATES, sink_kinds=SINK_KINDS, ranks=(URGENT_CREATE, CREATE, OTHER, REPEATS), head_start=RANK_HEAD_START)


class JobQueue:
    """Claim, finish, retry and dead-letter jobs, a batch per round trip."""

    def __init__(self, store: Store, retry: Retry, lease: float, worker: str, *, clock: Callable[[], float] = time.time):
        self.store = store
        self.retry = retry
        self.lease = lease
        self.worker = worker
        self.clock = clock  # wall-clock seconds, shared by every process (a test injects its own)
        self._statements: dict[tuple, tuple] = {}  # the claim statements of each shape of claim_many
        self.commits = SharedCommits(store)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run a job's unit of work `work(conn, *args)` as a write, sharing its commit with the units queued with it."""
        return await self.commits.run(work, *args)

    def _claimable(self, now, limit):
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
        return select(jobs.c.id).where(ready, ~blocked).order_by(_LINE, jobs.c.id).limit(limit).with_for_update(skip_locked=True)

    async def claim(self) -> Job | None:
        """Take a ready job whose case has nothing earlier outstanding (new tickets first, then oldest, with aging), or None."""
        return next(iter(await self.claim_many(1)), None)

    async def claim_many(self, limit: int, *, skip_sinks: Collection[str] = (), only_sink: str | None = None,
                         in_hand: Collection[int] = (), kinds: Collection[str] = ()) -> list[Job]:
        """Take up to `limit` ready jobs (of `kinds`, if given), at most one per case, in one statement; `skip_sinks`' and all but `only_sink`'s jobs stay."""
        if not self.store.is_sqlite:  # the same claim in the driver's SQL (jobs/queue_sql.py), on the unit's cursor (store/cursor.py)
            sql, params = _PG.claim(self.clock(), self.lease, self.worker, limit, in_hand, kinds, skip_sinks, only_sink)
            return _in_line([Job(*row) for row in await self.commits.run_one(cursor.fetch_all, sql, params)])
        shape = (bool(in_hand), tuple(kinds), tuple(sorted(skip_sinks)), only_sink)
        statements = self._statements.get(shape)
        if statements is None:
            statements = self._statements[shape] = self._claim_statements(*shape)
        return await self._claim(statements, {"now": self.clock(), "limit": limit, "in_hand": list(in_hand)})

    def _claim_statements(self, in_hand: bool, kinds: tuple[str, ...], skip_sinks: tuple[str, ...], only_sink: str | None):
        # Built once per shape, its values bound at each claim: building and hashing this statement per claim cost more
        # CPU than running it (SQLAlchemy's cache key walks the whole tree each time).
        query = self._claimable(bindparam("now"), bindparam("limit"))
        if in_hand:  # this process runs them still: a lease that lapsed (a starved heartbeat) must not make them run twice
            query = query.where(jobs.c.id.notin_(bindparam("in_hand", expanding=True)))
        if kinds:
            query = query.where(jobs.c.kind.in_(kinds))
        if skip_sinks:
            query = query.where(or_(jobs.c.kind.notin_(SINK_KINDS), _SINK.is_(None), _SINK.notin_(skip_sinks)))
        if only_sink is not None:
            query = query.where(jobs.c.kind.in_(SINK_KINDS), _SINK == only_sink)
        return _probe(query), self._update_claimed(query)

    def _update_claimed(self, query):
        # One statement: the locked ids, their new state, and what the dispatcher needs to know of each.
        return update(jobs).where(jobs.c.id.in_(query)).values(
            state="running", lease_until=bindparam("lease_until"), worker=self.worker, attempts=jobs.c.attempts + 1,
        ).returning(*jobs.c, _SINK.label("sink"), _RANK.label("rank"))

    async def claim_similar(self, kind: str, case_ids, limit: int) -> list[Job]:
        """Take up to `limit` more ready jobs of one kind among the cases `case_ids` (a subquery), for batching."""
        query = self._claimable(self.clock(), limit).where(jobs.c.kind == kind, jobs.c.case_id.in_(case_ids))
        return await self._claim((_probe(query), self._update_claimed(query)), {})

    async def _claim(self, statements, params: dict[str, Any]) -> list[Job]:
        probe, claim = statements
        if self.store.is_sqlite:
            # SQLite has one writer: look on a read connection first, so an idle worker never queues for the write lock.
            if not await self.store.run_read(_any, probe, params):
                return []
        rows = await self.commits.run_one(_rows, claim, params | {"lease_until": self.clock() + self.lease})
        return _in_line([Job(r["id"], r["case_id"], r["kind"], r["payload"], r["attempts"], r["created_at"], r["sink"], r["rank"]) for r in rows])

    async def extend(self, job: Job) -> bool:
        """Push the lease forward; False if the job was taken over by another worker."""
        return await self.renew([job]) == 1

    async def renew(self, claimed: Collection[Job]) -> int:
        """Push the leases of all these jobs forward in one statement (the process's heartbeat); return how many are still ours."""
        if not claimed:
            return 0
        owned = tuple_(jobs.c.id, jobs.c.attempts).in_([(job.id, job.attempts) for job in claimed])
        statement = update(jobs).where(owned, jobs.c.state == "running", jobs.c.worker == self.worker).values(
            lease_until=self.clock() + self.lease)
        return await self.commits.run_one(_count, statement)

    def completion(self, job: Job) -> dict[str, Any]:
        """Return the parameters of `COMPLETE` that mark the job done, for a unit of work that records its effects with it."""
        return {"job_id": job.id, "owner": self.worker, "attempt": job.attempts, "now": self.clock()}

    def complete_in(self, conn: Connection, job: Job) -> bool:
        """Mark the job done inside a unit of work (with the effects it recorded); False if it is no longer this attempt's."""
        if conn.dialect.name == "postgresql":
            return cursor.execute(conn, _PG.complete, (self.clock(), job.id, self.worker, job.attempts)) == 1
        return conn.execute(COMPLETE, self.completion(job)).rowcount == 1

    async def complete(self, job: Job, conn: AsyncConnection | None = None) -> bool:
        """Mark the job done (inside `conn` when given, with the effects it recorded)."""
        if conn is not None:
            return (await conn.execute(COMPLETE, self.completion(job))).rowcount == 1
        return await self.run(self.complete_in, job)

    def failure(self, job: Job, error: Exception, delay: float | None = None) -> Outcome:
        """Return the retry (after `delay`, else the job's own backoff) or the dead letter a failed attempt comes to."""
        message = str(error)[:4000]
        if isinstance(error, RateLimited):
            # A 429 is the sink pacing the hub before it did anything: not a failure of the job, so it costs no attempt
            # (under a busy site's 429s a create met ten in a row and was dead-lettered). A sink that refuses
            # everything is paused by its health (jobs/sink_health.py), its jobs waiting in the queue.
            delay = backoff(job.attempts, self.retry, error.retry_after) if delay is None else delay
            return Outcome(job, "pending", self.clock() + delay, message, uncounted=True)
        if isinstance(error, Retryable) and job.attempts < self.retry.max_attempts:
            delay = backoff(job.attempts, self.retry, error.retry_after) if delay is None else delay
            return Outcome(job, "pending", self.clock() + delay, message)
        if isinstance(error, Retryable):
            message = f"gave up after {job.attempts} attempts: {message}"
        elif not isinstance(error, Permanent):
            message = f"{type(error).__name__}: {message}"
        return Outcome(job, "dead", self.clock(), message)

    def held(self, job: Job, reason: str) -> Outcome:
        """Return the outcome that parks a job until its case has a ticket (`release_held`): it blocks nothing meanwhile."""
        return Outcome(job, "held", self.clock(), reason[:4000], uncounted=True)

    def released(self, job: Job) -> Outcome:
        """Return the outcome that gives a claimed job back untouched (on shutdown), so another worker can run it now."""
        return Outcome(job, "pending", self.clock(), uncounted=True)

    async def settle(self, outcomes: Collection[Outcome]) -> None:
        """Write the outcomes of a batch of attempts in one executemany (a job another worker took over is left alone)."""
        if not outcomes:
            return
        now = self.clock()
        rows = [{
            "job_id": o.job.id, "attempt": o.job.attempts, "new_state": o.state, "new_run_after": o.run_after, "error": o.error,
            "finished": now if o.state == "dead" else None, "uncount": int(o.uncounted),
        } for o in outcomes]
        await self.run(_count, _SETTLE.where(jobs.c.worker == self.worker), rows)

    async def fail(self, job: Job, error: Exception) -> str:
        """Schedule a retry or dead-letter the job; return the new state."""
        outcome = self.failure(job, error)
        await self.settle([outcome])
        return outcome.state

    async def hold(self, job: Job, reason: str) -> None:
        """Park a job until its case has a ticket (`release_held`); it blocks nothing meanwhile, so a fresh create can run."""
        await self.settle([self.held(job, reason)])

    async def release(self, job: Job) -> None:
        """Give a claimed job back untouched (on shutdown), so another worker can run it now."""
        await self.settle([self.released(job)])


def _probe(query):
    """Return the claim's query as a look for any one claimable job: unordered, so it stops at the first it finds."""
    # The line (rank, age) is computed and sorted over every ready job; whether there is one needs none of that.
    return query.order_by(None).limit(1)


def _rows(conn: Connection, statement, params: dict[str, Any] | None = None) -> list:
    return list(conn.execute(statement, params).mappings())


def _in_line(claimed: list[Job]) -> list[Job]:
    return sorted(claimed, key=lambda job: (place(job.rank, job.created_at), job.id))


def _any(conn: Connection, query, params: dict[str, Any]) -> bool:
    return conn.execute(query, params).first() is not None


def _count(conn: Connection, statement, rows: list[dict[str, Any]] | None = None) -> int:
    return conn.execute(statement, rows).rowcount


# Built once, its values bound at each execution: building a statement per job (and SQLAlchemy's cache key walk of
# it) cost more CPU on the database thread than running it. Only the attempt's own worker finishes it, and only while
# no other worker has taken it over.
COMPLETE = update(jobs).where(
    jobs.c.id == bindparam("job_id"), jobs.c.state == "running", jobs.c.worker == bindparam("owner"),
    jobs.c.attempts == bindparam("attempt"),
).values(state="done", finished_at=bindparam("now"), lease_until=None)

_SETTLE = update(jobs).where(
    jobs.c.id == bindparam("job_id"), jobs.c.attempts == bindparam("attempt"), jobs.c.state == "running",
).values(
    state=bindparam("new_state"), run_after=bindparam("new_run_after"), last_error=func.coalesce(bindparam("error"), jobs.c.last_error),
    finished_at=bindparam("finished"), lease_until=None, attempts=jobs.c.attempts - bindparam("uncount"),
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


def release_held(conn: Connection, case_ids: list[int]) -> None:
    """Let the held jobs of these cases run again (their cases have tickets now), in their original order, inside a unit of work."""
    now = time.time()
    if case_ids and conn.dialect.name == "postgresql":
        cursor.execute(conn, _PG.release_held, (now, list(case_ids)))
    elif case_ids:
        conn.execute(_RELEASE_HELD, [{"case": case_id, "now": now} for case_id in case_ids])


# One case per row of an executemany: an expanding IN list is compiled again for every length it comes in.
_RELEASE_HELD = update(jobs).where(jobs.c.case_id == bindparam("case"), jobs.c.state == "held").values(
    state="pending", run_after=bindparam("now"), last_error=None,
)


async def job_counts(conn: AsyncConnection) -> dict[str, int]:
    """Count jobs by state."""
    rows = await conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
    counts = dict.fromkeys(STATES, 0)
    counts.update({state: n for state, n in rows})
    return counts
