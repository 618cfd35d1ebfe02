"""Sync back: a change to a ticket becomes a change to its case.

A ticket the hub itself transitioned reports that change through the webhook
too; ``cases.hub_status`` remembers what the hub set, so that echo updates the
case quietly and causes no further job (no echo loop). An analyst's change
(closed, reopened, started) is a case event for the route's notifiers.
"""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ..jobs.payloads import CaseEventJob, enqueue_case_event
from ..jobs.tickets import case_of_ticket, save_ticket_change
from ..model import CaseEventKind, Severity, TicketEvent
from ..store.tables import ticket_transitions


async def apply_ticket_event(conn: AsyncConnection, event: TicketEvent, now: float) -> str:
    """Update the case behind the ticket; return what happened (for the log and tests)."""
    case, further = await case_of_ticket(conn, event.sink, event.ticket_key)  # further: a ticket in a route's further sink
    if case is None:
        return "not ours"
    if event.kind == "deleted":
        await save_ticket_change(conn, case["id"], further, dict(
            state="closed", closed_at=now, resolution="Deleted", ticket_status="deleted"))
        return "deleted"
    if event.status is None or event.status == case["ticket_status"]:
        return "unchanged"
    echo = case["hub_status"] is not None and event.status.lower() == case["hub_status"].lower()
    values: dict = dict(ticket_status=event.status, hub_status=None)
    if event.status_category == "done" and case["state"] == "open":
        values |= dict(state="closed", closed_at=now, resolution=event.resolution)
    elif event.status_category != "done" and case["state"] == "closed":
        values |= dict(state="open", closed_at=None, resolution=None)
    await save_ticket_change(conn, case["id"], further, values)
    await conn.execute(insert(ticket_transitions).values(
        case_id=case["id"], at=event.at.timestamp(), status=event.status, category=event.status_category, by_hub=int(echo)))
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
