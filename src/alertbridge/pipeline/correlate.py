"""Correlation: turn a routed alert into a case change and the jobs it causes, in one transaction.

- a key with no case, or whose case closed longer ago than ``reopen_window``
  (and ``after_window: new``), opens a new case and a ``create_ticket`` job
  (the ticket is rendered when that job runs, not here);
- a repeat on a case that has no ticket and no create on its way (the create
  was discarded from the dead-letter list) enqueues a fresh create, and so for
  each further sink of the route whose create was discarded;
- a key whose case is open counts the repeat and schedules at most one comment
  per ``comment_every`` (or a field update, by ``on_repeat``);
- a key whose case closed within the window reopens it — unless its resolution
  is in ``wont_fix``, where the repeat is recorded on the closed case and nothing
  is sent: the analyst already said this is not worth a ticket;
- an alert the source reports resolved transitions the ticket when the route asks;
- on a route that tracks members (pipeline/members.py) each alert is a member of
  its case instead: the member sync writes the ticket, a fix of something never
  ticketed opens nothing, and a won't-fix case is never reopened.

`prepare` runs in the event loop (routing and rendering are done by then);
`correlate` runs on the database thread, one alert after another against the
batch's cases in memory (pipeline/batch.py), and plans the writes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Route
from ..config_sinks import follows
from ..jobs.payloads import AttachEvidence, CaseEventJob, CommentRepeats, CreateSinkTicket, CreateTicket, Transition, UpdateFields
from ..jobs.tickets import Planned, sink_jobs
from ..model import OBSERVABLE_KINDS, Alert, AlertStatus, CaseEventKind, Observables, Severity
from ..lifecycle import lifecycle_of
from . import members, sync
from .batch import Batch, Case
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


@dataclass
class Prepared:
    """A routed alert with everything that depends on the alert alone worked out before the database is touched."""

    routed: Routed
    digest: str  # key_hash of the route and case key
    record: dict[str, Any]  # the alert's row in `alerts`, but its case, inbox row and time
    member: members.Member | None  # on a route that tracks members


def prepare(routed: Routed) -> Prepared:
    """Hash the case key, serialise the alert and render its member line, off the database thread."""
    alert, route = routed.alert, routed.route
    # JSON text, as the alerts insert stores it (pipeline/statements.py): pydantic writes it in one call.
    record = dict(alert_id=alert.id, source=alert.source.name, severity=alert.severity.value, title=alert.title,
                  data=alert.model_dump_json(exclude={"raw"}))
    member = members.render_member(route, alert) if route.members is not None else None
    return Prepared(routed, key_hash(route.name, routed.key), record, member)


def correlate(batch: Batch, item: Prepared, inbox_id: int) -> str:
    """Attach the alert to its case (opening or reopening one as needed) in the batch; return what happened."""
    alert, route, now = item.routed.alert, item.routed.route, batch.now
    case = batch.latest(route.name, item.digest)
    outcome = decide(case, alert, route, now)
    if outcome == "ignored":
        return "suppressed"  # a fix of something never ticketed
    if case is None or outcome == "opened":
        case = _open_case(batch, item, inbox_id)
    else:
        _record_repeat(batch, item, case, outcome)
    batch.add_alert(case, dict(item.record, inbox_id=inbox_id, received_at=now))
    if route.members is not None:
        assert item.member is not None
        members.record(batch, case, route, item.member, alert.status, outcome != "suppressed")
    elif lifecycle_of(route) is not None:  # the route's lifecycle says what the alert's state does to the ticket
        sync.apply_source_alert(batch, case, alert, route, outcome)
    elif alert.status == AlertStatus.resolved and route.resolve_transition and outcome != "suppressed":
        batch.comments_now(case)  # a throttled repeat comment would hold the resolve back (per-case order)
        resolve = Transition(to=route.resolve_transition, resolution=route.resolve_resolution, close=True)
        _per_sink(batch, case, route, lambda _: resolve)
        if route.tells:
            _case_event(batch, case, CaseEventJob(event=CaseEventKind.resolved, severity=Severity(case["severity"]), at=now,
                                                  alert_id=alert.id))
    return outcome


def _per_sink(batch: Batch, case: Case, route: Route, make: Callable[[Route], Planned | None], delay: float = 0.0) -> None:
    """Plan the job `make` builds for each sink of the route, each further sink's in its own lane (jobs/tickets.py)."""
    for payload, lane in sink_jobs(route, make):
        batch.enqueue(case, payload, delay, lane=lane)


