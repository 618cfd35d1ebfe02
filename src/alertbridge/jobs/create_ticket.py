"""create_ticket: file a case's ticket, exactly once, rendered when the job runs.

Exactly one ticket per case: ``create_claimed_at`` is committed *before* the
create request leaves. A later attempt that finds a claim without a ticket key
cannot know whether the create happened (the process may have died after the
sink answered), so it searches the sink for the case's reference first, and
trusts an empty answer only once ``search_lag`` has passed since the claim — a
sink's search index trails its writes.

The reference is ``alertbridge-<instance>-<case id>``: case ids start at 1 in
every database, the instance id does not repeat, so two hubs (or one hub after
a database reset) sharing a project never find each other's tickets. It is
stored on the case with the claim; cases from before instance ids keep their
``alertbridge-<case id>``.

The ticket is rendered from the *current* config and the case's first stored
alert, so a create replayed after the route was fixed sends the fixed ticket;
the route's revision is stored with the claim for ``dlq show``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import Collection
from functools import partial
from typing import Any

import structlog
from jinja2 import Environment, TemplateError, nodes
from sqlalchemy import Connection, bindparam, func, select, update

from .. import failpoints
from ..config import Config, Route
from ..config_sinks import route_for_sink
from ..connectors._http import Clock
from ..connectors.roles import BulkCreate, TicketDraft, TicketRef
from ..errors import ConnectorError, Permanent, RateLimited, Retryable
from ..model import Alert, case_reference
from ..pipeline.process import decode
from ..pipeline.route import draft_ticket
from ..store import cursor
from ..store.tables import alerts, cases, inbox
from .context import JobContext
from .payloads import CreateSinkTicket, CreateTicket
from .queue import Job, JobQueue, release_held
from .tickets import save_ticket, store_ticket, ticket_of
from .writeback import writeback_jobs

log = structlog.get_logger("alertbridge.jobs")

SPLIT_WAIT = 5.0  # a refused bulk is sent again in halves after its Retry-After, if no longer than this; else rescheduled


def revision(route: Route) -> str:
    """Return a short hash of a route's config: which config rendered a ticket."""
    return hashlib.sha256(route.model_dump_json().encode()).hexdigest()[:12]


def route_named(config: Config, name: str) -> Route | None:
    """Return the route of that name in a config, or None."""
    return next((route for route in config.settings.routes if route.name == name), None)


def route_of(ctx: JobContext, case: dict[str, Any], further: str | None = None) -> Route:
    """Return the case's route from the current config (as its further sink `further` sees it); raise Permanent if it is gone."""
    route = route_named(ctx.config, case["route"])
    if route is None:
        raise Permanent(f"route {case['route']!r} of case {case['id']} is no longer in the config")
    try:
        return route_for_sink(route, further)
    except LookupError as exc:
        raise Permanent(f"case {case['id']}: {exc}") from None


async def first_alerts(ctx: JobContext, case_ids: list[int], *, raw: bool = True) -> dict[int, Alert]:
    """Load the alert that opened each case, with its raw payload parsed again from the kept inbox body (if `raw`)."""
    rows, bodies = await ctx.store.run_read(_first_rows, case_ids)
    return _parsed(ctx, rows, bodies, set(case_ids) if raw else set())


def _first_rows(conn: Connection, case_ids: list[int]) -> tuple[list, dict]:
    """Read each case's first alert and the inbox body it came in, in one unit."""
    first = select(func.min(alerts.c.id)).where(alerts.c.case_id.in_(case_ids)).group_by(alerts.c.case_id)
    rows = conn.execute(select(alerts.c.case_id, alerts.c.inbox_id, alerts.c.alert_id, alerts.c.data).where(alerts.c.id.in_(first))).all()
    bodies = {r.id: r for r in conn.execute(select(inbox.c.id, inbox.c.source, inbox.c.body).where(inbox.c.id.in_({row.inbox_id for row in rows})))}
    return rows, bodies


def _cases_and_first_rows(conn: Connection, case_ids: list[int]) -> tuple[list, list, dict]:
    """Read the cases and their first alerts with their inbox bodies, in one unit."""
    return [dict(row) for row in conn.execute(select(cases).where(cases.c.id.in_(case_ids))).mappings()], *_first_rows(conn, case_ids)


def _parsed(ctx: JobContext, rows: list, bodies: dict, raw_for: Collection[int]) -> dict[int, Alert]:
    found = {}
    for row in rows:
        # The stored alert has no raw payload (it would double the table); templates may use it, and parsing is pure.
        # Parsing the body again cost more CPU than the rest of the create: only for the cases whose templates need it.
        body = bodies.get(row.inbox_id) if row.case_id in raw_for else None
        raw = _raw(ctx, body.source, body.body, row.alert_id) if body is not None else {}
        found[row.case_id] = Alert.model_validate({**row.data, "raw": raw})
    return found


