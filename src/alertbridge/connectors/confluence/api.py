"""A thin async client for Confluence Cloud's REST API v2 (pages, children, properties, labels) and the one v1 call v2 lacks.

https://developer.atlassian.com/cloud/confluence/rest/v2/intro/ — v2 lists
with a cursor in ``_links.next``; v2 can read a page's labels but not add one,
so labels go through v1's ``POST /wiki/rest/api/content/{id}/label``
(https://developer.atlassian.com/cloud/confluence/rest/v1/api-group-content-labels/).
Errors carry v2's ``{"errors": [{"status", "code", "title", "detail"}]}``.
"""

from __future__ import annotations

from typing import Any

import httpx2

from ...errors import AuthFailed, ConnectorError, RateLimited, Retryable
from ...metrics import SINK_CALLS
from .._outbound import send_within

PAGE_LIMIT = 250  # the largest page v2 serves
MAX_PAGES = 40  # a list longer than this many pages is not walked to the end


def _outcome(error: ConnectorError) -> str:
    """Name a failed call in the metrics' words (docs/operations.md)."""
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, AuthFailed):
        return "auth"
    if isinstance(error, Retryable):
        return "server_error" if error.status else "timeout"
    return "client_error"


class ConfluenceApi:
    """Calls one Confluence Cloud site (`url` ends in /wiki)."""

    def __init__(self, name: str, url: str, auth: httpx2.Auth, *, timeout: float, transport: httpx2.AsyncBaseTransport | None = None):
        self.name = name
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client = httpx2.AsyncClient(auth=auth, headers={"Accept": "application/json"}, timeout=timeout, transport=transport)

    async def call(self, operation: str, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Send one request below the site (path starts with /api/v2 or /rest/api) and return its JSON body."""
        url = path if path.startswith("http") else f"{self.url}{path}"
        outcome = "ok"
        try:
            response = await send_within(self._client.request(method, url, json=json, params=params), vendor="confluence", seconds=self.timeout)
        except ConnectorError as exc:
            outcome = _outcome(exc)
            raise
        finally:
            SINK_CALLS.labels(self.name, operation, outcome).inc()
        return response.json() if response.content else None

    async def listing(self, operation: str, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Return every result of a v2 list, following `_links.next` (bounded)."""
        results: list[dict[str, Any]] = []
        body = await self.call(operation, "GET", path, params={"limit": PAGE_LIMIT, **(params or {})})
        for _ in range(MAX_PAGES):
            results += body.get("results", [])
            following = (body.get("_links") or {}).get("next")
            if not following:
                break
            # `next` is relative to the site root (/wiki/api/v2/…?cursor=…), not to /wiki.
            body = await self.call(operation, "GET", str(httpx2.URL(self.url).join(following)))
        return results

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
