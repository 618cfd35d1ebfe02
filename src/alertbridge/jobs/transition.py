"""transition: move the case's ticket (resolve when the source says resolved, reopen on a repeat)."""

from __future__ import annotations

import time
from typing import Any

import structlog
from sqlalchemy import update

from ..connectors.writeback_roles import ChangeIds
from ..pipeline import changes
from ..store.tables import cases
from .context import JobContext
from .payloads import Transition
from .queue import Job

log = structlog.get_logger("alertbridge.jobs")


async def run(ctx: JobContext, job: Job, payload: Transition) -> None:
    """Transition the ticket, recording the change (and its id, where the sink tells) so its webhook echo is not carried back."""
    case, key = await ctx.ticketed_case(job)
    sink = ctx.sink(case)
    # Record what we are about to set before setting it: the webhook may arrive before our commit.
    async with ctx.store.tx() as conn:
        await conn.execute(update(cases).where(cases.c.id == case["id"]).values(hub_status=payload.to))
        row = await conn.run_sync(changes.record_write, case["id"], case["sink"], key, "status", payload.to, time.time())
    await sink.transition(key, payload.to, payload.resolution)
    if isinstance(sink, ChangeIds):  # the change's id and the status it led to: `to` may name a transition, not a status
        change_id, status = await sink.last_change(key)
        async with ctx.store.tx() as conn:
            await conn.run_sync(lambda c: changes.settle_write(c, row, change_id=change_id, value=status))
    values: dict[str, Any] = {}
    if payload.close:
        values = dict(state="closed", closed_at=time.time(), resolution=payload.resolution)
    await ctx.finish(job, **values)
    log.info("ticket transitioned", case=case["id"], ticket=key, to=payload.to, resolution=payload.resolution,
             closed=payload.close)
