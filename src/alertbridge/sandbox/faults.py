"""Latency, rate limiting and fault injection for every emulator, as one vendor-neutral ASGI middleware.

Each emulator adds ``FaultInjection`` with its own ``Faults`` (the knobs) and a
``Refusals`` (how its vendor says no: error body, rate-limit headers). The knobs
are read on every request, so tests and ``POST /_sandbox/faults`` can change
them while the server runs:

    latency_ms        added to every API call
    rate_limit        requests per second (a token bucket of one second's worth): over it, 429
    rate_limit_every  every n-th counted call gets a 429 with Retry-After (per counter: a tenant, an endpoint)
    unauthorized      the next n counted calls get a 401, as if the token had been revoked early
    fail_rate         share of calls that fail: 2/3 429, 1/6 5xx (half of them a proxy's HTML page), 1/6 hang
    hang_seconds      how long a hung call's answer is held back (the call itself does its work)

Jira Cloud's rate limits are the model for the headers:
https://developer.atlassian.com/cloud/jira/platform/rate-limiting/
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROXY_ERROR_PAGE = (
    "<html><head><title>{status} Service Unavailable</title></head>"
    "<body><h1>{status} Service Unavailable</h1><p>The server is temporarily unable to service your request.</p>"
    "</body></html>"
)


@dataclass
class Faults:
    """The fault knobs every emulator has; a vendor's settings may add its own."""

    latency_ms: float = 0  # added to every API call
    fail_rate: float = 0.0  # fraction of calls that fail: 2/3 429, 1/6 5xx, 1/6 hang
    hang_seconds: float = 30  # how long a "hung" request's answer is held back
    rate_limit: float | None = None  # max requests per second (token bucket); None = unlimited
    rate_limit_every: int | None = None  # every n-th counted call gets a 429; None = never
    retry_after: int = 2  # the Retry-After of an every-n-th 429
    unauthorized: int = 0  # how many of the next counted calls get a 401
    seed: int | None = None  # RNG seed for fault injection
    resets: int = field(default=0, compare=False)  # bumped by a state reset: a seeded run replays the same faults
    calls: list[tuple[str, str, int]] = field(default_factory=list, compare=False, repr=False)  # (method, path, status) of every API call
    # Monotonic seconds, read by the token bucket (and an emulator's own timing, such as Jira's search lag). A test
    # gives the emulator and the client under test one fake clock, so rate limits and lags follow it, not the wall.
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)


@dataclass
class TokenBucket:
    """Refills `rate` tokens a second up to one second's worth; each request takes one."""

    rate: float
    tokens: float
    refilled_at: float

    @property
    def capacity(self) -> int:
        """Return how many requests the bucket holds: one second's worth, at least one."""
        return max(1, math.ceil(self.rate))

    def take(self, moment: float) -> bool:
        """Take a token if one is there at `moment` (monotonic seconds); tell whether it was."""
        self.tokens = min(self.capacity, self.tokens + (moment - self.refilled_at) * self.rate)
        self.refilled_at = moment
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def seconds_to_next_token(self) -> float:
        """Return how long until a request would be let through again."""
        return max(0.0, (1 - self.tokens) / self.rate)


class Refusals:
    """How a vendor's API says no; an emulator subclasses what its vendor does differently."""

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Return the body and headers of an error answer (429 or 5xx) in the vendor's shape."""
        return json.dumps({"message": message}).encode(), {"Content-Type": "application/json"}

    def throttled(self, faults: Faults, wait: float, bucket: TokenBucket | None) -> dict[str, str]:
        """Return the headers of a 429: by default Retry-After, and the bucket's figures when one is set."""
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        if bucket is not None:
            reset_at = datetime.now(UTC) + timedelta(seconds=wait)
            headers |= {"X-RateLimit-Limit": str(bucket.capacity), "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": reset_at.isoformat(timespec="seconds").replace("+00:00", "Z")}  # fmt: skip
        return headers

    def budget(self, bucket: TokenBucket) -> dict[str, str]:
        """Return the rate-limit headers of an answer that got through."""
        return {"X-RateLimit-Limit": str(bucket.capacity), "X-RateLimit-Remaining": str(math.floor(bucket.tokens))}


