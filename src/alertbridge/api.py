"""The HTTP face: webhooks in, health and metrics out; the admin API and the console are mounted from `web/`.

A webhook is answered 202 only after its raw body is committed to the inbox;
every refusal (404, 413, 401, 400, 503) happens before anything is written.
"""

from __future__ import annotations

import gc
import json
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from starlette.datastructures import QueryParams
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .connectors.roles import WebhookSource
from .errors import PayloadError, SignatureError
from .metrics import ALERTS_RECEIVED, ALERTS_REJECTED
from .pipeline.inbox import DUPLICATE
from .pipeline.process import decode
from .service import Hub
from .store import head_revision
from .web.admin import Problem, add_admin_routes
from .web.console import mount_console


class Accepted(BaseModel):
    """The event is stored; `id` is its inbox id (`duplicate` when the delivery id was seen before)."""

    id: int | None
    duplicate: bool = False


def create_app(hub: Hub, *, run_loops: bool = True) -> HubApp:
    """Build the FastAPI app around a hub; `run_loops` starts its processor and workers with the app."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if run_loops:
            hub.start()
        # What exists once the app has started (modules, config, schemas, compiled routes) lives as long as the
        # process: kept out of the collector, a full collection scans only what came since. Each one stops every
        # request in flight: under the quick burst they took 0.34 s of CPU before, 0.18 s frozen.
        # https://docs.python.org/3/library/gc.html#gc.freeze
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # a process that starts apps one after another (the tests) collects each one's leftovers
            await hub.aclose()

    # The hub's metrics are Prometheus (/metrics) and it sets up no OpenTelemetry: FastAPI's native telemetry would
    # only look up three unset global providers (environment look-ups each) on every request.
    app = HubApp(title="alertbridge", version="0.1.0", lifespan=lifespan, telemetry={"tracing": False, "metrics": False, "logs": False})
    app.hooks = HookIntake(hub)
    # First in the router, ahead of the docs routes: what HubApp.__call__ does not answer itself comes here.
    app.router.routes.insert(0, Route("/hooks/{source}", app.hooks, methods=["POST"], name="receive"))
    _document_hooks(app)

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

    add_admin_routes(app, hub)
    mount_console(app, hub)
    return app


class HubApp(FastAPI):
    """The hub's app: FastAPI, but a webhook delivery is answered before FastAPI's middleware and router see it."""

    hooks: HookIntake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer POST /hooks/{source} at once, anything else through FastAPI."""
        # Five middleware layers and the router cost a delivery ~10 µs (of ~90 µs in all) and do nothing for it. A
        # request under a root path goes the whole way, to the same endpoint (the route `receive`).
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path = scope["path"]
            if path.startswith("/hooks/") and (source := path[7:]) and "/" not in source:  # the route's /hooks/{source}
                await self.hooks.answer(source, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


class HookIntake:
    """POST /hooks/{source} as a plain ASGI app: refuse (404, 413, 401, 400, 503) before writing, or commit, then 202.

    FastAPI would build a Request, solve the route's dependencies and run its exception middleware for every delivery:
    about 40 µs of the ~120 µs a whole request costs the no-op FastAPI endpoint. Here the request is read straight
    from the ASGI scope, with the same answers, metrics and OpenAPI entry (`_document_hooks`).
    """

    def __init__(self, hub: Hub):
        self.hub = hub
        self.limit = hub.config.settings.max_body_bytes
        self.received = {name: ALERTS_RECEIVED.labels(source=name) for name in hub.sources}  # labels() takes a lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one delivery routed here (the path parameter `source` names the source)."""
        await self.answer(scope["path_params"]["source"], scope, receive, send)

    async def answer(self, source: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one delivery to `source`."""
        answer = await self._accept(source, scope, receive)
        if answer is not None:
            status, body = answer
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]})  # fmt: skip
            await send({"type": "http.response.body", "body": body})

    async def _accept(self, source: str, scope: Scope, receive: Receive) -> tuple[int, bytes] | None:
        connector = self.hub.sources.get(source)
        if connector is None:
            return _refusal(404, f"unknown source {source!r}")
        if not isinstance(connector, WebhookSource):
            # A poller has no endpoint: else anyone who reaches the port could file alerts in its vendor's name.
            return _refusal(404, f"source {source!r} is polled, not a webhook")
        # ASGI header names are lower case already; one pass over them, then plain dict look-ups.
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.limit:
            return self._rejected(source, "too_large", 413, f"body larger than {self.limit} bytes")
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None  # the sender is gone: nothing was written and no one is left to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return self._rejected(source, "too_large", 413, f"body larger than {self.limit} bytes")
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        try:
            connector.verify(headers, QueryParams(query) if (query := scope["query_string"]) else _NO_QUERY, body)
        except SignatureError as exc:
            return self._rejected(source, "auth", 401, str(exc))
        try:
            decode(body)
        except PayloadError as exc:
            return self._rejected(source, "unparsable", 400, str(exc))
        try:
            row_id = await self.hub.inbox.put(source, body, connector.delivery_id(headers))
        except Exception:
            return self._rejected(source, "unavailable", 503, "the database is unavailable; retry later")
        if row_id == DUPLICATE:
            return 200, b'{"id":null,"duplicate":true}'
        self.received[source].inc()
        return 202, b'{"id":%d,"duplicate":false}' % row_id  # as `Accepted` would serialise it

    @staticmethod
    def _rejected(source: str, reason: str, status: int, detail: str) -> tuple[int, bytes]:
        ALERTS_REJECTED.labels(source=source, reason=reason).inc()
        return _refusal(status, detail)


_NO_QUERY = QueryParams(b"")  # immutable: shared by every delivery without a query string (parsing b"" took 4.9 us)


def _refusal(status: int, detail: str) -> tuple[int, bytes]:
    """Return a refusal as FastAPI answers an HTTPException: `{"detail": ...}`."""
    return status, json.dumps({"detail": detail}, ensure_ascii=False, separators=(",", ":")).encode()


def _document_hooks(app: FastAPI) -> None:
    """Add POST /hooks/{source} to the app's OpenAPI spec: FastAPI documents its own routes only, not a plain one."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        spec = build()  # FastAPI's, built once and kept in app.openapi_schema: this adds to it once
        if "/hooks/{source}" not in spec["paths"]:
            spec["paths"] = {"/hooks/{source}": {"post": _HOOK_OPERATION}, **spec["paths"]}
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in (Accepted, Problem):
                schemas.setdefault(model.__name__, model.model_json_schema())
        return spec

    app.openapi = openapi  # the FastAPI way to extend the spec: https://fastapi.tiangolo.com/how-to/extending-openapi/


def _json_content(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


_HOOK_OPERATION = {
    "summary": "Receive",
    "description": "Store one webhook delivery durably and acknowledge it.",
    "operationId": "receive_hooks__source__post",
    "parameters": [{"in": "path", "name": "source", "required": True, "schema": {"title": "Source", "type": "string"}}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},  # read raw, any JSON
    "responses": {
        "200": {"description": "A delivery id seen before: dropped", "content": _json_content(Accepted)},
        "202": {"description": "Committed to the inbox", "content": _json_content(Accepted)},
        **{str(code): {"description": HTTPStatus(code).phrase, "content": _json_content(Problem)} for code in (400, 401, 404, 413, 503)},
    },
}
