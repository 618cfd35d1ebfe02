"""The job runner: claim a job, batch creates for a bulk-capable sink, keep the leases alive, record the outcome.

Every worker task of a process runs ``work_forever``. It wakes on ``ready``
when work arrives in this process and polls the database otherwise, so work
written by another process is picked up within ``poll_interval``. A job that
raises a typed error is retried or dead-lettered by the queue; one that raises
``Held`` waits for its case's ticket; anything else (a bug, a lost database
connection) is retried a bounded number of times.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from sqlalchemy import select

from ..connectors.roles import BulkCreate
from ..errors import ConnectorError, Retryable
from ..metrics import JOB_LATENCY, JOB_OUTCOMES
from ..store.tables import cases
from . import create_ticket, registry
from .context import JobContext
from .payloads import CreateTicket
from .queue import Held, Job

log = structlog.get_logger("alertbridge.jobs")


class JobRunner:
    """Run claimed jobs against the sinks and notifiers."""

    def __init__(self, ctx: JobContext, *, poll_interval: float = 0.5):
        self.ctx = ctx
        self.queue = ctx.queue
        self.poll_interval = poll_interval

    async def work_forever(self, stopping: asyncio.Event, ready: asyncio.Event) -> None:
        """Claim and run jobs until `stopping` is set; `ready` is set whenever new work may be claimable."""
        while not stopping.is_set():
            try:
                job = await self.queue.claim()
            except Exception:
                log.exception("claiming a job failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.poll_interval * 4)
                continue
            if job is None:
                ready.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ready.wait(), self.poll_interval)
                continue
            await self.run(job)
            # A finished job may unblock the next one of its case.
            ready.set()

    async def run(self, job: Job) -> str:
        """Run one claimed job (with other ready creates for the same sink, in bulk); return its outcome."""
        jobs, heartbeat = [job], None
        try:
            sink, batch = await self._more_creates(job) if job.kind == CreateTicket.kind else (None, [])
            jobs += batch
            heartbeat = asyncio.create_task(self._keep_leases(list(jobs)))
            if batch:
                errors = await create_ticket.create_many(self.ctx, jobs, sink)
            else:
                await registry.run(self.ctx, job)
                errors = {job.id: None}
        except Held as exc:
            errors = {job.id: exc}
        except asyncio.CancelledError:
            # Shutdown ran out of grace: hand the jobs back now rather than leave them to a lease expiry.
            await asyncio.shield(self._release(jobs))
            raise
        except Exception as exc:  # a bug or a lost database connection: retry a bounded number of times
            if not isinstance(exc, ConnectorError):
                log.exception("job raised an unexpected error", job=job.id, kind=job.kind)
                exc = Retryable(f"{type(exc).__name__}: {exc}")
            errors = {j.id: exc for j in jobs}
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
        outcomes = [await self._record(j, errors.get(j.id)) for j in jobs]
        return outcomes[0]

    async def _release(self, jobs: list[Job]) -> None:
        for job in jobs:
            try:
                await self.queue.release(job)
                log.info("job released at shutdown", job=job.id, kind=job.kind, case=job.case_id)
            except Exception:  # the database is gone too: the lease expires and another worker takes the job over
                log.warning("releasing a job at shutdown failed; its lease will expire", job=job.id, exc_info=True)

    async def _more_creates(self, job: Job) -> tuple[BulkCreate | None, list[Job]]:
        """Claim other ready create jobs for the same bulk-capable sink, so a burst of new cases costs few calls."""
        async with self.ctx.store.read() as conn:
            sink_name = (await conn.execute(select(cases.c.sink).where(cases.c.id == job.case_id))).scalar()
        sink = self.ctx.sinks.get(sink_name)
        if not isinstance(sink, BulkCreate):
            return None, []
        fresh = select(cases.c.id).where(cases.c.sink == sink_name, cases.c.ticket_key.is_(None), cases.c.create_claimed_at.is_(None))
        return sink, await self.queue.claim_similar(CreateTicket.kind, fresh, sink.bulk_limit - 1)

    async def _record(self, job: Job, error: Exception | None) -> str:
        if error is None:
            outcome = "done"
            JOB_LATENCY.labels(kind=job.kind).observe(time.time() - job.created_at)
        elif isinstance(error, Held):
            outcome = await self._hold(job, error)
        else:
            outcome = await self._fail(job, error)
        JOB_OUTCOMES.labels(kind=job.kind, outcome=outcome).inc()
        return outcome

    async def _hold(self, job: Job, reason: Held) -> str:
        try:
            await self.queue.hold(job, str(reason))
        except Exception:
            log.exception("holding a job failed; its lease will expire and it will run again", job=job.id)
            return "lost"
        log.info("job held", job=job.id, kind=job.kind, case=job.case_id, reason=str(reason))
        return "held"

    async def _fail(self, job: Job, exc: Exception) -> str:
        try:
            state = await self.queue.fail(job, exc)
        except Exception:
            log.exception("recording a job failure failed; its lease will expire and it will run again", job=job.id)
            return "lost"
        if state == "dead":
            log.error("job dead-lettered", job=job.id, kind=job.kind, case=job.case_id, attempt=job.attempts, error=str(exc))
        else:
            log.warning("job failed", job=job.id, kind=job.kind, case=job.case_id, attempt=job.attempts, error=str(exc), now=state)
        return "retry" if state == "pending" else "dead"

    async def _keep_leases(self, jobs: list[Job]) -> None:
        while True:
            await asyncio.sleep(self.queue.lease / 3)
            for job in list(jobs):
                try:
                    if not await self.queue.extend(job):
                        jobs.remove(job)  # finished (a bulk create records jobs one by one) or taken over
                        log.info("lease no longer ours: job finished or taken over", job=job.id)
                except Exception:  # a database hiccup must not end the heartbeat: try again next beat
                    log.warning("extending a lease failed; will retry", job=job.id, exc_info=True)