def _raw(ctx: JobContext, source_name: str, body: bytes, alert_id: str) -> dict[str, Any]:
    source = ctx.sources.get(source_name)
    try:
        items = source.parse(decode(body)) if source is not None else []
    except Exception:  # noqa: BLE001 — the source changed since: render without raw, templates that need it say so
        return {}
    return next((item.raw for item in items if isinstance(item, Alert) and item.id == alert_id), {})


# What a template may read of an alert without its raw payload: its fields but `raw`, and the shortcuts that read fields.
_WITHOUT_RAW = (set(Alert.model_fields) - {"raw"}) | {"id", "state", "hosts", "ips", "users"}


def reads_raw(route: Route) -> bool:
    """Tell whether any of the route's ticket templates may read the alert's raw payload."""
    return any(_template_reads_raw(source) for source in (route.summary, route.description, *route.labels, *route.fields.values()))


@functools.lru_cache(maxsize=1024)
def _template_reads_raw(source: str) -> bool:
    # `alert` used other than as `alert.<field>` (whole, through a filter, a method such as to_ocsf) may reach raw too.
    try:
        tree = _PARSER.parse(source)
    except TemplateError:
        return True  # rendering it fails with its message (render below); whether it reads raw does not matter
    uses = sum(1 for node in tree.find_all(nodes.Name) if node.name == "alert")
    fields = [node.attr for node in tree.find_all(nodes.Getattr) if isinstance(node.node, nodes.Name) and node.node.name == "alert"]
    fields += [node.arg.value for node in tree.find_all(nodes.Getitem)
               if isinstance(node.node, nodes.Name) and node.node.name == "alert" and isinstance(node.arg, nodes.Const)]
    return len(fields) < uses or not all(field in _WITHOUT_RAW for field in fields)


_PARSER = Environment()  # only parses: templates render in the sandbox (templates.py)


def render(route: Route, case: dict[str, Any], alert: Alert | None, ref: str) -> TicketDraft:
    """Render the case's ticket from its route and first alert; raise Permanent naming what failed."""
    if alert is None:
        raise Permanent(f"case {case['id']} has no stored alert to render its ticket from")
    context = {"id": case["id"], "key": case["key"], "alert_count": case["alert_count"], "reference": ref}
    try:
        return draft_ticket(route, alert, context)
    except TemplateError as exc:
        raise Permanent(f"route {route.name!r}: a ticket template fails for case {case['id']}: {exc}") from None


async def run(ctx: JobContext, job: Job, payload: CreateTicket | CreateSinkTicket) -> None:
    """Create the case's ticket (in a further sink of its route, for CreateSinkTicket), unless it has one or a search finds it."""
    further = payload.sink if isinstance(payload, CreateSinkTicket) else None
    case = await ctx.case(job.case_id)
    async with ctx.store.read() as conn:
        held = await ticket_of(conn, case, further)
    if held["ticket_key"]:
        await ctx.finish(job)
        return
    sink = ctx.sink(case, further)
    # Every sink's ticket of a case carries the case's one reference; the case row keeps it once the first claim is made.
    ref = held["reference"] or case["reference"] or case_reference(await ctx.instance(), case["id"])
    if held["create_claimed_at"] is not None:
        found = await sink.find_by_reference(ref)
        failpoints.hit("create.during_search")
        if found:
            if len(found) > 1:
                log.error("duplicate tickets for one case", case=case["id"], sink=sink.name, reference=ref, tickets=[t.key for t in found])
            await _record(ctx, job, found[0], further)
            return
        wait = held["create_claimed_at"] + ctx.search_lag - time.time()
        if wait > 0:
            raise Retryable(f"a create may have happened; waiting {wait:.1f}s for the search index", retry_after=wait)
    route = route_of(ctx, case, further)
    draft = render(route, case, (await first_alerts(ctx, [case["id"]], raw=reads_raw(route))).get(case["id"]), ref)
    await _claim(ctx, [(case["id"], ref, revision(route))], further)
    failpoints.hit("create.before_call")
    try:
        ticket = await sink.create(draft)
    except ConnectorError as exc:
        await _after_failed_create(ctx, [case["id"]], exc, further)
        raise
    failpoints.hit("create.after_remote")
    await _record(ctx, job, ticket, further)
    failpoints.hit("create.after_commit")


