"""Latency, rate limiting and fault injection for the emulators, as one ASGI middleware.

Settings are read on every request, so tests and `POST /_sandbox/faults` can
change them while the server runs. Rate limiting mimics Jira Cloud:
https://developer.atlassian.com/cloud/jira/platform/rate-limiting/
"""

import asyncio
import json
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._jira_state import JiraState

NEAR_LIMIT_SHARE = 0.2  # Jira adds X-RateLimit-NearLimit when less than 20% of the budget remains
PROXY_ERROR_PAGE = (
    "<html><head><title>{status} Service Unavailable</title></head>"
    "<body><h1>{status} Service Unavailable</h1><p>The server is temporarily unable to service your request.</p>"
    "</body></html>"
)


@dataclass
class TokenBucket:
    """Refills `rate` tokens a second up to one second's worth; each request takes one."""

    rate: float
    tokens: float
    refilled_at: float

    @property
    def capacity(self) -> int:
        return max(1, math.ceil(self.rate))

    def take(self) -> bool:
        """Take a token if one is there; tell whether it was."""
        moment = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (moment - self.refilled_at) * self.rate)
        self.refilled_at = moment
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def seconds_to_next_token(self) -> float:
        """Return how long until a request would be let through again."""
        return max(0.0, (1 - self.tokens) / self.rate)


class FaultInjection:
    """ASGI middleware: record every API call, then apply the rate limit, injected faults and latency."""

    def __init__(self, app: ASGIApp, state: JiraState, exempt_prefix: str = "/_sandbox") -> None:
        self.app = app
        self.state = state
        self.exempt_prefix = exempt_prefix
        self.random = random.Random(state.faults.seed)
        self.bucket: TokenBucket | None = None
        self.resets_seen = state.resets

    def _restart_after_reset(self) -> None:
        # After POST /_sandbox/reset a seeded run must replay the same faults from the start.
        if self.resets_seen != self.state.resets:
            self.resets_seen = self.state.resets
            self.random = random.Random(self.state.faults.seed)
            self.bucket = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_prefix):
            await self.app(scope, receive, send)
            return
        self._restart_after_reset()
        send = self._recording(scope, send)
        settings = self.state.faults
        bucket = self._current_bucket()
        if bucket is not None and not bucket.take():
            await _respond(send, 429, _json_error("Rate limit exceeded."), self._limited_headers(bucket))
            return
        extra_headers = self._budget_headers(bucket)
        if settings.fail_rate and self.random.random() < settings.fail_rate:
            kind = self.random.random()
            if kind < 2 / 3:
                headers = {"Retry-After": "1", "RateLimit-Reason": settings.rate_limit_reason}
                await _respond(send, 429, _json_error("Rate limit exceeded."), headers)
                return
            if kind < 5 / 6:
                await self._server_error(send)
                return
            # A hung request still does its work; only the answer comes late. A client that
            # times out on a create has therefore created the issue and must find it by label.
            send = _delayed(send, settings.hang_seconds)
        if settings.latency_ms:
            await asyncio.sleep(settings.latency_ms / 1000)
        await self.app(scope, receive, _with_headers(send, extra_headers))

    def _recording(self, scope: Scope, send: Send) -> Send:
        async def record_and_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.state.calls.append((scope["method"], scope["path"], message["status"]))
            await send(message)

        return record_and_send

    def _current_bucket(self) -> TokenBucket | None:
        rate = self.state.faults.rate_limit
        if rate is None:
            self.bucket = None
        elif self.bucket is None or self.bucket.rate != rate:
            self.bucket = TokenBucket(rate, max(1, math.ceil(rate)), time.monotonic())
        return self.bucket

    def _limited_headers(self, bucket: TokenBucket) -> dict[str, str]:
        wait = bucket.seconds_to_next_token()
        reset_at = datetime.now(UTC) + timedelta(seconds=wait)
        return {
            "Retry-After": str(max(1, math.ceil(wait))),
            "X-RateLimit-Limit": str(bucket.capacity),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": reset_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "RateLimit-Reason": self.state.faults.rate_limit_reason,
        }

    def _budget_headers(self, bucket: TokenBucket | None) -> dict[str, str]:
        if bucket is None:
            return {}
        remaining = math.floor(bucket.tokens)
        headers = {"X-RateLimit-Limit": str(bucket.capacity), "X-RateLimit-Remaining": str(remaining)}
        if remaining < NEAR_LIMIT_SHARE * bucket.capacity:
            headers["X-RateLimit-NearLimit"] = "true"
        return headers

    async def _server_error(self, send: Send) -> None:
        status = self.random.choice([500, 503])
        if self.random.random() < 0.5:  # a proxy in front of Jira answers with HTML, not JSON
            page = PROXY_ERROR_PAGE.format(status=status).encode()
            await _respond(send, status, page, {"Content-Type": "text/html; charset=utf-8"})
        else:
            await _respond(send, status, _json_error("Internal server error"))


def _json_error(message: str) -> bytes:
    return json.dumps({"errorMessages": [message], "errors": {}}).encode()


async def _respond(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    all_headers = {"Content-Type": "application/json;charset=UTF-8", **(headers or {})}
    raw_headers = [(name.lower().encode(), value.encode()) for name, value in all_headers.items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _delayed(send: Send, seconds: float) -> Send:
    async def send_late(message: Message) -> None:
        if message["type"] == "http.response.start":
            await asyncio.sleep(seconds)
        await send(message)

    return send_late


def _with_headers(send: Send, headers: dict[str, str]) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start" and headers:
            extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return send_with_headers
