"""sync_members: bring a ticket in line with its case's hosts (pipeline/members.py).

A comment names the hosts fixed, added and re-opened since the ticket last heard,
the host-list field is rewritten, and once no host is open the ticket moves
through the route's done transition. A closed ticket hears nothing of fixes.

A route's further sink that follows `members` (config_sinks.py) gets the same on its
own ticket, in its lane, against what that ticket was last shown (kept in the case's
notice `members:<sink>`): its comment, its own host field, its done transition and
reopen. The case's state is the first sink's sync's to change.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from sqlalchemy import update

from ..connectors.writeback_roles import ChangeIds
from ..pipeline import changes, members
from ..store import notices
from ..store.tables import cases
from .context import JobContext
from .payloads import SyncMembers
from .queue import Job
from .tickets import save_ticket

log = structlog.get_logger("alertbridge.jobs")


async def run(ctx: JobContext, job: Job, payload: SyncMembers) -> None:
    """Comment on the hosts that changed, rewrite the host list, and move the ticket to done once none is open."""
    if payload.sink is not None:
        await _sync_further(ctx, job, payload, payload.sink)
        return
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


async def _move(ctx: JobContext, case: dict[str, Any], key: str, to: str, resolution: str | None, further: str | None = None) -> None:
    """Move the ticket (a further sink's, or the case's own), recording the write first and then its change id, so its
    echo is known as the hub's (by Jira's changelog id, ServiceNow's sys_mod_count, XSOAR's version)."""
    sink = ctx.sink(case, further)
    async with ctx.store.tx() as conn:  # before the call: the webhook may arrive before our commit
        await save_ticket(conn, case["id"], further, hub_status=to)
        row = await conn.run_sync(changes.record_write, case["id"], sink.name, key, "status", to, time.time())
    await sink.transition(key, to, resolution)
    if isinstance(sink, ChangeIds):
        change_id, status = await sink.last_change(key)
        async with ctx.store.tx() as conn:
            await conn.run_sync(lambda c: changes.settle_write(c, row, change_id=change_id, value=status))


async def _finish(ctx: JobContext, job: Job, hosts: members.HostView, case_values: dict[str, Any]) -> None:
    async with ctx.store.tx() as conn:
        await members.mark_reported(conn, job.case_id, hosts)
        if case_values:
            await conn.execute(update(cases).where(cases.c.id == job.case_id).values(**case_values))
        await ctx.queue.complete(job, conn)


async def _sync_further(ctx: JobContext, job: Job, payload: SyncMembers, further: str) -> None:
    """Bring a further sink's ticket in line with the case's hosts, against what that ticket was last shown."""
    case, key = await ctx.ticketed_case(job, further)
    sink, target = ctx.sink(case, further), f"members:{further}"
    async with ctx.store.read() as conn:
        shown = (await notices.read(conn, case["id"], target)).state
        hosts = await members.view(conn, case["id"], dict(shown.get("shown") or {}))
    done = bool(shown.get("done"))
    # The first sink's sync may have closed the case already (lanes run independently): this ticket still gets that close.
    by_sync = bool(payload.done) and case["resolution"] == payload.resolution
    if case["state"] == "closed" and not by_sync and (not (hosts.added or hosts.reopened) or (case["resolution"] or "") in payload.wont_fix):
        changed = False  # a case closed otherwise hears nothing of fixes; a won't-fix one is not reopened
    else:
        changed = hosts.changed
        if done and hosts.open:  # our own done transition crossed a host re-opening
            await _move(ctx, case, key, payload.reopen, None, further)
            done = False
        if changed and payload.comment and not (hosts.first and payload.field):
            await sink.comment(key, members.comment_text(hosts))
        if changed and payload.field:
            await sink.update(key, {payload.field: members.field_text(hosts)})
        if not hosts.open and payload.done and not done:
            await _move(ctx, case, key, payload.done, payload.resolution, further)
            done = True
    now_shown = {**(shown.get("shown") or {}), **hosts.unreported}
    async with ctx.store.tx() as conn:
        await notices.record(conn, case["id"], target, {"shown": now_shown, "done": done})
        await ctx.queue.complete(job, conn)
    log.info("ticket hosts synced", case=case["id"], sink=further, ticket=key, open=len(hosts.open), changed=changed, done=done)
