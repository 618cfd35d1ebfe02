"""The SonarQube emulator: GET /api/issues/search with token auth, filters, sorting, paging and the 10,000-result cap.

Tokens are accepted the two ways servers take them: `Authorization: Bearer
<token>` and basic auth with the token as user name. Errors have SonarQube's
shape, `{"errors": [{"msg": …}]}`. Without items it serves the issues of the
official example answer, restamped ten minutes ago, else three synthetic issues.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .faults import FaultInjection, Faults, Refusals
from .samples import VENDOR_SAMPLES

SAMPLE = "sonarqube/api-issues-search-official-example.json"
TOKEN = "sandbox-sonar-token"
MAX_RESULTS = 10_000


def _errors(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [{"msg": message}]}, status_code=status, headers=headers)


class SonarRefusals(Refusals):
    """SonarQube's error body: {"errors": [{"msg": ...}]}."""

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Answer in SonarQube's shape."""
        return json.dumps({"errors": [{"msg": message}]}).encode(), {"Content-Type": "application/json"}


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def default_items() -> list[dict[str, Any]]:
    """Return the official example's issues restamped ten minutes ago, or three synthetic issues without it."""
    recent = _stamp(datetime.now(UTC) - timedelta(minutes=10))
    folder = VENDOR_SAMPLES
    if (folder / SAMPLE).exists():
        return [{**issue, "creationDate": recent} for issue in json.loads((folder / SAMPLE).read_text(encoding="utf-8"))["issues"]]
    return [{"key": f"AY-sandbox-{n}", "project": "acme:payments", "component": f"acme:payments:src/main/java/Pay{n}.java",
             "rule": "java:S2077", "severity": severity, "impacts": [{"softwareQuality": "SECURITY", "severity": "HIGH"}],
             "message": "Make sure using a dynamically formatted SQL query is safe here.", "line": 10 * n, "status": "OPEN",
             "type": "VULNERABILITY", "tags": ["cwe", "sql"], "creationDate": recent, "author": "dev@example.com"}
            for n, severity in ((1, "BLOCKER"), (2, "CRITICAL"), (3, "MAJOR"))]


def create_app(items: list[dict[str, Any]] | None = None, *, token: str = TOKEN, max_page_size: int = 500,
               rate_limit_every: int | None = None, retry_after: int = 2) -> FastAPI:
    """Build the emulator; every `rate_limit_every`-th call is answered 429 with Retry-After."""
    app = FastAPI(title="alertbridge SonarQube sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.items = default_items() if items is None else list(items)
    app.state.calls = []  # the query of every search, for tests
    app.state.faults = Faults(rate_limit_every=rate_limit_every, retry_after=retry_after)
    app.add_middleware(FaultInjection, faults=app.state.faults, refusals=SonarRefusals())
    accepted = {f"Bearer {token}", "Basic " + base64.b64encode(f"{token}:".encode()).decode()}

    @app.get("/api/issues/search")
    async def search(request: Request) -> JSONResponse:
        """Search issues, filtered and sorted as asked, one page at a time."""
        query = request.query_params
        app.state.calls.append(dict(query))
        if request.headers.get("authorization") not in accepted:
            return _errors(401, "Authentication is required")
        try:
            page, size = int(query.get("p", 1)), int(query.get("ps", 100))
            after = datetime.fromisoformat(query["createdAfter"]) if "createdAfter" in query else None
        except ValueError as exc:
            return _errors(400, f"Invalid parameter: {exc}")
        if not 1 <= size <= max_page_size:
            return _errors(400, f"'ps' value ({size}) must be less than {max_page_size}")
        if page * size > MAX_RESULTS:
            return _errors(400, f"Can return only the first {MAX_RESULTS} results. {page * size}th result asked.")
        if after is not None and after.tzinfo is None:
            after = after.replace(tzinfo=UTC)
        listed = {name: set(query[name].split(",")) for name in ("severities", "impactSeverities", "projects") if query.get(name)}
        found = [issue for issue in app.state.items if _matches(issue, after, listed)]
        found.sort(key=lambda issue: (datetime.fromisoformat(issue["creationDate"]), issue["key"]),
                   reverse=query.get("asc", "true") == "false")
        chunk = found[(page - 1) * size : page * size]
        return JSONResponse({"total": len(found), "p": page, "ps": size,
                             "paging": {"pageIndex": page, "pageSize": size, "total": len(found)},
                             "effortTotal": 0, "issues": chunk, "components": [], "facets": []})

    return app


def _matches(issue: dict[str, Any], after: datetime | None, listed: dict[str, set[str]]) -> bool:
    if after is not None and datetime.fromisoformat(issue["creationDate"]) < after:
        return False
    if "severities" in listed and issue.get("severity") not in listed["severities"]:
        return False
    if "impactSeverities" in listed and not {i.get("severity") for i in issue.get("impacts", [])} & listed["impactSeverities"]:
        return False
    return "projects" not in listed or issue.get("project") in listed["projects"]
