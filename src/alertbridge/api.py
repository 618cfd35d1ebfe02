"""The HTTP face: webhooks in, health and metrics out, and the admin API.

A webhook is answered 202 only after its raw body is committed to the inbox;
every refusal (404, 413, 401, 400) happens before anything is written.
"""

from __future__ import annotations

import hmac
from html import escape
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import select, text

from .connectors.roles import WebhookSource
from .jobs import queue
from .jobs.create_ticket import revision, route_named
from .jobs.payloads import CreateTicket
from .jobs.recovery import NoSuchCase, NothingToRetry, retry_case
from .errors import PayloadError, SignatureError
from .metrics import ALERTS_RECEIVED, ALERTS_REJECTED
from .pipeline.inbox import DUPLICATE
from .pipeline.process import decode
from .service import Hub
from .store import head_revision
from .store.tables import cases, inbox


class Accepted(BaseModel):
    """The event is stored; `id` is its inbox id (`duplicate` when the delivery id was seen before)."""

    id: int | None
    duplicate: bool = False


class Problem(BaseModel):
    """Why a request was refused."""

    detail: str


class Ticket(BaseModel):
    """A case's ticket."""

    sink: str
    key: str
    url: str | None


class CaseOut(BaseModel):
    """A case as the admin API shows it."""

    id: int
    route: str
    key: str
    state: str
    title: str
    severity: str
    alert_count: int
    ticket: Ticket | None
    ticket_status: str | None
    reference: str | None


class RetryOut(BaseModel):
    """What `POST /api/cases/{id}/retry` did: replayed the case's dead jobs, or queued a fresh create."""

    case: int
    replayed: int
    created: bool


_ERRORS = {code: {"model": Problem} for code in (400, 401, 404, 409, 413, 503)}
_HOOK_RESPONSES = {200: {"model": Accepted, "description": "A delivery id seen before: dropped"}, **_ERRORS}
_HOOK_BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}}  # read raw, not by FastAPI
_MAX_ID = 2**63 - 1  # a larger number is no row id or offset, and SQLite/PostgreSQL fail (500) on it
JobId = Annotated[int, Path(ge=1, le=_MAX_ID)]


