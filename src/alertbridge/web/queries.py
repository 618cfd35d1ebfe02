"""The reads the console, the admin API and the CLI share, so the three faces show exactly the same thing.

Each function takes a read connection. Lists are fetched page by page and
their details in one query per page, never per row. (The actions they share
live with the queue: `jobs/queue.py` replay and discard, `jobs/recovery.py`
case retry.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, and_, cast, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import Config
from ..jobs import queue
from ..jobs.create_ticket import revision, route_named
from ..jobs.payloads import CreateTicket
from ..jobs.tickets import further_tickets
from ..logs import redact_data
from ..store.tables import alerts, cases, inbox, jobs, ticket_transitions

CASE_STATES = ("open", "closed", "stuck")
JOB_FIELDS = ("id", "case_id", "kind", "state", "attempts", "last_error", "created_at", "finished_at", "payload")


class NotFound(LookupError):
    """The row asked for does not exist (the API answers 404, the CLI exits 1)."""


@dataclass
class CaseFilter:
    """What the Cases page and `GET /api/cases` filter on; empty fields filter nothing."""

    state: str | None = None  # open | closed | stuck (a job of the case is dead-lettered)
    route: str | None = None
    source: str | None = None
    severity: str | None = None
    tenant: str | None = None
    text: str | None = None  # in the title, the case key or the ticket key
    no_ticket: bool = False  # only cases without a ticket


def _tenant_of(table=alerts):
    return table.c.data[("source", "tenant")].as_string()


def _case_conditions(filters: CaseFilter) -> list:
    where = []
    if filters.state == "stuck":
        where.append(exists().where(jobs.c.case_id == cases.c.id, jobs.c.state == "dead"))
    elif filters.state:
        where.append(cases.c.state == filters.state)
    for column, value in ((cases.c.route, filters.route), (cases.c.source, filters.source), (cases.c.severity, filters.severity)):
        if value:
            where.append(column == value)
    if filters.no_ticket:
        where.append(cases.c.ticket_key.is_(None))
    if filters.tenant:
        where.append(exists().where(alerts.c.case_id == cases.c.id, _tenant_of() == filters.tenant))
    if filters.text:
        pattern = f"%{filters.text.lower()}%"
        where.append(or_(func.lower(cases.c.title).like(pattern), func.lower(cases.c.key).like(pattern),
                         func.lower(cases.c.ticket_key).like(pattern)))
    return where


def case_out(row, dead: list[dict[str, Any]] | None = None, further: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Shape a case row as every face shows it; `tickets` lists its ticket in every sink of its route (jobs/tickets.py)."""
    own = [{"sink": row["sink"], "key": row["ticket_key"], "url": row["ticket_url"], "status": row["ticket_status"]}] if row["sink"] else []
    return {
        "id": row["id"], "route": row["route"], "key": row["key"], "state": row["state"], "title": row["title"],
        "severity": row["severity"], "source": row["source"], "alert_count": row["alert_count"],
        "first_seen": row["first_seen"], "last_seen": row["last_seen"], "ticket_status": row["ticket_status"],
        "ticket": {"sink": row["sink"], "key": row["ticket_key"], "url": row["ticket_url"]} if row["ticket_key"] else None,
        "reference": row["reference"], "stuck": dead or [], "tickets": own + (further or []),
    }


