"""sync_members: bring a ticket in line with its case's hosts (pipeline/members.py).

A comment names the hosts fixed, added and re-opened since the ticket last heard,
the host-list field is rewritten, and once no host is open the ticket moves
through the route's done transition. A closed ticket hears nothing of fixes.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from sqlalchemy import update

from ..pipeline import members
from ..store.tables import cases
from .context import JobContext
from .payloads import SyncMembers
from .queue import Job

log = structlog.get_logger("alertbridge.jobs")


async def run(ctx: JobContext, job: Job, payload: SyncMembers) -> None:
    """Comment on the hosts that changed, rewrite the host list, and move the ticket to done once none is open."""
    case, key = await ctx.ticketed_case(job)
    sink = ctx.sink(case)
    async with ctx.store.read() as conn:
        hosts = await members.view(conn, case["id"])
    values: dict[str, Any] = {}
    if case["state"] == "closed":
        if not (hosts.added or hosts.reopened) or (case["resolution"] or "") in payload.wont_fix:
            await _finish(ctx, job, hosts, values)
            return
        # Our own done transition crossed a host re-opening: reopen, as correlate does for a later alert.
        await _move(ctx, case, key, payload.reopen, None)
        values = dict(state="open", closed_at=None, resolution=None)
    if hosts.changed:
        if payload.comment and not (hosts.first and payload.field):
            await sink.comment(key, members.comment_text(hosts))
        if payload.field:
            await sink.update(key, {payload.field: members.field_text(hosts)})
    if not hosts.open and payload.done:
        await _move(ctx, case, key, payload.done, payload.resolution)
        values = dict(state="closed", closed_at=time.time(), resolution=payload.resolution)
    await _finish(ctx, job, hosts, values)
    log.info("ticket hosts synced", case=case["id"], ticket=key, open=len(hosts.open), fixed=len(hosts.removed),
             added=len(hosts.added) + len(hosts.reopened), state=values.get("state", case["state"]))


async def _move(ctx: JobContext, case: dict[str, Any], key: str, to: str, resolution: str | None) -> None:
    # Record what we are about to set before setting it: the webhook may arrive before our commit.
    async with ctx.store.tx() as conn:
        await conn.execute(update(cases).where(cases.c.id == case["id"]).values(hub_status=to))
    await ctx.sink(case).transition(key, to, resolution)


async def _finish(ctx: JobContext, job: Job, hosts: members.HostView, case_values: dict[str, Any]) -> None:
    async with ctx.store.tx() as conn:
        await members.mark_reported(conn, job.case_id, hosts)
        if case_values:
            await conn.execute(update(cases).where(cases.c.id == job.case_id).values(**case_values))
        await ctx.queue.complete(job, conn)
