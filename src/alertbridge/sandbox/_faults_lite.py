"""Faults and rate limits for the notification emulators (Slack, Teams, PagerDuty, Confluence).

Each emulator keeps one ``Faults`` and asks it, per request, whether to answer
with a fault instead of doing the work:

- ``fail_next``: the next requests get these statuses, in order, and do nothing
  (a 503 from a gateway, a 429, a 500);
- ``hang_next``: the next requests *do their work* and answer only after
  ``hang_seconds`` — a client that times out meanwhile has, in fact, sent its
  message, and must not send it twice;
- ``limits``: fixed windows per key (a channel, a webhook, a routing key), as
  the vendors publish them; over the limit a request gets a 429 with
  ``Retry-After``.

Settings may change while the server runs (``POST /_sandbox/faults``).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

ErrorBody = Callable[[int, str, dict[str, str]], Response]
KNOBS = {"fail_next", "hang_next", "hang_seconds", "latency_ms", "limits"}


@dataclass
class Faults:
    """What the emulator does wrong on purpose, and how many requests a key may make per window."""

    fail_next: list[int] = field(default_factory=list)
    hang_next: int = 0
    hang_seconds: float = 30.0
    latency_ms: float = 0.0
    limits: list[tuple[float, int]] = field(default_factory=list)  # (window seconds, requests allowed in it)
    _windows: dict[tuple[str, float], tuple[float, int]] = field(default_factory=dict)
    rate_limited: int = 0

    def settings(self) -> dict:
        """Return the knobs as JSON."""
        return {"fail_next": self.fail_next, "hang_next": self.hang_next, "hang_seconds": self.hang_seconds,
                "latency_ms": self.latency_ms, "limits": [list(limit) for limit in self.limits], "rate_limited": self.rate_limited}

    def change(self, body: dict) -> None:
        """Apply `POST /_sandbox/faults` settings; raise ValueError naming unknown ones."""
        unknown = set(body) - KNOBS
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))} (known: {', '.join(sorted(KNOBS))})")
        for name, value in body.items():
            setattr(self, name, [tuple(limit) for limit in value] if name == "limits" else value)
        self._windows.clear()

    def _over_limit(self, key: str) -> float | None:
        """Count one request for `key`; return seconds until its window resets when it is over a limit."""
        now = time.monotonic()
        wait = None
        for seconds, allowed in self.limits:
            start, used = self._windows.get((key, seconds), (now, 0))
            if now - start >= seconds:
                start, used = now, 0
            if used >= allowed:
                wait = max(wait or 0.0, seconds - (now - start))
            else:
                self._windows[key, seconds] = (start, used + 1)
        return wait

    async def gate(self, key: str, error: ErrorBody) -> Response | None:
        """Return the fault to answer with instead of doing the work, or None to go on."""
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        if (wait := self._over_limit(key)) is not None:
            self.rate_limited += 1
            return error(429, "rate limited", {"Retry-After": str(max(1, math.ceil(wait)))})
        if self.fail_next:
            status = self.fail_next.pop(0)
            headers = {"Retry-After": "1"} if status == 429 else {}
            return error(status, "injected fault", headers)
        return None

    async def answer_late(self) -> None:
        """After the work is done: hold the answer back when a hang is due."""
        if self.hang_next > 0:
            self.hang_next -= 1
            await asyncio.sleep(self.hang_seconds)


def add_admin(app: FastAPI, faults: Faults, view: Callable[[], dict]) -> None:
    """Add GET /_sandbox/state (`view()` plus the fault settings) and POST /_sandbox/faults to an emulator."""

    @app.get("/_sandbox/state")
    async def admin_state() -> dict:
        """Show what the emulator holds and its fault settings."""
        return {**view(), "faults": faults.settings()}

    @app.post("/_sandbox/faults")
    async def admin_faults(request: Request) -> Response:
        """Change the fault settings while the server runs."""
        try:
            faults.change(json.loads(await request.body()))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(faults.settings())