def api_path(scope: Scope) -> str:
    """Return the request's path below the emulator's mount point (the sandbox serves vendors under /<type>)."""
    return scope["path"][len(scope.get("root_path", "")):] or "/"


def every_call(path: str) -> str | None:
    """Count every API call in one counter; /_sandbox admin calls are not API calls."""
    return None if path.startswith("/_sandbox") else "all"


class FaultInjection:
    """ASGI middleware: record every API call, then apply the rate limits, injected faults and latency."""

    def __init__(
        self, app: ASGIApp, faults: Faults, refusals: Refusals | None = None, counted: Callable[[str], str | None] = every_call
    ) -> None:
        self.app = app
        self.faults = faults
        self.refusals = refusals or Refusals()
        self.counted = counted
        self.counts: dict[str, int] = {}
        self.random = random.Random(faults.seed)
        self.bucket: TokenBucket | None = None
        self.resets_seen = faults.resets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = api_path(scope) if scope["type"] == "http" else ""
        if scope["type"] != "http" or path.startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        self._restart_after_reset()
        send = self._recording(scope["method"], path, send)
        faults, bucket = self.faults, self._current_bucket()
        if bucket is not None and not bucket.take(faults.clock()):
            await self._refuse(send, 429, "Rate limit exceeded.", self.refusals.throttled(faults, bucket.seconds_to_next_token(), bucket))
            return
        counted = self._count(path)
        if counted and faults.unauthorized > 0:
            faults.unauthorized -= 1
            await self._refuse(send, 401, "The access token has expired or been revoked.", {})
            return
        if counted and faults.rate_limit_every and self.counts[counted] % faults.rate_limit_every == 0:
            await self._refuse(send, 429, "Too many requests.", self.refusals.throttled(faults, faults.retry_after, None))
            return
        extra_headers = self.refusals.budget(bucket) if bucket is not None else {}
        if faults.fail_rate and self.random.random() < faults.fail_rate:
            kind = self.random.random()
            if kind < 2 / 3:
                await self._refuse(send, 429, "Rate limit exceeded.", self.refusals.throttled(faults, 1, None))
                return
            if kind < 5 / 6:
                await self._server_error(send)
                return
            # A hung request still does its work; only the answer comes late. A client that
            # times out on a create has therefore created the issue and must find it again.
            send = _delayed(send, faults.hang_seconds)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        await self.app(scope, receive, _with_headers(send, extra_headers))

    def _restart_after_reset(self) -> None:
        if self.resets_seen != self.faults.resets:
            self.resets_seen = self.faults.resets
            self.random = random.Random(self.faults.seed)
            self.bucket = None
            self.counts.clear()

    def _count(self, path: str) -> str | None:
        """Count a call in its counter; return the counter's name, None for a call not counted."""
        counter = self.counted(path)
        if counter is not None:
            self.counts[counter] = self.counts.get(counter, 0) + 1
        return counter

    def _recording(self, method: str, path: str, send: Send) -> Send:
        async def record_and_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.faults.calls.append((method, path, message["status"]))
            await send(message)

        return record_and_send

    def _current_bucket(self) -> TokenBucket | None:
        rate = self.faults.rate_limit
        if rate is None:
            self.bucket = None
        elif self.bucket is None or self.bucket.rate != rate:
            self.bucket = TokenBucket(rate, max(1, math.ceil(rate)), self.faults.clock())
        return self.bucket

    async def _refuse(self, send: Send, status: int, message: str, headers: dict[str, str]) -> None:
        body, shape = self.refusals.error(status, message)
        await _respond(send, status, body, shape | headers)

    async def _server_error(self, send: Send) -> None:
        status = self.random.choice([500, 503])
        if self.random.random() < 0.5:  # a proxy in front of the API answers with HTML, not the vendor's JSON
            page = PROXY_ERROR_PAGE.format(status=status).encode()
            await _respond(send, status, page, {"Content-Type": "text/html; charset=utf-8"})
        else:
            await self._refuse(send, status, "Internal server error", {})


async def _respond(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw_headers = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
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
