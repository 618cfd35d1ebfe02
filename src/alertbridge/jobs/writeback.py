"""writeback: carry one ticket change to a source's alert (its state or a comment) or to the SIEM (docs/writeback.md).

Producers (pipeline/sync.py on a ticket change, create_ticket on a new ticket)
call ``enqueue_writebacks``: one job per write-back target and alert, in the
case's order. The handler writes and records the write in ``sync_changes``
before the call, so the source's next poll showing that change is recognised
as the hub's own (by the revision stamp the vendor returns, else by value) and
does not move the ticket again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy import Connection, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import connectors
from ..config import Config
from ..connectors.writeback_roles import (
    CommentIds, CommentsBack, SiemFeedback, SourceUpdater, SourceWrite, SteppedWrites, TicketFeedback, WriteStep,
)
from ..errors import Permanent
from ..lifecycle import lifecycle_of
from ..model import SourceState
from ..pipeline import changes
from ..store.tables import alerts
from .context import JobContext
from .payloads import MirrorComment, Writeback
from .queue import Job, enqueue_many, job_values

log = structlog.get_logger("alertbridge.jobs")
DONE_VALUES = {state.value for state in SourceState if state.done}


async def enqueue_writebacks(conn: AsyncConnection, config: Config, case: Mapping[str, Any], *, event: str, at: float,
                             status: str | None = None, category: str | None = None, resolution: str | None = None,
                             comment: str | None = None, actor: str | None = None, feedback_only: bool = False) -> int:
    """Add the write-back jobs one ticket change causes on the case's route; return how many (a change the hub made tells SIEMs only)."""
    return await conn.run_sync(writeback_jobs, config, case, event=event, at=at, status=status, category=category,
                               resolution=resolution, comment=comment, actor=actor, feedback_only=feedback_only)


def writeback_jobs(conn: Connection, config: Config, case: Mapping[str, Any], *, event: str, at: float, status: str | None = None,
                   category: str | None = None, resolution: str | None = None, comment: str | None = None,
                   actor: str | None = None, feedback_only: bool = False) -> int:
    """Add the write-back jobs as `enqueue_writebacks` does, inside a unit of work; return how many."""
    route = _route(config, case["route"])
    lifecycle = lifecycle_of(route) if route is not None else None
    if route is None or lifecycle is None or not route.writeback:
        return 0
    state = lifecycle.ticket_state(category, status, resolution) if event != "commented" else None
    common = dict(event=event, state=state, ticket_status=status, status_category=category, resolution=resolution, comment=comment,
                  actor=actor, at=at)
    records = _records(conn, case["id"])
    rows: list[dict[str, Any]] = []
    for name in route.writeback:
        settings = config.writebacks.get(name)
        kind = connectors.load(connectors.WRITEBACKS, settings.type) if settings is not None else None
        if kind is None or (issubclass(kind, SiemFeedback) and event == "commented"):
            continue
        if issubclass(kind, SiemFeedback):
            if not settings.sources or any(source in settings.sources for source, _ in records):  # its `sources`: which cases it hears of
                rows.append(_job(Writeback(target=name, **common), case["id"]))
            continue
        field = "comments" if event == "commented" else "status"
        if feedback_only or event == "created" or not lifecycle.field(field).carries("source"):
            continue
        if event == "commented" and not issubclass(kind, CommentsBack):
            continue
        for source, vendor_id in records:
            if source in settings.sources:
                rows.append(_job(Writeback(target=name, source=source, vendor_id=vendor_id, **common), case["id"]))
    enqueue_many(conn, rows)
    return len(rows)


def _job(payload: Writeback, case_id: int) -> dict[str, Any]:
    return job_values(payload, now=time.time()) | {"case_id": case_id}


def _route(config: Config, name: str) -> Any:
    # Not create_ticket.route_named: that module imports the pipeline, which imports this one.
    return next((route for route in config.settings.routes if route.name == name), None)


def _records(conn: Connection, case_id: int) -> list[tuple[str, str]]:
    """Return each (source, vendor id) of the case's alerts once, the first alert first."""
    rows = (conn.execute(select(alerts.c.source, alerts.c.data).where(alerts.c.case_id == case_id).order_by(alerts.c.id))).all()
    return list(dict.fromkeys((source, str(data.get("vendor_id"))) for source, data in rows if data.get("vendor_id")))


async def run(ctx: JobContext, job: Job, payload: Writeback) -> None:
    """Write the change to its target, unless the field's owner overruled it meanwhile."""
    case, key = await ctx.ticketed_case(job)
    target = ctx.writebacks.get(payload.target)
    if target is None:
        raise Permanent(f"write-back {payload.target!r} is not configured")
    route = _route(ctx.config, case["route"])
    if route is None:
        raise Permanent(f"route {case['route']!r} of case {case['id']} is no longer in the config")
    if isinstance(target, SiemFeedback):
        async with ctx.store.read() as conn:
            records = await conn.run_sync(_records, case["id"])
        await target.send(TicketFeedback(
            event=payload.event, ticket_key=key, ticket_url=case["ticket_url"], status=payload.ticket_status,  # type: ignore[arg-type]
            status_category=payload.status_category, resolution=payload.resolution, state=payload.state,
            case_reference=case["reference"], route=route.name, at=payload.at,
            alert_ids=[{"source": source, "vendor_id": vendor_id} for source, vendor_id in records],
        ))
        await ctx.finish(job)
        log.info("feedback sent", case=case["id"], ticket=key, target=payload.target, feedback=payload.event)
        return
    if not isinstance(target, SourceUpdater) or payload.source is None or payload.vendor_id is None:
        raise Permanent(f"write-back {payload.target!r} job names no alert to update")
    if payload.event == "commented":
        await _comment(ctx, job, payload, target, key)
        return
    await _write_state(ctx, job, payload, target, route, key)