def create_app(hub: Hub, *, run_loops: bool = True) -> FastAPI:
    """Build the FastAPI app around a hub; `run_loops` starts its processor and workers with the app."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if run_loops:
            hub.start()
        yield
        await hub.aclose()

    app = FastAPI(title="alertbridge", version="0.1.0", lifespan=lifespan)
    settings = hub.config.settings

    def require_admin(request: Request) -> None:
        token = settings.admin_token.get_secret_value() if settings.admin_token else ""
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "admin token missing or wrong" if token else "the admin API is off: set admin_token")

    @app.post("/hooks/{source}", status_code=202, response_model=Accepted, responses=_HOOK_RESPONSES, openapi_extra=_HOOK_BODY)
    async def receive(source: str, request: Request) -> Any:
        """Store one webhook delivery durably and acknowledge it."""
        connector = hub.sources.get(source)
        if connector is None:
            raise HTTPException(404, f"unknown source {source!r}")
        if not isinstance(connector, WebhookSource):
            # A poller has no endpoint: else anyone who reaches the port could file alerts in its vendor's name.
            raise HTTPException(404, f"source {source!r} is polled, not a webhook")
        body = await _read_capped(request, settings.max_body_bytes, source)
        try:
            connector.verify({k.lower(): v for k, v in request.headers.items()}, request.query_params, body)
        except SignatureError as exc:
            ALERTS_REJECTED.labels(source=source, reason="auth").inc()
            raise HTTPException(401, str(exc)) from None
        try:
            decode(body)
        except PayloadError as exc:
            ALERTS_REJECTED.labels(source=source, reason="unparsable").inc()
            raise HTTPException(400, str(exc)) from None
        delivery = connector.delivery_id({k.lower(): v for k, v in request.headers.items()})
        try:
            row_id = await hub.inbox.put(source, body, delivery)
        except Exception:
            ALERTS_REJECTED.labels(source=source, reason="unavailable").inc()
            raise HTTPException(503, "the database is unavailable; retry later") from None
        if row_id == DUPLICATE:
            return JSONResponse({"id": None, "duplicate": True}, status_code=200)
        ALERTS_RECEIVED.labels(source=source).inc()
        return {"id": row_id}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Report liveness (always 200 while the process serves), with the queue's counts when the database answers."""
        # A database outage is not a reason to restart the hub (it would only lose in-flight work): /readyz reports it.
        try:
            stats = await hub.stats()
        except Exception as exc:
            return {"status": "ok", "database": f"unreachable ({type(exc).__name__})"}
        return {"status": "ok", "database": "ok", **stats}

    head = head_revision()

    @app.get("/readyz", responses={503: {"description": "The database does not answer, or its schema is not this release's"}})
    async def readyz() -> dict[str, Any]:
        """Report readiness: the database answers and its schema is the one this code expects."""
        try:
            async with hub.store.read() as conn:
                current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except Exception as exc:
            return JSONResponse({"status": "not ready", "database": type(exc).__name__}, status_code=503)
        if current != head:
            return JSONResponse({"status": "not ready", "schema": current, "expected": head}, status_code=503)
        return {"status": "ready", "schema": current}

    @app.get("/metrics", response_class=Response)
    async def metrics() -> Response:
        """Expose Prometheus metrics."""
        try:
            await hub.stats()
        except Exception:  # still serve the counters we have
            pass
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse)
    async def status_page() -> str:
        """Show a small status page for people."""
        stats = await hub.stats()
        async with hub.store.read() as conn:
            rows = (await conn.execute(select(cases).order_by(cases.c.id.desc()).limit(50))).mappings().all()
        return _render_page(stats, rows)

    @app.get("/api/stats", dependencies=[Depends(require_admin)], responses=_ERRORS)
    async def api_stats() -> dict[str, int | str]:
        """Count inbox rows and jobs by state."""
        return await hub.stats()

    @app.get("/api/cases", dependencies=[Depends(require_admin)], response_model=list[CaseOut], responses=_ERRORS)
    async def api_cases(state: str | None = None, no_ticket: bool = False, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """List cases, newest first (`no_ticket`: only those without a ticket)."""
        return await list_cases(hub, state, min(max(limit, 1), 1000), min(max(offset, 0), _MAX_ID), no_ticket=no_ticket)

    @app.post("/api/cases/{case_id}/retry", dependencies=[Depends(require_admin)], response_model=RetryOut, responses=_ERRORS)
    async def api_case_retry(case_id: JobId) -> dict[str, Any]:
        """Replay the case's dead jobs, or queue a fresh create for a case whose create was discarded."""
        try:
            async with hub.store.tx() as conn:
                retried = await retry_case(conn, case_id)
        except NoSuchCase as exc:
            raise HTTPException(404, str(exc)) from None
        except NothingToRetry as exc:
            raise HTTPException(409, str(exc)) from None
        hub.jobs_ready.set()
        return {"case": case_id, "replayed": retried.replayed, "created": retried.created}

    @app.get("/api/dlq", dependencies=[Depends(require_admin)], responses=_ERRORS)
    async def dlq_list(limit: int = 100) -> list[dict[str, Any]]:
        """List dead-lettered jobs."""
        async with hub.store.read() as conn:
            return [_job_out(j) for j in await queue.dead_jobs(conn, min(max(limit, 1), 1000))]

    @app.get("/api/dlq/{job_id}", dependencies=[Depends(require_admin)], responses=_ERRORS)
    async def dlq_show(job_id: JobId) -> dict[str, Any]:
        """Show one dead job with its reason (and the raw body, for ingest failures)."""
        return await show_job(hub, job_id)

    @app.post("/api/dlq/replay", dependencies=[Depends(require_admin)], responses=_ERRORS)
    async def dlq_replay_all() -> dict[str, int]:
        """Put every dead job back in the queue."""
        async with hub.store.tx() as conn:
            count = await queue.replay(conn)
        hub.jobs_ready.set()
        return {"replayed": count}

    @app.post("/api/dlq/{job_id}/replay", dependencies=[Depends(require_admin)], responses=_ERRORS)
    async def dlq_replay(job_id: JobId) -> dict[str, int]:
        """Put one dead job back in the queue."""
        async with hub.store.tx() as conn:
            count = await queue.replay(conn, job_id)
        if not count:
            raise HTTPException(404, f"no dead job {job_id}")
        hub.jobs_ready.set()
        return {"replayed": count}

    @app.delete("/api/dlq/{job_id}", dependencies=[Depends(require_admin)], responses=_ERRORS)
    async def dlq_discard(job_id: JobId) -> dict[str, int]:
        """Discard one dead job."""
        async with hub.store.tx() as conn:
            count = await queue.discard(conn, job_id)
        if not count:
            raise HTTPException(404, f"no dead job {job_id}")
        return {"discarded": count}

    return app


async def _read_capped(request: Request, limit: int, source: str) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        ALERTS_REJECTED.labels(source=source, reason="too_large").inc()
        raise HTTPException(413, f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            ALERTS_REJECTED.labels(source=source, reason="too_large").inc()
            raise HTTPException(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def list_cases(hub: Hub, state: str | None, limit: int, offset: int, *, no_ticket: bool = False) -> list[dict[str, Any]]:
    """Return cases as the admin API and `alertbridge status` show them."""
    query = select(cases).order_by(cases.c.id.desc()).limit(limit).offset(offset)
    if state:
        query = query.where(cases.c.state == state)
    if no_ticket:
        query = query.where(cases.c.ticket_key.is_(None))
    async with hub.store.read() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [
        {
            "id": r["id"], "route": r["route"], "key": r["key"], "state": r["state"], "title": r["title"],
            "severity": r["severity"], "alert_count": r["alert_count"], "ticket_status": r["ticket_status"],
            "ticket": {"sink": r["sink"], "key": r["ticket_key"], "url": r["ticket_url"]} if r["ticket_key"] else None,
            "reference": r["reference"],
        }
        for r in rows
    ]


async def show_job(hub: Hub, job_id: int) -> dict[str, Any]:
    """Return one job, with the raw inbox body for a failed ingest and the config revision that rendered a create."""
    async with hub.store.read() as conn:
        job = await queue.get_job(conn, job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        out = _job_out(job)
        if job["kind"] == "ingest":
            body = (await conn.execute(select(inbox.c.body).where(inbox.c.id == job["payload"]["inbox_id"]))).scalar()
            out["raw_body"] = body.decode("utf-8", "replace") if body is not None else None
        if job["kind"] == CreateTicket.kind:
            case = (await conn.execute(select(cases).where(cases.c.id == job["case_id"]))).mappings().first()
            out["rendered_by"] = _rendered_by(hub, case) if case is not None else None
    return out


def _rendered_by(hub: Hub, case) -> dict[str, Any]:
    """Say which route revision rendered the ticket last sent for the case, and what a replay would render with now."""
    route = route_named(hub.config, case["route"])
    current = revision(route) if route is not None else None
    return {
        "route": case["route"], "reference": case["reference"], "revision": case["render_revision"],
        "current_revision": current, "changed_since": case["render_revision"] not in (None, current),
    }


def _job_out(job: dict[str, Any]) -> dict[str, Any]:
    return {k: job[k] for k in ("id", "case_id", "kind", "state", "attempts", "last_error", "created_at", "finished_at", "payload")}


def _render_page(stats: dict[str, int | str], rows) -> str:
    cells = "".join(
        f"<tr><td>{r['id']}</td><td>{escape(r['title'][:80])}</td><td>{r['severity']}</td><td>{r['alert_count']}</td>"
        f"<td>{escape(r['ticket_key'] or '-')}</td><td>{escape(r['state'])}</td></tr>"
        for r in rows
    )
    figures = "".join(f"<li>{escape(k)}: <b>{v}</b></li>" for k, v in stats.items())
    return (
        "<!doctype html><meta charset=utf-8><title>alertbridge</title>"
        "<style>body{font:14px system-ui;margin:2em}td,th{padding:2px 8px;text-align:left}</style>"
        f"<h1>alertbridge</h1><ul>{figures}</ul><h2>Latest cases</h2>"
        f"<table><tr><th>id</th><th>title</th><th>severity</th><th>alerts</th><th>ticket</th><th>state</th></tr>{cells}</table>"
        '<p><a href="/metrics">metrics</a></p>'
    )
