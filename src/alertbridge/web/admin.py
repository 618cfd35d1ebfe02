"""The admin API under /api: the same reads and actions as the console and the CLI, behind the admin token."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..jobs.recovery import NoSuchCase, NothingToRetry
from ..service import Hub
from . import operations, queries

MAX_ID = 2**63 - 1  # a larger number is no row id or offset, and SQLite/PostgreSQL fail (500) on it
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]


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
    stuck: list[dict[str, Any]] = []


class RetryOut(BaseModel):
    """What `POST /api/cases/{id}/retry` did: replayed the case's dead jobs, or queued a fresh create."""

    case: int
    replayed: int
    created: bool


ERRORS = {code: {"model": Problem} for code in (400, 401, 404, 409, 413, 503)}


def add_admin_routes(app: FastAPI, hub: Hub) -> None:
    """Add the admin API's routes to the app (on the app itself, so tests and the OpenAPI fuzzer see each route)."""
    settings = hub.config.settings

    def require_admin(request: Request) -> None:
        token = settings.admin_token.get_secret_value() if settings.admin_token else ""
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "admin token missing or wrong" if token else "the admin API is off: set admin_token")

    guard = {"dependencies": [Depends(require_admin)], "responses": ERRORS}

    async def not_found(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    # The faces share these: the API and the console answer them 404, the CLI exits 1.
    app.add_exception_handler(queries.NotFound, not_found)
    app.add_exception_handler(NoSuchCase, not_found)

    @app.get("/api/stats", **guard)
    async def api_stats() -> dict[str, int | str]:
        """Count inbox rows and jobs by state."""
        return await hub.stats()

    @app.get("/api/cases", response_model=list[CaseOut], **guard)
    async def api_cases(state: str | None = None, route: str | None = None, source: str | None = None,
                        severity: str | None = None, tenant: str | None = None, text: str | None = None,
                        no_ticket: bool = False, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """List cases, newest first, filtered like the console's Cases page (state: open, closed or stuck; `no_ticket`)."""
        filters = queries.CaseFilter(state, route, source, severity, tenant, text, no_ticket)
        async with hub.store.read() as conn:
            return await queries.list_cases(conn, filters, min(max(limit, 1), 1000), min(max(offset, 0), MAX_ID))

    @app.get("/api/cases/{case_id}", **guard)
    async def api_case(case_id: JobId) -> dict[str, Any]:
        """Show one case with its alerts, jobs and ticket transitions."""
        async with hub.store.read() as conn:
            return await queries.case_detail(conn, case_id)

    @app.post("/api/cases/{case_id}/retry", response_model=RetryOut, **guard)
    async def api_case_retry(case_id: JobId) -> dict[str, Any]:
        """Replay the case's dead jobs, or queue a fresh create for a case whose create was discarded."""
        try:
            retried = await operations.retry(hub, case_id)
        except NothingToRetry as exc:
            raise HTTPException(409, str(exc)) from None
        return {"case": case_id, "replayed": retried.replayed, "created": retried.created}

    @app.get("/api/dlq", **guard)
    async def dlq_list(kind: Annotated[str | None, Query(max_length=40)] = None, limit: int = 100) -> list[dict[str, Any]]:
        """List dead-lettered jobs (of one kind, when given)."""
        async with hub.store.read() as conn:
            return await queries.dead_letters(conn, kind, min(max(limit, 1), 1000))

    @app.get("/api/dlq/{job_id}", **guard)
    async def dlq_show(job_id: JobId) -> dict[str, Any]:
        """Show one dead job with its reason (and the raw body, secrets redacted, for ingest failures)."""
        async with hub.store.read() as conn:
            return await queries.show_job(conn, job_id, hub.config)

    @app.post("/api/dlq/replay", **guard)
    async def dlq_replay_all(kind: Annotated[str | None, Query(max_length=40)] = None) -> dict[str, int]:
        """Put every dead job (of one kind, when given) back in the queue."""
        return {"replayed": await operations.replay(hub, kind=kind)}

    @app.post("/api/dlq/{job_id}/replay", **guard)
    async def dlq_replay(job_id: JobId) -> dict[str, int]:
        """Put one dead job back in the queue."""
        return {"replayed": _found(await operations.replay(hub, job_id), job_id)}

    @app.delete("/api/dlq/{job_id}", **guard)
    async def dlq_discard(job_id: JobId) -> dict[str, int]:
        """Discard one dead job."""
        return {"discarded": _found(await operations.discard(hub, job_id), job_id)}


def _found(count: int, job_id: int) -> int:
    if not count:
        raise HTTPException(404, f"no dead job {job_id}")
    return count
