"""transition: move the case's ticket (resolve when the source says resolved, reopen on a repeat)."""

from __future__ import annotations

import time
from typing import Any

import structlog

from .context import JobContext
from .payloads import Transition
from .queue import Job
from .tickets import save_ticket

log = structlog.get_logger("alertbridge.jobs")


async def run(ctx: JobContext, job: Job, payload: Transition) -> None:
    """Transition the ticket, remembering the status the hub set so its webhook echo is not echoed back."""
    case, key = await ctx.ticketed_case(job, payload.sink)
    # Record what we are about to set before setting it: the webhook may arrive before our commit.
    async with ctx.store.tx() as conn:
        await save_ticket(conn, case["id"], payload.sink, hub_status=payload.to)
    await ctx.sink(case, payload.sink).transition(key, payload.to, payload.resolution)
    values: dict[str, Any] = {}
    if payload.close:
        values = dict(state="closed", closed_at=time.time(), resolution=payload.resolution)
    await ctx.finish(job, **values)
    log.info("ticket transitioned", case=case["id"], ticket=key, to=payload.to, resolution=payload.resolution,
             closed=payload.close)
