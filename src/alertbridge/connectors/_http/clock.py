"""Monotonic time and sleep for clients that pace themselves (Jira's rate limits, a chat channel's), replaceable in tests."""

from __future__ import annotations

import asyncio
import time


class Clock:
    """Monotonic time and sleep, replaceable in tests so no test waits on the wall clock."""

    def now(self) -> float:
        """Return monotonic seconds."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` without blocking the event loop."""
        await asyncio.sleep(seconds)
