"""The job runner: run a claimed job (batching creates for a bulk-capable sink), then record the outcomes of a batch at once.

``attempt`` runs one job — a create for a bulk-capable sink takes other ready
creates along — and returns each job's error or None; ``record`` writes the
outcomes of any number of attempts in one statement. The dispatcher
(jobs/dispatch.py) runs many attempts at once and records them together;
``run`` does both for one job (the CLI's and the tests' way to drain a queue).

A job that raises a typed error is retried or dead-lettered; a transient error
of a sink's job is retried after the delay the sink's health gives
(jobs/sink_health.py); one that raises ``Held`` waits for its case's ticket;
anything else (a bug, a lost database connection) is retried a bounded number
of times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog
from sqlalchemy import select

from ..connectors._http import Clock
from ..connectors.roles import BulkCreate
from ..errors import ConnectorError, Retryable
from ..metrics import JOB_LATENCY, JOB_OUTCOMES
from ..store.tables import cases
from . import create_ticket, registry
from .context import JobContext
from .payloads import CreateTicket
from .queue import SINK_KINDS, Held, Job, Outcome
from .sink_health import SinkHealths

log = structlog.get_logger("alertbridge.jobs")

Result = tuple[Job, Exception | None]
NOT_RUN = Retryable("not run: the job it was taken along with ran alone", sent=False)  # given back, not counted


class JobRunner:
    """Run claimed jobs against the sinks and notifiers, and record how they ended."""

    def __init__(self, ctx: JobContext, *, clock: Clock | None = None):
        self.ctx = ctx
        self.queue = ctx.queue
        self.clock = clock or Clock()
        self.healths = SinkHealths(list(ctx.sinks), ctx.queue.retry, ctx.queue.clock)
        self.in_hand: dict[int, Job] = {}  # every job this process claimed and has not recorded: the heartbeat renews them

    async def run(self, job: Job) -> str:
        """Run one claimed job (with other ready creates for the same sink, in bulk) and record it; return its outcome."""
        self.in_hand[job.id] = job
        return (await self.record(await self.attempt(job)))[0]

    async def attempt(self, job: Job, along: Sequence[Job] = (), *, gathered: bool = False) -> list[Result]:
        """Run one claimed job and the creates it takes `along` (claimed with it) or finds; return each job's error, None for done.

        `gathered`: the caller claimed the due creates of the job's sink along with it (jobs/dispatch.py), none to look for.
        """
        jobs = [job, *along]
        try:
            sink, more = await self._more_creates(job, len(jobs), gathered) if job.kind == CreateTicket.kind else (None, [])
            jobs += more
            if sink is not None and len(jobs) > 1:
                errors = await create_ticket.create_many(self.ctx, jobs, sink, self.clock)
            else:
                await registry.run(self.ctx, job)
                errors = {job.id: None}
        except Held as exc:
            errors = {job.id: exc}
        except asyncio.CancelledError:
            # Shutdown ran out of grace: hand the jobs back now rather than leave them to a lease expiry.
            await asyncio.shield(self.release(jobs))
            raise
        except Exception as exc:  # a bug or a lost database connection: retry a bounded number of times
            if not isinstance(exc, ConnectorError):
                log.exception("job raised an unexpected error", job=job.id, kind=job.kind)
                exc = Retryable(f"{type(exc).__name__}: {exc}")
            errors = {j.id: exc for j in jobs}
        # A job taken along that the attempt did not reach (it ran only `job`) is given back as it was.
        return [(j, errors.get(j.id, NOT_RUN)) for j in jobs]

    async def release(self, jobs: list[Job]) -> None:
        """Give claimed jobs back untouched, in one statement, so another worker can run them now."""
        try:
            await self.queue.settle([self.queue.released(job) for job in jobs])
            log.info("jobs released at shutdown", jobs=[job.id for job in jobs])
        except Exception:  # the database is gone too: the leases expire and other workers take the jobs over
            log.warning("releasing jobs at shutdown failed; their leases will expire", jobs=[job.id for job in jobs], exc_info=True)
        for job in jobs:
            self.in_hand.pop(job.id, None)

    async def record(self, results: list[Result]) -> list[str]:
        """Write the outcomes of these attempts in one statement; return each job's outcome: done, held, retry, dead or lost."""
        noted: set[int] = set()
        for job, error in results:
            # A bulk call's one failure is one thing the sink did, not fifty.
            if job.kind in SINK_KINDS and error is not NOT_RUN and (error is None or id(error) not in noted):
                self.healths.note(job.sink, error)
                noted.add(id(error))
        outcomes = [self._outcome(job, error) for job, error in results]
        try:
            await self.queue.settle([outcome for outcome in outcomes if outcome is not None])
            labels = [_label(outcome) for outcome in outcomes]
        except Exception:
            log.exception("recording job outcomes failed; their leases will expire and they will run again",
                          jobs=[job.id for job, _ in results])
            labels = ["done" if outcome is None else "lost" for outcome in outcomes]
        for (job, error), label in zip(results, labels, strict=True):
            self.in_hand.pop(job.id, None)
            self._tell(job, error, label)
        return labels

    def _outcome(self, job: Job, error: Exception | None) -> Outcome | None:
        if error is None:
            return None  # the handler marked it done with its effects
        if isinstance(error, Held):
            return self.queue.held(job, str(error))
        if error is NOT_RUN:
            return self.queue.released(job)
        delay = self.healths.delay(job.sink, error) if job.kind in SINK_KINDS else None
        return self.queue.failure(job, error, delay)

    def _tell(self, job: Job, error: Exception | None, label: str) -> None:
        if label == "done":
            JOB_LATENCY.labels(kind=job.kind).observe(time.time() - job.created_at)
        elif label == "held":
            log.info("job held", job=job.id, kind=job.kind, case=job.case_id, reason=str(error))
        elif label == "dead":
            log.error("job dead-lettered", job=job.id, kind=job.kind, case=job.case_id, attempt=job.attempts, error=str(error))
        elif label == "retry":
            log.warning("job failed", job=job.id, kind=job.kind, case=job.case_id, attempt=job.attempts, error=str(error), now="pending")
        JOB_OUTCOMES.labels(kind=job.kind, outcome=label).inc()

    async def _more_creates(self, job: Job, taken: int, gathered: bool) -> tuple[BulkCreate | None, list[Job]]:
        """Claim other ready create jobs for the same bulk-capable sink, up to its bulk limit with the `taken` ones (unless `gathered`)."""
        sink_name = job.sink  # the claim read the case's sink
        sink = self.ctx.sinks.get(sink_name or "")
        if not isinstance(sink, BulkCreate):
            return None, []
        if taken >= sink.bulk_limit or gathered:
            return sink, []
        # Not the cases of jobs in hand: a lease that lapsed while its job ran (a starved heartbeat) makes the job look
        # claimable, and taken along again it would be created twice.
        held = {claimed.case_id for claimed in [job, *self.in_hand.values()] if claimed.case_id is not None}  # NOT IN (NULL) is never true
        fresh = select(cases.c.id).where(cases.c.sink == sink_name, cases.c.ticket_key.is_(None), cases.c.create_claimed_at.is_(None),
                                         cases.c.id.notin_(held))
        more = await self.queue.claim_similar(CreateTicket.kind, fresh, sink.bulk_limit - taken)
        self.in_hand.update((claimed.id, claimed) for claimed in more)
        return sink, more


def _label(outcome: Outcome | None) -> str:
    if outcome is None:
        return "done"
    return {"held": "held", "dead": "dead"}.get(outcome.state, "retry")