def _case_event(batch: Batch, case: Case, payload: CaseEventJob) -> None:
    """Add a case_event job, and send the case's throttled repeat comment now: per-case order would hold the event behind it."""
    batch.enqueue(case, payload)
    batch.comments_now(case)


def _open_case(batch: Batch, item: Prepared, inbox_id: int) -> Case:
    alert, route, now = item.routed.alert, item.routed.route, batch.now
    case = batch.open_case(dict(
        route=route.name, key=item.routed.key, key_hash=item.digest, state="open", title=alert.title[:1000],
        severity=alert.severity.value, source=alert.source.name, alert_count=1, first_seen=now, last_seen=now,
        sink=route.sink, observables={kind: list(getattr(alert.observables, kind)) for kind in OBSERVABLE_KINDS},
    ))
    _per_sink(batch, case, route, lambda _: CreateTicket())  # one ticket in each sink of the route
    if alert.evidence:  # the files stay in the inbox row; the job reads them from there again; each sink that follows them
        evidence = AttachEvidence(inbox_id=inbox_id, alert_id=alert.id)
        _per_sink(batch, case, route, lambda view: evidence if follows(route, view.sink, "evidence") else None)
    if route.tells:
        _case_event(batch, case, CaseEventJob(event=CaseEventKind.opened, severity=alert.severity, at=now, alert_id=alert.id))
    return case


def _record_repeat(batch: Batch, item: Prepared, case: Case, outcome: str) -> None:
    alert, route, now = item.routed.alert, item.routed.route, batch.now
    before = Severity(case["severity"])
    severity = max(before, alert.severity, key=lambda s: s.rank)
    batch.count_alert(case)
    batch.set(case, last_seen=now, severity=severity.value)
    observables = merged(case["observables"], alert.observables)
    if observables is not None:
        batch.set(case, observables=observables)
    if case["ticket_key"] is None and not batch.create_on_its_way(case):
        batch.enqueue(case, CreateTicket())  # its create was discarded: this alert gets it one
    further = {target.sink for target in route.also_sinks}  # a sink the route no longer names gets nothing
    for sink in sorted(batch.discarded_further(case) & further) if further else ():
        batch.enqueue(case, CreateSinkTicket(sink=sink), lane=sink)  # so does a further sink's, in its lane
    if outcome == "reopened":
        batch.set(case, state="open", closed_at=None, resolution=None)
        _per_sink(batch, case, route, lambda _: Transition(to=route.reopen_transition))
        if route.tells:
            _case_event(batch, case, CaseEventJob(event=CaseEventKind.reopened, severity=severity, at=now, alert_id=alert.id))
    elif outcome == "repeat" and severity.rank > before.rank and route.tells:
        raised = CaseEventJob(event=CaseEventKind.severity_raised, severity=severity, at=now, alert_id=alert.id,
                              previous_severity=before)
        _case_event(batch, case, raised)
    on_repeat = route.on_repeat if route.members is None else "ignore"  # the member sync tells the ticket what changed
    if outcome in ("repeat", "reopened") and on_repeat == "comment":
        _schedule_comment(batch, case, route)
    elif outcome == "repeat" and on_repeat == "update":
        key, count = item.routed.key, case["alert_count"]
        _per_sink(batch, case, route, lambda view: (lambda c: UpdateFields(fields=draft_ticket(view, alert, {
            "id": c["id"], "key": key, "alert_count": count}).fields)) if view.fields else None)


def merged(known: dict[str, list[str]], alert: Observables) -> dict[str, list[str]] | None:
    """Return a case's observables with the alert's added in first-seen order, or None when the alert adds none."""
    result = None
    for kind in OBSERVABLE_KINDS:
        values = getattr(alert, kind)
        if not values:
            continue
        before = known.get(kind) or []
        have = set(before) if len(values) > 8 else before  # a few values are found faster in the list than it is hashed
        fresh = [value for value in dict.fromkeys(values) if value not in have]
        if fresh:
            result = dict(known) if result is None else result
            result[kind] = before + fresh
    return result


def _schedule_comment(batch: Batch, case: Case, route: Route) -> None:
    """Schedule one comment summarising repeats on each of the route's tickets, at most one per `comment_every`."""
    every, last, now = route.comment_every, case["last_comment_at"], batch.now
    if last is not None and last > now:
        return  # a comment is already scheduled; it will count this repeat too
    at = now if last is None or now - last >= every else last + every
    _per_sink(batch, case, route, lambda _: CommentRepeats(), delay=at - now)
    batch.set(case, last_comment_at=at)