async def create_many(ctx: JobContext, jobs: list[Job], sink: BulkCreate, clock: Clock) -> dict[int, Exception | None]:
    """Create the tickets of several fresh cases in bulk calls; return each job's error or None."""
    rows, alert_rows, bodies = await ctx.store.run_read(_cases_and_first_rows, [j.case_id for j in jobs])
    by_id = {row["id"]: row for row in rows}
    fresh = [job for job in jobs if (case := by_id.get(job.case_id)) and not case["ticket_key"] and case["create_claimed_at"] is None]
    alone = [job for job in jobs if job not in fresh]  # done already, or needs the reference search first: all at once
    outcomes: dict[int, Exception | None] = dict(zip((job.id for job in alone), await asyncio.gather(*map(partial(_run_alone, ctx), alone)),
                                                     strict=True))
    if not fresh:
        return outcomes
    instance = await ctx.instance()
    fresh_ids = {job.case_id for job in fresh}
    # A route gone from the config reads raw (it fails below anyway); the others only if their templates do.
    raw_for = {case_id for case_id in fresh_ids if (route := route_named(ctx.config, by_id[case_id]["route"])) is None or reads_raw(route)}
    first = _parsed(ctx, [row for row in alert_rows if row.case_id in fresh_ids], bodies, raw_for)
    drafts: dict[int, TicketDraft] = {}
    claims = []
    for job in fresh:
        case = by_id[job.case_id]
        ref = case["reference"] or case_reference(instance, case["id"])
        try:
            route = route_of(ctx, case)
            drafts[job.id] = render(route, case, first.get(case["id"]), ref)
        except Permanent as exc:
            outcomes[job.id] = exc
            continue
        claims.append((case["id"], ref, revision(route)))
    sent = [job for job in fresh if job.id in drafts]
    if sent:
        await _claim(ctx, claims)
        outcomes |= await _send_bulk(ctx, sink, sent, drafts, clock)
    return outcomes


async def _send_bulk(ctx: JobContext, sink: BulkCreate, jobs: list[Job], drafts: dict[int, TicketDraft],
                     clock: Clock) -> dict[int, Exception | None]:
    """Send one bulk create; the drafts it refused outright go again as two smaller bulks, down to single creates.

    Only a refusal is sent again at once: a 429, or a request that never left — nothing was created. After any
    other failure (a timeout, a 5xx) the tickets may exist: those jobs search before they try again.
    """
    failpoints.hit("create.before_call")
    try:
        results = await sink.create_many([drafts[job.id] for job in jobs])
    except ConnectorError as exc:
        results = [exc] * len(jobs)
    failpoints.hit("create.after_remote")
    created = [(job, result) for job, result in zip(jobs, results, strict=True) if isinstance(result, TicketRef)]
    if created:
        # Every key is known from the one answer: the others share one transaction (each in its own savepoint,
        # jobs/commits.py) where one each, awaited in turn, cost the task a writer round trip per ticket (3 s for a
        # bulk of 20 under a sustained 1,000 alerts/s) and held the cases' comments behind it. The first goes on its
        # own, so that a kill just after it leaves a bulk partly recorded (tests/faults/test_kill_points.py).
        await _record(ctx, *created[0])
        failpoints.hit("create.after_commit")
        recorded = await asyncio.gather(*(_record(ctx, job, ticket) for job, ticket in created[1:]), return_exceptions=True)
        if failure := next((outcome for outcome in recorded if isinstance(outcome, BaseException)), None):
            raise failure  # as a failed record did before; the keys recorded beside it stay (their jobs are done)
        for _ in created[1:]:
            failpoints.hit("create.after_commit")
    outcomes: dict[int, Exception | None] = {job.id: None for job, _ in created}
    refused = [(job, result) for job, result in zip(jobs, results, strict=True) if _refused(result)]
    failed = [(job, result) for job, result in zip(jobs, results, strict=True) if not isinstance(result, TicketRef) and not _refused(result)]
    for error in {id(result): result for _, result in failed}.values():
        await _after_failed_create(ctx, [job.case_id for job, result in failed if result is error], error)
    outcomes |= {job.id: result for job, result in failed}
    wait = max((result.retry_after or 0.0 for _, result in refused), default=0.0)
    if len(refused) < 2 or wait > SPLIT_WAIT:
        # One draft left, or a long pause asked for: the scheduler retries it after Retry-After, without a search.
        await _after_failed_create(ctx, [job.case_id for job, _ in refused], Retryable("refused", sent=False))
        return outcomes | {job.id: result for job, result in refused}
    log.info("bulk create refused: sending it again as smaller bulks", sink=sink.name, drafts=len(refused), wait=wait)
    await clock.sleep(wait)
    half = (len(refused) + 1) // 2
    for part in ([job for job, _ in refused[:half]], [job for job, _ in refused[half:]]):
        outcomes |= await _send_bulk(ctx, sink, part, drafts, clock)
    return outcomes