async def _write_state(ctx: JobContext, job: Job, payload: Writeback, target: SourceUpdater, route: Any, key: str) -> None:
    assert payload.source is not None and payload.vendor_id is not None
    lifecycle = lifecycle_of(route)
    if payload.state is None:
        raise Permanent(f"ticket {key} is at status {payload.ticket_status!r} with resolution {payload.resolution!r}, which routes"
                        f"[{route.name}].sync.ticket_states maps to no source state: map it, then replay this job")
    if payload.state not in target.states():
        raise Permanent(f"write-back {payload.target!r} has no {target.type} value for state {payload.state.value!r}: add it to its `states`")
    rule = lifecycle.field("status") if lifecycle is not None else None
    async with ctx.store.read() as conn:
        overruled = await conn.run_sync(changes.seen_since, payload.source, payload.vendor_id, "status", payload.at)
        last = await conn.run_sync(changes.last_value, payload.source, payload.vendor_id, "status")
    if overruled is not None and rule is not None and rule.direction == "both" and rule.owner == "source":
        log.info("write-back overruled by the source", case=job.case_id, alert=payload.vendor_id, source_state=overruled)
        await ctx.finish(job)
        return
    passes = target.passes(payload.state) if isinstance(target, SteppedWrites) else ()
    async with ctx.store.tx() as conn:
        # The states a stepped write may show on its way are the hub's too, recorded before the call (a poll may land between
        # the steps) and in the order they are written: the last write's row stays the latest.
        step_rows = [(state, await conn.run_sync(changes.record_write, job.case_id or 0, payload.source, payload.vendor_id, "status",
                                                 state.value, payload.at)) for state in passes]
        row = await conn.run_sync(changes.record_write, job.case_id or 0, payload.source, payload.vendor_id, "status", payload.state.value,
                                  payload.at)
    note = f"{key} {payload.event} as {payload.resolution or payload.ticket_status}" + (f" by {payload.actor}" if payload.actor else "")
    receipt = await target.write(payload.vendor_id, SourceWrite(
        state=payload.state, ticket_key=key, ticket_status=payload.ticket_status, resolution=payload.resolution, actor=payload.actor, note=note,
        token=f"alertbridge-job-{job.id}", reopened=not payload.state.done and last in DONE_VALUES,
    ))
    async with ctx.store.tx() as conn:
        kept = receipt.kept.value if receipt.kept is not None else None
        await conn.run_sync(lambda c: changes.settle_write(c, row, change_id=receipt.revision, value=kept))
        await conn.run_sync(lambda c: _settle_steps(c, job.case_id or 0, payload, step_rows, receipt.steps))
        for comment_id in receipt.comments:
            await conn.run_sync(changes.record_write, job.case_id or 0, payload.source, payload.vendor_id, "comment", note, payload.at,
                                comment_id)
        await ctx.queue.complete(job, conn)
    log.info("alert written back", case=job.case_id, target=payload.target, alert=payload.vendor_id, state=payload.state.value,
             kept=kept)


def _settle_steps(conn: Any, case_id: int, payload: Writeback, rows: list[tuple[SourceState, int]], steps: tuple[WriteStep, ...]) -> None:
    """Give each step the updater made its revision, on the row recorded for it; drop the rows of steps it did not need."""
    assert payload.source is not None and payload.vendor_id is not None
    unused = list(rows)
    for step in steps:
        found = next((entry for entry in unused if entry[0] == step.state), None)
        if found is None:  # a step `passes` did not foresee: recorded now, known by its revision
            changes.record_write(conn, case_id, payload.source, payload.vendor_id, "status", step.state.value, payload.at, step.revision)
            continue
        unused.remove(found)
        changes.settle_write(conn, found[1], change_id=step.revision)
    for _, row_id in unused:
        changes.drop_write(conn, row_id)


async def _comment(ctx: JobContext, job: Job, payload: Writeback, target: SourceUpdater, key: str) -> None:
    assert payload.vendor_id is not None and payload.source is not None
    if not isinstance(target, CommentsBack) or not payload.comment:
        await ctx.finish(job)
        return
    text = f"[{key}{' ' + payload.actor if payload.actor else ''}] {payload.comment}"
    async with ctx.store.tx() as conn:
        row = await conn.run_sync(changes.record_write, job.case_id or 0, payload.source, payload.vendor_id, "comment", text, payload.at)
    comment_id = await target.add_comment(payload.vendor_id, text, token=f"alertbridge-job-{job.id}")
    async with ctx.store.tx() as conn:
        await conn.run_sync(lambda c: changes.settle_write(c, row, change_id=comment_id))
        await ctx.queue.complete(job, conn)


async def mirror(ctx: JobContext, job: Job, payload: MirrorComment) -> None:
    """Comment the source's comment on the ticket, recording it first so its comment webhook is known as the hub's."""
    case, key = await ctx.ticketed_case(job)
    sink = ctx.sink(case)
    async with ctx.store.tx() as conn:
        row = await conn.run_sync(changes.record_write, case["id"], case["sink"], key, "comment", payload.text, time.time())
    if isinstance(sink, CommentIds):
        comment_id: str | None = await sink.add_comment(key, payload.text)
    else:
        await sink.comment(key, payload.text)
        comment_id = None
    async with ctx.store.tx() as conn:
        await conn.run_sync(lambda c: changes.settle_write(c, row, change_id=comment_id))
        await ctx.queue.complete(job, conn)
    log.info("source comment mirrored", case=case["id"], ticket=key, source=payload.source, comment=payload.comment_id)
