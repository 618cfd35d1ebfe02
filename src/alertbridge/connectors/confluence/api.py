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

from .._http import HttpClient, Vendor

PAGE_LIMIT = 250  # the largest page v2 serves
MAX_PAGES = 40  # a list longer than this many pages is not walked to the end


class _Confluence(Vendor):
    def message(self, body: Any) -> str | None:
        """Read v2's {"errors": [{"status", "code", "title", "detail"}]}."""
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
            return "; ".join(str(e.get("title") or e.get("detail") or e.get("code")) for e in errors)
        return super().message(body)


CONFLUENCE = _Confluence("confluence")


class ConfluenceApi:
    """Calls one Confluence Cloud site (`url` ends in /wiki)."""

    def __init__(self, name: str, url: str, auth: httpx2.Auth, *, timeout: float, transport: httpx2.AsyncBaseTransport | None = None):
        self.name = name
        self.url = url.rstrip("/")
        self._client = HttpClient(name, CONFLUENCE, timeout=timeout, auth=auth, transport=transport)

    async def call(self, operation: str, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Send one request below the site (path starts with /api/v2 or /rest/api) and return its JSON body."""
        url = path if path.startswith("http") else f"{self.url}{path}"
        return self._client.json_object(await self._client.call(operation, method, url, json=json, params=params))

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
