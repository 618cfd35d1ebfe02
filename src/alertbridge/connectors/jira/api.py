"""A thin async Jira REST client: one base URL, auth, a deadline per call, paging, and rate limits as Atlassian documents them.

https://developer.atlassian.com/cloud/jira/platform/rate-limiting/ names four
reasons for a 429, each with its own scope, so each gets its own answer:

    jira-quota-global-based / jira-quota-tenant-based  the whole site is over its quota:
                                                       every call waits until the reset
    jira-burst-based                                   one endpoint is too busy: slow that endpoint,
                                                       the delay decays as calls succeed again
    jira-per-issue-on-write                            one issue written too often: only that
                                                       issue's job waits (the core reschedules it)
    X-RateLimit-NearLimit: true                        not a 429 yet: pace calls a little

Whatever the reason, the call that met the 429 still raises ``RateLimited`` so
the core reschedules its job. Errors and logs carry the path only, never the
query string or the headers (they hold JQL and credentials).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx2

from ...errors import RateLimited
from ...metrics import SINK_CALLS
from .._http import Clock, HttpClient, Vendor, parse_retry_after

SITE_WIDE_REASONS = {"jira-quota-global-based", "jira-quota-tenant-based"}
BURST_REASON = "jira-burst-based"
NEAR_LIMIT_PACE = 0.25  # seconds added before each call while Jira says we are near the limit
DEFAULT_PAUSE = 10.0  # a site-wide 429 without Retry-After or X-RateLimit-Reset still pauses this long
PAGE_SIZE = 100
LONGEST_WAIT = 60.0  # a call waits out a shorter pause; a longer one is handed back to the core's scheduler
BURST_FIRST_DELAY, BURST_MAX_DELAY, BURST_FORGET_BELOW = 0.5, 10.0, 0.05


def reset_delay(headers: httpx2.Headers, now: datetime | None = None) -> float | None:
    """Return seconds until the limit resets, from Retry-After or else X-RateLimit-Reset (ISO 8601, e.g. 2024-01-01T10:00Z)."""
    delay = parse_retry_after(headers.get("retry-after"), now)
    if delay is not None or not headers.get("x-ratelimit-reset"):
        return delay
    try:
        reset = datetime.fromisoformat(headers["x-ratelimit-reset"])
    except ValueError:
        return None
    reset = reset if reset.tzinfo else reset.replace(tzinfo=UTC)
    return max(0.0, (reset - (now or datetime.now(UTC))).total_seconds())


class JiraVendor(Vendor):
    """Jira's errors: `errorMessages` and the `errors` map; a 429's cause in RateLimit-Reason."""

    def message(self, body: Any) -> str | None:
        """Join errorMessages and the errors map (a map of field -> message, or a bulk call's list)."""
        if not isinstance(body, dict):
            return None
        parts = [str(m) for m in body.get("errorMessages") or []]
        errors = body.get("errors")
        if isinstance(errors, dict):
            parts += [f"{k}: {v}" for k, v in errors.items()]
        elif isinstance(errors, list):
            parts += [json.dumps(e)[:200] for e in errors]
        return "; ".join(parts) or super().message(body)

    def retry_after(self, response: httpx2.Response) -> float | None:
        """Read Retry-After, or else X-RateLimit-Reset."""
        return reset_delay(response.headers)

    def rate_limit_cause(self, response: httpx2.Response) -> str:
        """Read RateLimit-Reason (points-based quotas send it under a beta name)."""
        headers = response.headers
        return headers.get("ratelimit-reason") or headers.get("x-beta-ratelimit-reason") or "unknown"


JIRA = JiraVendor("jira")


class JiraApi:
    """Calls one Jira site; `operation` names the endpoint for metrics and per-endpoint pacing."""

    def __init__(
        self,
        sink: str,
        base_url: str,
        *,
        auth: httpx2.Auth | None,
        headers: dict[str, str],
        cloud: bool,
        timeout: float,
        max_concurrency: int,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ):
        self.sink = sink
        self.cloud = cloud
        self.clock = clock or Clock()
        self._http = HttpClient(sink, JIRA, base_url=base_url, auth=auth, headers=headers, timeout=timeout,
                                transport=transport, observe=self._learn, max_concurrency=max_concurrency)  # fmt: skip
        self._paused_until = 0.0
        self._pause_reason = "unknown"
        self._endpoint_delay: dict[str, float] = {}
        self._pace = 0.0

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        accept: tuple[int, ...] = (),
    ) -> httpx2.Response:
        """Send one request and return the response; raise the typed error otherwise (statuses in `accept` return)."""
        await self._wait_turn(operation)
        try:
            return await self._http.call(operation, method, path, json=json, params=params, files=files, headers=headers, accept=accept)
        except RateLimited as exc:
            if exc.retry_after is None:
                # A 429 without Retry-After or X-RateLimit-Reset: the pause it set is the best retry time to hand on.
                exc.retry_after = max(0.0, self._paused_until - self.clock.now()) or None
            raise

    async def paged(self, operation: str, path: str, list_key: str) -> list[dict]:
        """Read every page of a startAt-paged list (Cloud names the list, Data Center calls it `values`)."""
        items: list[dict] = []
        while True:
            body = (await self.call(operation, "GET", path, params={"startAt": len(items), "maxResults": PAGE_SIZE})).json()
            chunk = body.get(list_key, body.get("values", []))
            items += chunk
            if not chunk or body.get("isLast") or len(items) >= body.get("total", 0):
                return items

    async def search(self, jql: str, fields: list[str], limit: int | None = None) -> list[dict]:
        """Return the issues matching `jql`, following every page up to `limit`."""
        issues: list[dict] = []
        token: str | None = None
        while limit is None or len(issues) < limit:
            if self.cloud:
                # Cloud retired GET/POST /search for /search/jql, paged by token, not startAt:
                # https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/#api-rest-api-3-search-jql-post
                body = {"jql": jql, "fields": fields, "maxResults": PAGE_SIZE, **({"nextPageToken": token} if token else {})}
                page = (await self.call("search", "POST", "search/jql", json=body)).json()
                token = page.get("nextPageToken")
                done = page.get("isLast", True) or not token
            else:
                params = {"jql": jql, "fields": ",".join(fields), "startAt": len(issues), "maxResults": PAGE_SIZE}
                page = (await self.call("search", "GET", "search", params=params)).json()
                done = len(issues) + len(page.get("issues", [])) >= page.get("total", 0)
            issues += page.get("issues", [])
            if done or not page.get("issues"):
                break
        return issues[:limit]

    async def _wait_turn(self, operation: str) -> None:
        """Wait while the site is paused, then for the endpoint's and the near-limit pacing delay."""
        while (wait := self._paused_until - self.clock.now()) > 0:
            if wait > LONGEST_WAIT:
                SINK_CALLS.labels(self.sink, operation, "paused").inc()
                raise RateLimited(f"jira {operation}: site paused by {self._pause_reason}", retry_after=wait, cause=self._pause_reason)
            await self.clock.sleep(wait)
        delay = self._endpoint_delay.get(operation, 0.0) + self._pace
        if delay > 0:
            await self.clock.sleep(delay)

    def _learn(self, operation: str, response: httpx2.Response) -> None:
        """Adjust pacing from the rate-limit headers of one response."""
        headers = response.headers
        self._pace = NEAR_LIMIT_PACE if headers.get("x-ratelimit-nearlimit", "").lower() == "true" else 0.0
        if response.status_code != 429:
            self._decay(operation)
            return
        reason = JIRA.rate_limit_cause(response)
        if reason in SITE_WIDE_REASONS:
            pause = reset_delay(headers)
            self._paused_until = max(self._paused_until, self.clock.now() + (DEFAULT_PAUSE if pause is None else pause))
            self._pause_reason = reason
        elif reason == BURST_REASON:
            current = self._endpoint_delay.get(operation, 0.0)
            self._endpoint_delay[operation] = min(BURST_MAX_DELAY, max(BURST_FIRST_DELAY, current * 2))
        # jira-per-issue-on-write and unknown reasons: nothing site-wide; the 429 is raised and the job waits.

    def _decay(self, operation: str) -> None:
        delay = self._endpoint_delay.get(operation)
        if delay is None:
            return
        if delay / 2 < BURST_FORGET_BELOW:
            del self._endpoint_delay[operation]
        else:
            self._endpoint_delay[operation] = delay / 2

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()
