"""Correlation: turn a routed alert into a case change and the jobs it causes, in one transaction.

- a key with no case, or whose case closed longer ago than ``reopen_window``
  (and ``after_window: new``), opens a new case and a ``create_ticket`` job
  (the ticket is rendered when that job runs, not here);
- a repeat on a case that has no ticket and no create on its way (the create
  was discarded from the dead-letter list) enqueues a fresh create;
- a key whose case is open counts the repeat and schedules at most one comment
  per ``comment_every`` (or a field update, by ``on_repeat``);
- a key whose case closed within the window reopens it — unless its resolution
  is in ``wont_fix``, where the repeat is recorded on the closed case and nothing
  is sent: the analyst already said this is not worth a ticket;
- an alert the source reports resolved transitions the ticket when the route asks;
- on a route that tracks members (pipeline/members.py) each alert is a member of
  its case instead: the member sync writes the ticket, a fix of something never
  ticketed opens nothing, and a won't-fix case is never reopened.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import Route
from ..jobs.payloads import (
    AttachEvidence, CaseEventJob, CommentRepeats, CreateTicket, Transition, UpdateFields, enqueue_case_event, send_comments_now,
)
from ..jobs.queue import enqueue
from ..jobs.recovery import create_on_its_way
from ..jobs.tickets import enqueue_per_sink
from ..model import Alert, AlertStatus, CaseEventKind, Observables, Severity
from ..store.tables import alerts, cases
from . import members
from .route import Routed, draft_ticket


def key_hash(route: str, key: str) -> str:
    """Hash a case key so that long keys index well."""
    return hashlib.sha256(f"{route}\x00{key}".encode()).hexdigest()


def decide(case: Mapping[str, Any] | None, alert: Alert, route: Route, now: float) -> str:
    """Say what an alert does to the latest case of its key (pure; `plan` uses it too).

    opened, repeat, reopened, suppressed (recorded on the closed case, nothing sent), or ignored (a tracked route's
    fix of something never ticketed: no case at all).
    """
    if case is not None and case["state"] == "closed":
        in_window = now - (case["closed_at"] or 0) <= route.reopen_window
        if alert.status == AlertStatus.resolved:
            return "suppressed"  # the source confirms what the case already says: nothing to reopen
        if (case["resolution"] or "") in route.wont_fix and (in_window or route.members is not None):
            return "suppressed"
        if in_window or route.after_window == "reopen":
            return "reopened"
    elif case is not None:
        return "repeat"
    return "ignored" if route.members is not None and alert.status == AlertStatus.resolved else "opened"


async def correlate(conn: AsyncConnection, routed: Routed, inbox_id: int, now: float) -> tuple[int | None, str]:
    """Attach the alert to its case (opening or reopening one as needed); return (case id, what happened)."""
    alert, route = routed.alert, routed.route
    tracked = route.members is not None
    digest = key_hash(route.name, routed.key)
    case = (
        await conn.execute(
            select(cases).where(cases.c.route == route.name, cases.c.key_hash == digest).order_by(cases.c.id.desc()).limit(1)
        )
    ).mappings().first()

    outcome = decide(case, alert, route, now)
    if outcome == "ignored":
        return None, "suppressed"  # a fix of something never ticketed
    if outcome == "opened":
        case_id = await _open_case(conn, routed, digest, now, inbox_id)
    else:
        case_id = case["id"]
        await _record_repeat(conn, routed, dict(case), outcome, now)

    await conn.execute(
        insert(alerts).values(
            case_id=case_id, inbox_id=inbox_id, alert_id=alert.id, source=alert.source.name, severity=alert.severity.value,
            title=alert.title, received_at=now, data=alert.model_dump(mode="json", exclude={"raw"}),
        )
    )
    if tracked:
        await members.record(conn, case_id, route, alert, outcome != "suppressed", now)
    elif alert.status == AlertStatus.resolved and route.resolve_transition and outcome != "suppressed":
        await send_comments_now(conn, case_id)  # a throttled repeat comment would hold the resolve back (per-case order)
        transition = Transition(to=route.resolve_transition, resolution=route.resolve_resolution, close=True)
        await enqueue_per_sink(conn, route, lambda _: transition, case_id=case_id)
        if route.tells:
            severity = max(Severity(case["severity"]) if case else alert.severity, alert.severity, key=lambda s: s.rank)
            await enqueue_case_event(conn, CaseEventJob(event=CaseEventKind.resolved, severity=severity, at=now, alert_id=alert.id), case_id=case_id)
    return case_id, outcome


async def _open_case(conn: AsyncConnection, routed: Routed, digest: str, now: float, inbox_id: int) -> int:
    alert, route = routed.alert, routed.route
    result = await conn.execute(
        insert(cases).values(
            route=route.name, key=routed.key, key_hash=digest, state="open", title=alert.title[:1000],
            severity=alert.severity.value, source=alert.source.name, alert_count=1, first_seen=now, last_seen=now,
            sink=route.sink, observables=alert.observables.model_dump(),
        ).returning(cases.c.id)
    )
    case_id = result.scalar_one()
    await enqueue_per_sink(conn, route, lambda _: CreateTicket(), case_id=case_id)  # one ticket per sink of the route
    if alert.evidence:  # the files stay in the inbox row; the job reads them from there again
        await enqueue(conn, AttachEvidence(inbox_id=inbox_id, alert_id=alert.id), case_id=case_id)
    if route.tells:
        await enqueue_case_event(conn, CaseEventJob(event=CaseEventKind.opened, severity=alert.severity, at=now, alert_id=alert.id), case_id=case_id)
    return case_id


async def _record_repeat(conn: AsyncConnection, routed: Routed, case: dict[str, Any], outcome: str, now: float) -> None:
    alert, route = routed.alert, routed.route
    observables = Observables(**case["observables"]).merge(alert.observables)
    severity = max(Severity(case["severity"]), alert.severity, key=lambda s: s.rank)
    values: dict[str, Any] = dict(
        alert_count=cases.c.alert_count + 1, last_seen=now, severity=severity.value,
        observables=observables.model_dump(), repeats_since_comment=cases.c.repeats_since_comment + 1,
    )
    if case["ticket_key"] is None and not await create_on_its_way(conn, case["id"]):
        await enqueue(conn, CreateTicket(), case_id=case["id"])  # its create was discarded: this alert gets it one
    if outcome == "reopened":
        values |= dict(state="open", closed_at=None, resolution=None)
        await enqueue_per_sink(conn, route, lambda _: Transition(to=route.reopen_transition), case_id=case["id"])
        if route.tells:
            await enqueue_case_event(conn, CaseEventJob(event=CaseEventKind.reopened, severity=severity, at=now, alert_id=alert.id), case_id=case["id"])
    elif outcome == "repeat" and route.tells and severity.rank > Severity(case["severity"]).rank:
        raised = CaseEventJob(event=CaseEventKind.severity_raised, severity=severity, at=now, alert_id=alert.id,
                              previous_severity=Severity(case["severity"]))
        await enqueue_case_event(conn, raised, case_id=case["id"])
    on_repeat = route.on_repeat if route.members is None else "ignore"  # the member sync tells the ticket what changed
    if outcome in ("repeat", "reopened") and on_repeat == "comment":
        values["last_comment_at"] = await _schedule_comment(conn, case, route, now)
    elif outcome == "repeat" and on_repeat == "update":
        context = {"id": case["id"], "key": routed.key, "alert_count": case["alert_count"] + 1}
        await enqueue_per_sink(conn, route, lambda view: UpdateFields(fields=draft_ticket(view, alert, context).fields)
                               if view.fields else None, case_id=case["id"])
    await conn.execute(update(cases).where(cases.c.id == case["id"]).values(**values))


async def _schedule_comment(conn: AsyncConnection, case: dict[str, Any], route: Route, now: float) -> float:
    """Schedule one comment summarising repeats on each of the route's tickets, at most one per `comment_every`; return its time."""
    every = route.comment_every
    last = case["last_comment_at"]
    if last is not None and last > now:
        return last  # a comment is already scheduled; it will count this repeat too
    at = now if last is None or now - last >= every else last + every
    await enqueue_per_sink(conn, route, lambda _: CommentRepeats(), case_id=case["id"], delay=at - now)
    return at

