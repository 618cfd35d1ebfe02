"""What the notifiers share on the way out: one deadline per call, pacing per channel, webhooks whose URL is the secret.

Pacing is for vendors that limit messages per channel (Slack 1/s, Teams 4/s per webhook).

Each call reserves the next free slot of its key before it waits, so concurrent
workers sending to one channel queue up instead of all meeting a 429. A 429
pushes the key's next slot back by the vendor's Retry-After. A wait longer than
``longest_wait`` is not slept here: it is raised as ``RateLimited`` so the core
reschedules the job and the worker is free for other channels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import httpx2

from ..errors import ConnectorError, RateLimited, Retryable
from ._http import send
from ._jira_api import Clock

LONGEST_WAIT = 30.0


class Pacer:
    """Space calls to one key at least `interval` seconds apart."""

    def __init__(self, vendor: str, interval: float, clock: Clock | None = None, longest_wait: float = LONGEST_WAIT):
        self.vendor = vendor
        self.interval = interval
        self.clock = clock or Clock()
        self.longest_wait = longest_wait
        self._next: dict[str, float] = {}

    async def turn(self, key: str) -> None:
        """Wait for this key's next slot; raise RateLimited when it is further away than `longest_wait`."""
        now = self.clock.now()
        slot = max(now, self._next.get(key, 0.0))
        wait = slot - now
        if wait > self.longest_wait:
            raise RateLimited(f"{self.vendor}: paused for {wait:.0f}s after a 429", retry_after=wait, reason="paced")
        self._next[key] = slot + self.interval
        if wait > 0:
            await self.clock.sleep(wait)

    def back_off(self, key: str, seconds: float | None) -> None:
        """Keep this key quiet for `seconds` (a 429's Retry-After; one interval when it gave none)."""
        self._next[key] = max(self._next.get(key, 0.0), self.clock.now() + (self.interval if seconds is None else seconds))


async def send_within(call: Awaitable[httpx2.Response], *, vendor: str, seconds: float) -> httpx2.Response:
    """Send one call under one deadline for all of it (httpx bounds each phase, an in-process transport none)."""
    try:
        async with asyncio.timeout(seconds):
            return await send(call, vendor=vendor)
    except TimeoutError:
        raise Retryable(f"{vendor}: no answer within {seconds}s") from None


async def post_webhook(client: httpx2.AsyncClient, url: str, body: dict[str, Any], *, vendor: str, pacer: Pacer, seconds: float) -> httpx2.Response:
    """POST a JSON body to a webhook whose URL is the credential, paced, under a deadline; errors never quote the URL."""
    await pacer.turn(url)
    try:
        return await send_within(client.post(url, json=body), vendor=vendor, seconds=seconds)
    except RateLimited as exc:
        pacer.back_off(url, exc.retry_after)
        _redact(exc, url)
        raise
    except ConnectorError as exc:
        _redact(exc, url)
        raise


def _redact(error: ConnectorError, url: str) -> None:
    text = str(error).replace(url, "<webhook>")
    path = httpx2.URL(url).path
    if len(path) > 1:  # the path is where the webhook's secret lives (/services/T…/B…/xyz, /workflows/…?sig=)
        text = text.replace(path, "<webhook>")
    error.args = (text,)