def _refused(result: TicketRef | ConnectorError) -> bool:
    """Tell whether the sink certainly created nothing for this draft: a 429, or a request that never left."""
    return isinstance(result, RateLimited) or (isinstance(result, Retryable) and not result.sent)


async def _run_alone(ctx: JobContext, job: Job) -> Exception | None:
    try:
        await run(ctx, job, CreateTicket())
    except ConnectorError as exc:
        return exc
    return None


async def _claim(ctx: JobContext, claims: list[tuple[int, str, str]], further: str | None = None) -> None:
    """Commit the claims (with each case's reference and the route revision that rendered it) before the request leaves."""
    await ctx.queue.run(_claim_unit, claims, further, time.time())


def _claim_unit(conn: Connection, claims: list[tuple[int, str, str]], further: str | None, now: float) -> None:
    if further is not None:
        for case_id, ref, rev in claims:
            store_ticket(conn, case_id, further, create_claimed_at=now, reference=ref, render_revision=rev)
        return
    conn.execute(_CLAIM, [{"case_id": c, "now": now, "ref": r, "rev": v} for c, r, v in claims])


async def _record(ctx: JobContext, job: Job, ticket: TicketRef, further: str | None = None) -> None:
    """Record the case's ticket (in its further sink `further`), finish the job and release the held jobs, in one transaction."""
    await ctx.queue.run(_record_unit, ctx.config, ctx.queue, job, ticket, further, time.time())
    log.info("ticket created", case=job.case_id, sink=further, ticket=ticket.key, url=ticket.url)


def _record_unit(conn: Connection, config: Config, queue: JobQueue, job: Job, ticket: TicketRef, further: str | None,
                 now: float) -> None:
    case_id = job.case_id
    if further is not None:
        store_ticket(conn, case_id, further, ticket_key=ticket.key, ticket_url=ticket.url, ticket_status="created")
    else:
        if conn.dialect.name == "postgresql":  # each ticket's record is a transaction of its own there: its cursor (store/cursor.py)
            found = cursor.fetch_one(conn, _PG_TICKETED, (ticket.key, ticket.url, case_id))
            route = found[0] if found is not None else None
        else:
            route = conn.execute(_TICKETED, {"case_id": case_id, "ticket": ticket.key, "link": ticket.url}).scalar()
        writeback_jobs(conn, config, {"id": case_id, "route": route}, event="created", at=now, category="new")
    release_held(conn, [case_id])
    queue.complete_in(conn, job)


# Built once, their values bound at each execution: a statement built per ticket cost more CPU than running it.
_CLAIM = update(cases).where(cases.c.id == bindparam("case_id")).values(
    create_claimed_at=bindparam("now"), reference=bindparam("ref"), render_revision=bindparam("rev"),
)
_TICKETED = update(cases).where(cases.c.id == bindparam("case_id")).values(
    ticket_key=bindparam("ticket"), ticket_url=bindparam("link"), ticket_status="created",
).returning(cases.c.route)
_PG_TICKETED = "UPDATE cases SET ticket_key = %s, ticket_url = %s, ticket_status = 'created' WHERE id = %s RETURNING route"


async def _after_failed_create(ctx: JobContext, case_ids: list[int], error: ConnectorError, further: str | None = None) -> None:
    """Adjust the claims after a create failed, so the next attempt searches exactly when it must."""
    if not case_ids:
        return  # a bulk that nothing refused: no write transaction to queue for (it held up the task's end by a gate wait)
    if isinstance(error, Permanent) and error.status is not None and error.status < 500:
        claim = None  # the sink refused the request outright: nothing was created, no search needed
    elif isinstance(error, RateLimited):
        claim = None  # a 429 is answered before the request is processed: nothing was created, no search lag to wait out
    elif isinstance(error, Retryable) and not error.sent:
        claim = None  # the request never left (connection refused, no free connection): no search lag to wait out
    elif isinstance(error, Retryable):
        # The request may have left only now (after the client's rate-limit pacing): the search lag counts from here.
        claim = time.time()
    else:
        return
    async with ctx.store.tx() as conn:
        if further is not None:
            for case_id in case_ids:
                await save_ticket(conn, case_id, further, create_claimed_at=claim)
            return
        await conn.execute(update(cases).where(cases.c.id.in_(case_ids)).values(create_claimed_at=claim))