async def list_cases(conn: AsyncConnection, filters: CaseFilter, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Return one page of cases, newest first, each with its dead-lettered jobs (a stuck case)."""
    query = select(cases).where(*_case_conditions(filters)).order_by(cases.c.id.desc()).limit(limit).offset(offset)
    rows = (await conn.execute(query)).mappings().all()
    dead = await _dead_by_case(conn, [r["id"] for r in rows])
    further = await further_tickets(conn, [r["id"] for r in rows])
    return [case_out(r, dead.get(r["id"]), further.get(r["id"])) for r in rows]


async def count_cases(conn: AsyncConnection, filters: CaseFilter) -> int:
    """Count the cases a filter selects."""
    return (await conn.execute(select(func.count()).select_from(cases).where(*_case_conditions(filters)))).scalar_one()


async def _dead_by_case(conn: AsyncConnection, case_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    if not case_ids:
        return {}
    query = select(jobs.c.id, jobs.c.case_id, jobs.c.kind, jobs.c.last_error, jobs.c.finished_at).where(
        jobs.c.case_id.in_(case_ids), jobs.c.state == "dead").order_by(jobs.c.id)
    found: dict[int, list[dict[str, Any]]] = {}
    for row in (await conn.execute(query)).mappings():
        found.setdefault(row["case_id"], []).append(dict(row))
    return found


async def case_detail(conn: AsyncConnection, case_id: int, alert_limit: int = 500) -> dict[str, Any]:
    """Return one case with its alerts' timeline, every job it caused and its ticket's transitions."""
    row = (await conn.execute(select(cases).where(cases.c.id == case_id))).mappings().first()
    if row is None:
        raise NotFound(f"no case {case_id}")
    timeline = (await conn.execute(
        select(alerts.c.id, alerts.c.alert_id, alerts.c.source, alerts.c.severity, alerts.c.title, alerts.c.received_at,
               _tenant_of().label("tenant"), alerts.c.data["url"].as_string().label("url"))
        .where(alerts.c.case_id == case_id).order_by(alerts.c.id.desc()).limit(alert_limit)
    )).mappings().all()
    job_rows = (await conn.execute(select(jobs).where(jobs.c.case_id == case_id).order_by(jobs.c.id))).mappings().all()
    transitions = (await conn.execute(
        select(ticket_transitions).where(ticket_transitions.c.case_id == case_id).order_by(ticket_transitions.c.at)
    )).mappings().all()
    case = case_out(row, [dict(j) for j in job_rows if j["state"] == "dead"], (await further_tickets(conn, [case_id])).get(case_id))
    case |= {"observables": row["observables"], "resolution": row["resolution"], "closed_at": row["closed_at"]}
    return {
        "case": case,
        "alerts": [dict(a) for a in reversed(timeline)],
        "jobs": [job_out(j) for j in job_rows],
        "transitions": [dict(t) for t in transitions],
    }


def job_out(job) -> dict[str, Any]:
    """Shape a job row as every face shows it, secrets redacted from its payload."""
    out = {k: job[k] for k in JOB_FIELDS}
    out["payload"] = redact_data(out["payload"])
    return out


async def dead_letters(conn: AsyncConnection, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """List dead-lettered jobs, oldest first, optionally of one kind."""
    query = select(jobs).where(jobs.c.state == "dead").order_by(jobs.c.id).limit(limit)
    if kind:
        query = query.where(jobs.c.kind == kind)
    return [job_out(j) for j in (await conn.execute(query)).mappings()]


async def dead_counts(conn: AsyncConnection) -> dict[str, int]:
    """Count dead-lettered jobs by kind."""
    rows = await conn.execute(select(jobs.c.kind, func.count()).where(jobs.c.state == "dead").group_by(jobs.c.kind))
    return dict(sorted(rows.all()))


async def show_job(conn: AsyncConnection, job_id: int, config: Config | None = None) -> dict[str, Any]:
    """Return one job with its case's title, the raw event behind it (secrets redacted) and, for a create, which config rendered it."""
    job = await queue.get_job(conn, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    out = job_out(job)
    inbox_id = job["payload"].get("inbox_id") if job["kind"] == "ingest" else None
    if job["case_id"] is not None:
        case = (await conn.execute(select(cases).where(cases.c.id == job["case_id"]))).mappings().first()
        out["case_title"] = case["title"] if case else None
        if case is not None and job["kind"] == CreateTicket.kind:
            out["rendered_by"] = rendered_by(case, config)
        # The event behind the case: the raw body of its first alert.
        inbox_id = (await conn.execute(select(func.min(alerts.c.inbox_id)).where(alerts.c.case_id == job["case_id"]))).scalar()
    if inbox_id is not None:
        row = (await conn.execute(select(inbox.c.body, inbox.c.received_at).where(inbox.c.id == inbox_id))).first()
        out["raw_body"] = _redacted_body(row.body) if row is not None and row.body else None
        out["received_at"] = row.received_at if row is not None else None
    return out


def rendered_by(case, config: Config | None) -> dict[str, Any]:
    """Say which route revision rendered the ticket last sent for the case, and what a replay would render with now."""
    route = route_named(config, case["route"]) if config is not None else None
    current = revision(route) if route is not None else None
    return {
        "route": case["route"], "reference": case["reference"], "revision": case["render_revision"],
        "current_revision": current, "changed_since": case["render_revision"] not in (None, current),
    }


def _redacted_body(body: bytes) -> str:
    import json

    from ..pipeline.process import decode

    text = body.decode("utf-8", "replace")
    try:
        data = decode(body)
    except Exception:  # noqa: BLE001 — an unparsable body is why it is dead: show it as text, redacted
        return redact_data(text)
    cleaned = redact_data(data)
    # Show the body byte for byte unless a secret had to come out of it.
    return text if cleaned == data else json.dumps(cleaned, indent=2, ensure_ascii=False)


def bucket_of(column, origin: float, size: float, sqlite: bool):
    """Return the SQL expression numbering a float epoch column's time buckets: floor((t - origin) / size)."""
    scaled = (column - origin) / size
    # CAST truncates on SQLite (floor, for the times after `origin` it sees) but rounds on PostgreSQL.
    return cast(scaled, BigInteger) if sqlite else cast(func.floor(scaled), BigInteger)


async def hourly(conn: AsyncConnection, since: float, until: float, sqlite: bool) -> dict[str, dict[int, float]]:
    """Count alerts, new cases and tickets per hour, and the median end-to-end lag of new tickets."""
    series: dict[str, dict[int, float]] = {}
    for name, column in (("alerts", alerts.c.received_at), ("cases", cases.c.first_seen)):
        hour = bucket_of(column, 0.0, 3600.0, sqlite)
        rows = await conn.execute(select(hour, func.count()).where(column >= since, column < until).group_by(hour))
        series[name] = {int(h): n for h, n in rows}
    lags = await ticket_lags(conn, since, until)
    series["tickets"], series["lag"] = {}, {}
    by_hour: dict[int, list[float]] = {}
    for finished, lag in lags:
        by_hour.setdefault(int(finished // 3600), []).append(lag)
    for hour, values in by_hour.items():
        series["tickets"][hour] = len(values)
        series["lag"][hour] = sorted(values)[len(values) // 2]
    return series


async def ticket_lags(conn: AsyncConnection, since: float, until: float) -> list[tuple[float, float]]:
    """Return (created at, seconds from the case's first alert reaching the inbox) for tickets created in a window."""
    first_alert = select(alerts.c.case_id, func.min(alerts.c.inbox_id).label("inbox_id")).group_by(alerts.c.case_id).subquery()
    query = (
        select(jobs.c.finished_at, jobs.c.finished_at - inbox.c.received_at)
        .select_from(jobs.join(first_alert, first_alert.c.case_id == jobs.c.case_id).join(inbox, inbox.c.id == first_alert.c.inbox_id))
        .where(jobs.c.kind == "create_ticket", jobs.c.state == "done", jobs.c.finished_at >= since, jobs.c.finished_at < until)
    )
    return [(float(a), float(b)) for a, b in (await conn.execute(query)).all()]


async def source_activity(conn: AsyncConnection, since: float) -> dict[str, dict[str, Any]]:
    """Per source: the last event stored, events since `since`, and dead (unparsable) events."""
    rows = await conn.execute(
        select(inbox.c.source, func.max(inbox.c.received_at), func.count().filter(inbox.c.received_at >= since),
               func.count().filter(inbox.c.state == "dead")).group_by(inbox.c.source)
    )
    return {source: {"last_event": last, "events": recent, "dead": dead} for source, last, recent, dead in rows}


async def sink_activity(conn: AsyncConnection, since: float) -> dict[str, dict[str, Any]]:
    """Per sink, from the jobs of its cases since `since`: runs, failed attempts, the last success and the last error."""
    joined = jobs.join(cases, cases.c.id == jobs.c.case_id)
    recent = and_(jobs.c.created_at >= since, jobs.c.kind != "notify")
    rows = await conn.execute(
        select(cases.c.sink, func.count(), func.sum(jobs.c.attempts), func.count().filter(jobs.c.state == "dead"),
               func.max(jobs.c.finished_at).filter(jobs.c.state == "done"))
        .select_from(joined).where(recent).group_by(cases.c.sink)
    )
    out = {sink: {"jobs": n, "attempts": int(attempts or 0), "dead": dead, "last_success": last, "last_error": None}
           for sink, n, attempts, dead, last in rows if sink}
    errors = await conn.execute(
        select(cases.c.sink, jobs.c.last_error, jobs.c.finished_at).select_from(joined)
        .where(recent, jobs.c.last_error.is_not(None)).order_by(jobs.c.id.desc()).limit(200)
    )
    for sink, error, _at in errors:
        if sink in out and out[sink]["last_error"] is None:
            out[sink]["last_error"] = error
    return out


async def notifier_activity(conn: AsyncConnection, since: float) -> dict[str, dict[str, Any]]:
    """Per notifier, from its notify jobs since `since`: runs, dead, the last success and the last error."""
    rows = await conn.execute(
        select(jobs.c.payload, jobs.c.state, jobs.c.attempts, jobs.c.finished_at, jobs.c.last_error)
        .where(jobs.c.kind == "notify", jobs.c.created_at >= since).order_by(jobs.c.id)
    )
    out: dict[str, dict[str, Any]] = {}
    for payload, state, attempts, finished, error in rows:
        entry = out.setdefault(str(payload.get("notifier")), {"jobs": 0, "attempts": 0, "dead": 0, "last_success": None, "last_error": None})
        entry["jobs"] += 1
        entry["attempts"] += attempts
        entry["dead"] += state == "dead"
        if state == "done":
            entry["last_success"] = finished
        if error:
            entry["last_error"] = error
    return out
