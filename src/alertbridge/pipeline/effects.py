"""Job handlers: the side effects, each run by a worker that holds the job's lease.

Exactly one ticket per case: ``create_claimed_at`` is committed *before* the
create request leaves. A later attempt that finds a claim without a ticket key
cannot know whether the create happened (the process may have died after Jira
answered), so it searches the sink for the case's unique label first, and trusts
an empty answer only once ``search_lag`` has passed since the claim — Jira's
search index trails its writes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select, update

from .. import failpoints
from ..connectors.roles import BulkCreate, Notifier, TicketDraft, TicketSink
from ..errors import ConnectorError, PayloadError, Permanent, Retryable
from ..model import CaseEvent, Severity, case_reference
from ..queue import Job, JobQueue
from ..store import Store
from ..store.tables import alerts, cases

log = structlog.get_logger("alertbridge.jobs")


class Effects:
    """Run jobs against the sinks and notifiers."""

    def __init__(self, store: Store, queue: JobQueue, sinks: dict[str, TicketSink], notifiers: dict[str, Notifier],
                 search_lag: float, reprocess=None):
        self.store = store
        self.queue = queue
        self.sinks = sinks
        self.notifiers = notifiers
        self.search_lag = search_lag
        self.reprocess = reprocess  # Pipeline.reprocess, for replayed ingest jobs

    async def run(self, job: Job) -> None:
        """Perform one job and mark it done; raise a typed error when it failed."""
        handler = getattr(self, f"_{job.kind}", None)
        if handler is None:
            raise Permanent(f"unknown job kind {job.kind!r}")
        await handler(job)

    async def _case(self, job: Job) -> dict[str, Any]:
        async with self.store.read() as conn:
            row = (await conn.execute(select(cases).where(cases.c.id == job.case_id))).mappings().first()
        if row is None:
            raise Permanent(f"case {job.case_id} does not exist")
        return dict(row)

    def _sink(self, case: dict[str, Any]) -> TicketSink:
        if case["sink"] not in self.sinks:
            raise Permanent(f"sink {case['sink']!r} is not configured")
        return self.sinks[case["sink"]]

    async def _finish(self, job: Job, **case_values: Any) -> None:
        async with self.store.tx() as conn:
            if case_values:
                await conn.execute(update(cases).where(cases.c.id == job.case_id).values(**case_values))
            await self.queue.complete(job, conn)

    async def _ticket_key(self, job: Job) -> tuple[dict[str, Any], str]:
        case = await self._case(job)
        if not case["ticket_key"]:
            # The create job runs first (per-case order); no key means it was discarded from the dead-letter list.
            raise Permanent(f"case {case['id']} has no ticket (its create job failed or was discarded)")
        return case, case["ticket_key"]

    async def _create_ticket(self, job: Job) -> None:
        case = await self._case(job)
        if case["ticket_key"]:
            await self._finish(job)
            return
        sink = self._sink(case)
        if case["create_claimed_at"] is not None:
            found = await sink.find_by_reference(case_reference(case["id"]))
            failpoints.hit("create.during_search")
            if found:
                if len(found) > 1:
                    log.error("duplicate tickets for one case", case=case["id"], tickets=[t.key for t in found])
                await self._finish(job, ticket_key=found[0].key, ticket_url=found[0].url, ticket_status="created")
                return
            wait = case["create_claimed_at"] + self.search_lag - time.time()
            if wait > 0:
                raise Retryable(f"a create may have happened; waiting {wait:.1f}s for the search index", retry_after=wait)
        async with self.store.tx() as conn:
            await conn.execute(update(cases).where(cases.c.id == case["id"]).values(create_claimed_at=time.time()))
        failpoints.hit("create.before_call")
        try:
            ref = await sink.create(self._draft(job))
        except ConnectorError as exc:
            await self._after_failed_create([case["id"]], exc)
            raise
        failpoints.hit("create.after_remote")
        await self._finish(job, ticket_key=ref.key, ticket_url=ref.url, ticket_status="created")
        failpoints.hit("create.after_commit")

    async def create_many(self, jobs: list[Job], sink: BulkCreate) -> dict[int, Exception | None]:
        """Create the tickets of several fresh cases in bulk calls; return each job's error or None."""
        async with self.store.read() as conn:
            rows = (await conn.execute(select(cases).where(cases.c.id.in_([j.case_id for j in jobs])))).mappings().all()
        by_id = {row["id"]: dict(row) for row in rows}
        outcomes: dict[int, Exception | None] = {}
        fresh: list[Job] = []
        for job in jobs:
            case = by_id.get(job.case_id)
            if case is None or case["ticket_key"] or case["create_claimed_at"] is not None:
                outcomes[job.id] = await self._run_alone(job)  # done already, or needs the label search first
            else:
                fresh.append(job)
        if not fresh:
            return outcomes
        async with self.store.tx() as conn:
            await conn.execute(update(cases).where(cases.c.id.in_([j.case_id for j in fresh])).values(create_claimed_at=time.time()))
        failpoints.hit("create.before_call")
        try:
            results = await sink.create_many([self._draft(job) for job in fresh])
        except ConnectorError as exc:
            await self._after_failed_create([job.case_id for job in fresh], exc)
            raise
        failpoints.hit("create.after_remote")
        for job, result in zip(fresh, results, strict=True):
            if isinstance(result, ConnectorError):
                await self._after_failed_create([job.case_id], result)
                outcomes[job.id] = result
            else:
                await self._finish(job, ticket_key=result.key, ticket_url=result.url, ticket_status="created")
                failpoints.hit("create.after_commit")
                outcomes[job.id] = None
        return outcomes

    async def _after_failed_create(self, case_ids: list[int], error: ConnectorError) -> None:
        """Adjust the claims after a create failed, so the next attempt searches exactly when it must."""
        if isinstance(error, Permanent) and error.status is not None and error.status < 500:
            claim = None  # the sink refused the request outright: nothing was created, no search needed
        elif isinstance(error, Retryable):
            # The request may have left only now (after the client's rate-limit pacing): the search lag counts from here.
            claim = time.time()
        else:
            return
        async with self.store.tx() as conn:
            await conn.execute(update(cases).where(cases.c.id.in_(case_ids)).values(create_claimed_at=claim))

    async def _run_alone(self, job: Job) -> Exception | None:
        try:
            await self.run(job)
        except ConnectorError as exc:
            return exc
        return None

    @staticmethod
    def _draft(job: Job) -> TicketDraft:
        data = dict(job.payload["draft"])
        data.setdefault("reference", case_reference(job.case_id))  # drafts queued before references existed
        return TicketDraft(**{**data, "severity": Severity(data["severity"])})

    async def _comment_repeats(self, job: Job) -> None:
        case, key = await self._ticket_key(job)
        if case["repeats_since_comment"] == 0:
            await self._finish(job)
            return
        async with self.store.read() as conn:
            latest = (await conn.execute(
                select(alerts.c.title, alerts.c.data).where(alerts.c.case_id == case["id"]).order_by(alerts.c.id.desc()).limit(1)
            )).first()
        text = self._repeat_text(case, latest)
        if text != case["last_comment_text"]:
            await self._sink(case).comment(key, text)
        await self._finish(job, repeats_since_comment=cases.c.repeats_since_comment - case["repeats_since_comment"],
                           last_comment_text=text)

    @staticmethod
    def _repeat_text(case: dict[str, Any], latest) -> str:
        last_seen = datetime.fromtimestamp(case["last_seen"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines = [f"{case['repeats_since_comment']} more alert(s) for this case; {case['alert_count']} in all, the last at {last_seen}."]
        if latest is not None:
            hosts = latest.data.get("observables", {}).get("hosts") or []
            lines.append(f"Latest: {latest.title}" + (f" on {', '.join(hosts[:10])}" if hosts else ""))
        return "\n".join(lines)

    async def _update_fields(self, job: Job) -> None:
        case, key = await self._ticket_key(job)
        await self._sink(case).update(key, job.payload["fields"])
        await self._finish(job)

    async def _transition(self, job: Job) -> None:
        case, key = await self._ticket_key(job)
        to, resolution = job.payload["to"], job.payload.get("resolution")
        # Record what we are about to set before setting it: the webhook may arrive before our commit.
        async with self.store.tx() as conn:
            await conn.execute(update(cases).where(cases.c.id == case["id"]).values(hub_status=to))
        await self._sink(case).transition(key, to, resolution)
        values: dict[str, Any] = {}
        if job.payload.get("close"):
            values = dict(state="closed", closed_at=time.time(), resolution=resolution)
        await self._finish(job, **values)

    async def _notify(self, job: Job) -> None:
        name = job.payload["notifier"]
        if name not in self.notifiers:
            raise Permanent(f"notifier {name!r} is not configured")
        case = await self._case(job)
        event = CaseEvent(
            case_id=case["id"], reference=case_reference(case["id"]), case_key=case["key"], route=case["route"],
            kind=job.payload.get("kind", "opened"), title=job.payload["title"], severity=Severity(job.payload["severity"]),
            alert_count=case["alert_count"], ticket_key=case["ticket_key"], ticket_url=case["ticket_url"],
        )  # fmt: skip
        await self.notifiers[name].notify(event)
        await self._finish(job)

    async def _ingest(self, job: Job) -> None:
        try:
            async with self.store.tx() as conn:
                await self.reprocess(conn, job.payload["inbox_id"])
                await self.queue.complete(job, conn)
        except PayloadError as exc:
            raise Permanent(f"payload still fails to parse: {exc}") from None

