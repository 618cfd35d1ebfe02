"""What the notification emulators (Slack, Teams, PagerDuty, Confluence) add to the shared fault layer (faults.py).

The shared middleware gives every emulator latency, a rate limit, random
faults and hangs. A notification test needs two more things, asked for by
each endpoint through ``ChannelFaults.gate``:

- faults in a set order: ``fail_next`` answers the next requests with these
  statuses and does nothing; ``hang_next`` lets the next requests *do their
  work* and holds the answer back ``hang_seconds`` — a client that times out
  meanwhile has sent its message and must not send it twice;
- limits per channel, as the vendors publish them (Slack one message a second
  per channel, Teams 4 a second per webhook, PagerDuty per routing key):
  ``limits`` is fixed windows of (seconds, requests) per key; over one, a 429
  with ``Retry-After``.

``GET /_sandbox/state`` and ``POST /_sandbox/faults`` (any knob) come with ``add_admin``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .faults import Faults, Refusals

@dataclass
class ChannelFaults(Faults):
    """The shared knobs, faults in a set order, and limits per channel."""

    fail_next: list[int] = field(default_factory=list)
    hang_next: int = 0
    limits: list[tuple[float, int]] = field(default_factory=list)  # (window seconds, requests allowed in it), per key
    rate_limited: int = 0  # 429s given for a channel limit
    _windows: dict[tuple[str, float], tuple[float, int]] = field(default_factory=dict, repr=False, compare=False)

    def settings(self) -> dict:
        """Return the knobs as JSON."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_") and f.name != "clock"}

    def change(self, body: dict) -> None:
        """Apply `POST /_sandbox/faults` settings; raise ValueError naming unknown ones."""
        known = set(self.settings()) - {"rate_limited", "resets"}
        if unknown := set(body) - known:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
        for name, value in body.items():
            setattr(self, name, [tuple(limit) for limit in value] if name == "limits" else value)
        self._windows.clear()

    def _over_limit(self, key: str) -> float | None:
        """Count one request for `key`; return seconds until its window resets when it is over a limit."""
        now = self.clock()
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

    async def gate(self, key: str, refusals: Refusals) -> Response | None:
        """Return the fault to answer with instead of doing the work (in the vendor's shape), or None to go on."""
        if (wait := self._over_limit(key)) is not None:
            self.rate_limited += 1
            return refusal(refusals, 429, "rate limited", {"Retry-After": str(max(1, math.ceil(wait)))})
        if self.fail_next:
            status = self.fail_next.pop(0)
            return refusal(refusals, status, "injected fault", {"Retry-After": "1"} if status == 429 else {})
        return None

    async def answer_late(self) -> None:
        """After the work is done: hold the answer back when a hang is due."""
        if self.hang_next > 0:
            self.hang_next -= 1
            await asyncio.sleep(self.hang_seconds)


def add_admin(app: FastAPI, faults: ChannelFaults, view: Callable[[], dict]) -> None:
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


def refusal(refusals: Refusals, status: int, message: str, headers: dict[str, str]) -> Response:
    """Answer an error in the vendor's shape (the same one the shared middleware uses)."""
    body, shape = refusals.error(status, message)
    return Response(content=body, status_code=status, headers=shape | headers)
