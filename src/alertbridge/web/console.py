"""The web console under /ui: server-rendered pages for the people who run the hub, and the public status page.

Pages (GET) need a signed-in user and send others to the login page; actions
(POST) need a user and the session's CSRF token, and are refused (401/403)
and logged otherwise (`auth.py`). Every page reads what the admin API and the
CLI read (`queries.py`), every action is the one they call (`operations.py`),
and each is logged with who did it.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import structlog
from fastapi import Depends, FastAPI, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ..jobs.recovery import NothingToRetry
from ..model import Severity
from ..service import Hub
from . import config_view, operations, queries
from .auth import LOGIN_COOKIE, SESSION_COOKIE, ConsoleAuth, Refused, User
from .overview import overview
from .pages import STATIC, render_page

log = structlog.get_logger("alertbridge.console")
PAGE_SIZE = 50
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def mount_console(app: FastAPI, hub: Hub) -> None:
    """Serve the status page at / and the console under /ui."""
    app.state.console_auth = ConsoleAuth(hub.config.settings)
    add_console_routes(app, hub, app.state.console_auth)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="console-static")


def viewer(request: Request) -> User:
    """Return the signed-in user of a page request, or send the browser to the login page."""
    user = request.app.state.console_auth.user(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, "sign in first", headers={"Location": f"/ui/login?next={quote(target)}"})
    return user


async def actor(request: Request) -> User:
    """Return the user of an action with a valid CSRF token; refuse (401/403) and log anything else."""
    auth: ConsoleAuth = request.app.state.console_auth
    form = await request.form()
    try:
        user = auth.check_action(request, auth.user(request), str(form.get("csrf", "")))
    except Refused as exc:
        raise HTTPException(exc.status, exc.reason) from None
    log.info("console action", user=user.name, via=user.via, path=request.url.path)
    return user


Viewer = Annotated[User, Depends(viewer)]
Actor = Annotated[User, Depends(actor)]


def add_console_routes(app: FastAPI, hub: Hub, auth: ConsoleAuth) -> None:
    """Add the console's pages and actions to the app (kept out of the OpenAPI spec: they are HTML and forms)."""
    hidden = {"include_in_schema": False}

    def page(name: str, user: User, request: Request, context: dict[str, Any]) -> HTMLResponse:
        frame = {"user": user, "csrf": auth.csrf_token(user), "path": request.url.path, "notice": request.query_params.get("notice")}
        return HTMLResponse(render_page(name, frame | context))

    def back(to: str, notice: str) -> RedirectResponse:
        return RedirectResponse(f"{to}?{urlencode({'notice': notice})}", status_code=303)

    @app.get("/", response_class=HTMLResponse, **hidden)
    async def status_page(request: Request) -> HTMLResponse:
        """Show health and queue figures to anyone; cases only to signed-in users, in the console."""
        try:
            stats, healthy = await hub.stats(), True
        except Exception:  # noqa: BLE001 — the page says the database is down instead of failing
            stats, healthy = {}, False
        return HTMLResponse(render_page("status.html", {"stats": stats, "healthy": healthy, "user": None,
                                                        "signed_in": auth.user(request) is not None}),
                            status_code=200 if healthy else 503)

    @app.get("/ui/login", response_class=HTMLResponse, **hidden)
    async def login_form(request: Request, next: str = "/ui", failed: bool = False) -> HTMLResponse:
        form_token = secrets.token_urlsafe(24)
        response = HTMLResponse(render_page("login.html", {"form_token": form_token, "next": _local(next), "failed": failed,
                                                       "enabled": auth.enabled, "token_login": bool(auth.token), "user": None}))
        response.set_cookie(LOGIN_COOKIE, form_token, httponly=True, samesite="strict", secure=auth.settings.secure_cookies, path="/ui")
        return response

    @app.post("/ui/login", **hidden)
    async def login(request: Request, token: Annotated[str, Form()] = "", csrf: Annotated[str, Form()] = "",
                    next: Annotated[str, Form()] = "/ui") -> Response:
        try:
            auth.check_login_form(request, csrf)
        except Refused as exc:
            raise HTTPException(exc.status, exc.reason) from None
        if not auth.check_token(token):
            log.warning("console login failed", peer=request.client.host if request.client else None)
            return RedirectResponse(f"/ui/login?{urlencode({'next': _local(next), 'failed': 1})}", status_code=303)
        value, lifetime = auth.session_cookie()
        log.info("console login", peer=request.client.host if request.client else None)
        response = RedirectResponse(_local(next), status_code=303)
        response.set_cookie(SESSION_COOKIE, value, max_age=lifetime, httponly=True, samesite="strict",
                            secure=auth.settings.secure_cookies, path="/")
        response.delete_cookie(LOGIN_COOKIE, path="/ui")
        return response

    @app.post("/ui/logout", **hidden)
    async def logout(user: Actor) -> Response:
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/ui", response_class=HTMLResponse, **hidden)
    async def overview_page(request: Request, user: Viewer) -> HTMLResponse:
        return page("overview.html", user, request, await overview(hub))

    @app.get("/ui/cases", response_class=HTMLResponse, **hidden)
    async def cases_page(request: Request, user: Viewer, state: str = "", route: str = "", source: str = "",
                         severity: str = "", tenant: str = "", text: str = "", page_number: Annotated[int, Query(alias="page", ge=1, le=10**6)] = 1) -> HTMLResponse:
        filters = queries.CaseFilter(state or None, route or None, source or None, severity or None, tenant or None, text.strip() or None)
        async with hub.store.read() as conn:
            rows = await queries.list_cases(conn, filters, PAGE_SIZE, (page_number - 1) * PAGE_SIZE)
            total = await queries.count_cases(conn, filters)
            stuck = await queries.count_cases(conn, queries.CaseFilter(state="stuck"))
        options = {"state": queries.CASE_STATES, "route": [r.name for r in hub.config.settings.routes],
                   "source": sorted(hub.sources), "severity": [s.value for s in Severity]}
        query = {k: v for k, v in dict(state=state, route=route, source=source, severity=severity, tenant=tenant, text=text).items() if v}
        return page("cases.html", user, request, {"cases": rows, "total": total, "stuck": stuck, "filters": query, "options": options,
                                                  "page_number": page_number, "pages": max(1, -(-total // PAGE_SIZE)), "query": urlencode(query)})

    @app.get("/ui/cases/{case_id}", response_class=HTMLResponse, **hidden)
    async def case_page(request: Request, user: Viewer, case_id: RowId) -> HTMLResponse:
        async with hub.store.read() as conn:
            detail = await queries.case_detail(conn, case_id)
        return page("case.html", user, request, detail)

    @app.post("/ui/cases/{case_id}/retry", **hidden)
    async def case_retry(user: Actor, case_id: RowId) -> Response:
        try:
            retried = await operations.retry(hub, case_id)
        except NothingToRetry as exc:
            return back(f"/ui/cases/{case_id}", str(exc))
        log.info("case retried", user=user.name, case=case_id, replayed=retried.replayed, created=retried.created)
        return back(f"/ui/cases/{case_id}", str(retried))

    @app.get("/ui/dlq", response_class=HTMLResponse, **hidden)
    async def dlq_page(request: Request, user: Viewer, kind: str = "") -> HTMLResponse:
        async with hub.store.read() as conn:
            rows = await queries.dead_letters(conn, kind or None, 500)
            counts = await queries.dead_counts(conn)
        return page("dlq.html", user, request, {"jobs": rows, "counts": counts, "kind": kind})

    @app.get("/ui/dlq/{job_id}", response_class=HTMLResponse, **hidden)
    async def job_page(request: Request, user: Viewer, job_id: RowId) -> HTMLResponse:
        async with hub.store.read() as conn:
            job = await queries.show_job(conn, job_id, hub.config)
        return page("job.html", user, request, {"job": job})

    @app.post("/ui/dlq/replay", **hidden)
    async def dlq_replay_kind(user: Actor, kind: Annotated[str, Form(min_length=1, max_length=40)]) -> Response:
        count = await operations.replay(hub, kind=kind)
        log.info("dead letters replayed", user=user.name, kind=kind, jobs=count)
        return back("/ui/dlq", f"replayed {count} {kind} job(s)")

    @app.post("/ui/dlq/{job_id}/replay", **hidden)
    async def dlq_replay(user: Actor, job_id: RowId) -> Response:
        count = await operations.replay(hub, job_id)
        log.info("dead letter replayed", user=user.name, job=job_id, jobs=count)
        return back(f"/ui/dlq/{job_id}", "replayed: the job is back in the queue" if count else "nothing to replay: the job is not dead")

    @app.post("/ui/dlq/{job_id}/discard", **hidden)
    async def dlq_discard(user: Actor, job_id: RowId) -> Response:
        count = await operations.discard(hub, job_id)
        log.info("dead letter discarded", user=user.name, job=job_id, jobs=count)
        return back(f"/ui/dlq/{job_id}", "discarded" if count else "nothing to discard: the job is not dead")

    @app.get("/ui/config", response_class=HTMLResponse, **hidden)
    async def config_page(request: Request, user: Viewer) -> HTMLResponse:
        async with hub.store.read() as conn:
            last = await config_view.last_check(conn)
        return page("config.html", user, request, {"config_text": config_view.redacted_yaml(hub.config), "check": last})

    @app.post("/ui/config/check", **hidden)
    async def config_check(user: Actor) -> Response:
        report = await config_view.run_check(hub.config, hub.store, f"console:{user.name}")
        warned = f", {len(report.warnings)} warning(s)" if report.warnings else ""
        return back("/ui/config", (f"check --live: {len(report.problems)} problem(s)" if report.problems else "check --live: OK") + warned)

    @app.get("/ui/reports", response_class=Response, **hidden)
    async def reports_page(request: Request, user: Viewer, period: str = "week", start: Annotated[str, Query(alias="from")] = "",
                           end: Annotated[str, Query(alias="to")] = "", format: str = "html") -> Response:
        from .. import reports

        try:
            window = reports.window(period, start or None, end or None)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        report = await reports.build(hub.store, window)
        if format in ("csv", "json"):
            filename = f"alertbridge-report-{window.label}.{format}"
            return Response(reports.render(report, format), media_type=reports.MEDIA_TYPES[format],
                            headers={"Content-Disposition": f'attachment; filename="{filename}"'})
        return page("reports.html", user, request, {"report": report, "charts": reports.charts(report), "period": period,
                                                    "start": start, "end": end, "periods": reports.PERIODS})


def _local(target: str) -> str:
    """Keep a post-login redirect inside the console (no open redirect)."""
    return target if target.startswith("/ui") and not target.startswith("//") else "/ui"
