"""Sync both ways: a ticket change becomes a case change and write-backs; a source's change moves the ticket.

Ticket → hub: the ticket system's webhook (or reconcile poll) reports a change.
If the hub made it (``sync_changes`` holds the write, matched by Jira's
changelog id, else by the status on a write whose echo is still due) it updates
the case quietly and tells only the SIEM. An analyst's change closes, reopens
or acknowledges the case, tells the route's notifiers, and is written back to
every alert of the case whose source the route's `writeback` list covers — by
the route's lifecycle (lifecycle.py) and only for fields whose direction carries
towards the source.

Source → hub: an alert of an existing case in a new state (its disposition,
read by the source's parser) moves the ticket by the lifecycle's
`source_states` — unless it is the echo of the hub's own write-back (matched by
the vendor's revision stamp, else by the state), or the ticket owns the field
and a write-back of the analyst's verdict is still on its way (the ticket wins;
the write-back goes out and overwrites it). Nothing is recognised by comment text.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import Config, Route
from ..jobs.payloads import CaseEventJob, MirrorComment, Transition, Writeback, enqueue_case_event
from ..jobs.tickets import case_of_ticket, save_ticket_change
from ..jobs.writeback import enqueue_writebacks
from ..lifecycle import lifecycle_of
from ..model import Alert, CaseEventKind, Severity, TicketEvent
from ..store.tables import cases, jobs, ticket_transitions
from . import changes
from .batch import Batch, Case

log = structlog.get_logger("alertbridge.pipeline")


async def apply_ticket_event(conn: AsyncConnection, event: TicketEvent, now: float, config: Config | None = None) -> str:
    """Update the case behind the ticket and enqueue its write-backs; return what happened (for the log and tests)."""
    case, further = await case_of_ticket(conn, event.sink, event.ticket_key)  # further: a ticket in a route's further sink
    if case is None:
        return "not ours"
    if event.kind == "deleted":
        await save_ticket_change(conn, case["id"], further, dict(
            state="closed", closed_at=now, resolution="Deleted", ticket_status="deleted"))
        return "deleted"
    if event.kind == "commented":
        return await _ticket_comment(conn, case, event, now, config)
    if event.status is None or event.status == case["ticket_status"]:
        return "unchanged"
    if further is None and await _overtaken(conn, case["id"], event):
        return "stale"
    echo = await conn.run_sync(changes.take_echo, event.sink, event.ticket_key, "status", event.status, event.change_id)
    # The member sync (and writes from before 0007) leave only the status they set on the case.
    echo = echo or (case["hub_status"] is not None and event.status.lower() == case["hub_status"].lower())
    if not echo:
        await conn.run_sync(changes.record_seen, case["id"], event.sink, event.ticket_key, "status", event.status, now, event.change_id)
    values: dict = dict(ticket_status=event.status, hub_status=None)
    if event.status_category == "done" and case["state"] == "open":
        values |= dict(state="closed", closed_at=now, resolution=event.resolution)
    elif event.status_category != "done" and case["state"] == "closed":
        values |= dict(state="open", closed_at=None, resolution=None)
    await save_ticket_change(conn, case["id"], further, values)
    await conn.execute(insert(ticket_transitions).values(
        case_id=case["id"], at=event.at.timestamp(), status=event.status, category=event.status_category, by_hub=int(echo)))
    if config is not None:
        await enqueue_writebacks(
            conn, config, case, event="closed" if event.status_category == "done" else "transitioned", at=now, status=event.status,
            category=event.status_category, resolution=event.resolution, actor=event.actor, feedback_only=echo,
        )
    if echo:
        return "echo"
    outcome = "closed" if values.get("state") == "closed" else "reopened" if values.get("state") == "open" else "status"
    kind = {"closed": CaseEventKind.ticket_closed, "reopened": CaseEventKind.reopened}.get(outcome)
    if outcome == "status" and event.status_category == "indeterminate":
        kind = CaseEventKind.acknowledged  # the analyst started work on it
    if kind is not None:
        happened = CaseEventJob(event=kind, severity=Severity(case["severity"]), at=now, ticket_status=event.status)
        await enqueue_case_event(conn, happened, case_id=case["id"])
    return outcome


async def _ticket_comment(conn: AsyncConnection, case: Any, event: TicketEvent, now: float, config: Config | None) -> str:
    """Carry an analyst's comment to the sources that keep comments; the hub's own comments (mirrored from a source) stay."""
    if not event.comment:
        return "unchanged"
    if event.comment_id and await conn.run_sync(changes.known, event.sink, event.ticket_key, "comment", event.comment_id):
        return "unchanged"  # listed again (a ServiceNow work note the next poll or Business Rule call carries too)
    if await conn.run_sync(changes.take_echo, event.sink, event.ticket_key, "comment", event.comment, event.comment_id):
        return "echo"
    await conn.run_sync(changes.record_seen, case["id"], event.sink, event.ticket_key, "comment", event.comment, now, event.comment_id)
    if config is None:
        return "commented"
    added = await enqueue_writebacks(conn, config, case, event="commented", at=now, comment=event.comment, actor=event.actor)
    return "commented" if added else "comment kept"


def apply_source_alert(batch: Batch, case: Case, alert: Alert, route: Route, outcome: str) -> str:
    """Plan the ticket's move when an alert of an existing case reached a new state at its source; return what happened.

    Runs on the database thread inside correlation's batch (pipeline/batch.py).
    """
    lifecycle = lifecycle_of(route)
    if lifecycle is None:
        return "no sync"
    _mirror_comments(batch, case, alert, lifecycle.field("comments").carries("ticket") and outcome != "opened")
    if case["id"] is None or outcome == "opened":
        return "new case"  # its first state is no change; a case opened by this batch has no id yet
    conn, state, system, record = batch.conn, alert.state, alert.source.name, alert.vendor_id
    if changes.take_echo(conn, system, record, "status", state.value, alert.revision):
        return "echo"
    if changes.last_value(conn, system, record, "status") == state.value:
        return "unchanged"
    changes.record_seen(conn, case["id"], system, record, "status", state.value, batch.now, alert.revision)
    rule = lifecycle.field("status")
    if not rule.carries("ticket"):
        return "recorded"
    if rule.direction == "both" and rule.owner == "ticket" and _write_pending(conn, case["id"], system, record):
        log.info("source change overruled by the ticket", case=case["id"], alert=record, source_state=state.value)
        return "overruled"
    move = lifecycle.source_states.get(state)
    if move is None:
        log.warning("source state not mapped by the route's lifecycle", route=route.name, state=state.value, case=case["id"])
        return "unmapped"
    if move.transition is None or (state.done and case["state"] == "closed") or (not state.done and outcome == "reopened"):
        return "kept"
    batch.comments_now(case)  # a throttled repeat comment would hold the transition back (per-case order)
    batch.enqueue(case, Transition(to=move.transition, resolution=move.resolution, close=state.done))
    if state.done and route.tells:
        batch.enqueue(case, CaseEventJob(event=CaseEventKind.resolved, severity=alert.severity, at=batch.now, alert_id=alert.id))
    return "moved"


def _mirror_comments(batch: Batch, case: Case, alert: Alert, carry: bool) -> None:
    """Carry the source's new comments to the ticket; those the hub wrote there (known by their id) and those seen stay."""
    for comment in alert.comments:
        system, record = alert.source.name, alert.vendor_id
        if changes.known(batch.conn, system, record, "comment", comment.id):
            continue
        if changes.take_echo(batch.conn, system, record, "comment", comment.text, comment.id):
            continue  # the hub's own write-back, listed before its id was recorded
        changes.record_seen(batch.conn, case["id"] or 0, system, record, "comment", comment.text, batch.now, comment.id)
        if carry:  # the comments a new case's record already has are in its description
            text = f"[{alert.source.product}{' ' + comment.author if comment.author else ''}] {comment.text}"
            batch.enqueue(case, MirrorComment(source=system, vendor_id=record, comment_id=comment.id, text=text))


def _write_pending(conn: Connection, case_id: int, source: str, vendor_id: str) -> bool:
    """Tell whether a write-back of the ticket's state to this alert is still on its way."""
    query = select(jobs.c.payload).where(jobs.c.case_id == case_id, jobs.c.kind == Writeback.kind, jobs.c.state.in_(("pending", "running")))
    return any(p.get("source") == source and p.get("vendor_id") == vendor_id and p.get("event") != "commented"
               for p in conn.execute(query).scalars())


async def _overtaken(conn: AsyncConnection, case_id: int, event: TicketEvent) -> bool:
    """Tell whether a later status change of the case's ticket was applied already (a delivery that arrived late)."""
    # ServiceNow's outbound calls and Jira's webhooks are not delivered in order: applying an older change after a
    # newer one would reopen a case the analyst closed. Ties are applied (sys_updated_on has one-second steps).
    latest = select(func.max(ticket_transitions.c.at)).where(ticket_transitions.c.case_id == case_id)
    newest = (await conn.execute(latest)).scalar()
    return newest is not None and event.at.timestamp() < newest
