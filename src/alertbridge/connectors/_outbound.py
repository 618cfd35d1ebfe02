"""What the chat notifiers share on the way out: pacing per channel, and webhooks whose URL is the secret.

Slack allows one message a second per channel, Teams four requests a second
per webhook. Each call reserves the next free slot of its channel before it
waits, so concurrent workers sending to one channel queue up instead of all
meeting a 429. A 429 pushes the channel's next slot back by the vendor's
Retry-After. A wait longer than ``longest_wait`` is not slept here: it is
raised as ``RateLimited`` so the core reschedules the job and the worker is
free for other channels.
"""

from __future__ import annotations

from typing import Any

import httpx2

from ..errors import ConnectorError, RateLimited
from ._http import Clock, HttpClient

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
            raise RateLimited(f"{self.vendor}: paused for {wait:.0f}s after a 429", retry_after=wait, cause="paced")
        self._next[key] = slot + self.interval
        if wait > 0:
            await self.clock.sleep(wait)

    def back_off(self, key: str, seconds: float | None) -> None:
        """Keep this key quiet for `seconds` (a 429's Retry-After; one interval when it gave none)."""
        self._next[key] = max(self._next.get(key, 0.0), self.clock.now() + (self.interval if seconds is None else seconds))


async def post_paced(client: HttpClient, pacer: Pacer, key: str, operation: str, url: str, body: dict[str, Any]) -> httpx2.Response:
    """POST a JSON body in the key's turn; a 429 keeps the key quiet for its Retry-After."""
    await pacer.turn(key)
    try:
        return await client.call(operation, "POST", url, json=body)
    except RateLimited as exc:
        pacer.back_off(key, exc.retry_after)
        raise


async def post_webhook(client: HttpClient, pacer: Pacer, url: str, body: dict[str, Any]) -> httpx2.Response:
    """POST to a webhook whose URL is the credential: paced per webhook, and no error ever quotes the URL."""
    try:
        return await post_paced(client, pacer, url, "webhook", url, body)
    except ConnectorError as exc:
        text = str(exc).replace(url, "<webhook>")
        path = httpx2.URL(url).path
        if len(path) > 1:  # the path is where the secret lives (/services/T…/B…/xyz, /workflows/…)
            text = text.replace(path, "<webhook>")
        exc.args = (text,)
        raise
