"""One writer at a time in this process, intake first: SQLite has a single write lock, and who waits for it matters.

Without the gate every writer of the process (intake's group commit, the inbox
processor, job claims and outcomes) would queue in arrival order for the one
write connection, and a request waiting for its 202 would sit behind a whole
processing batch. The gate hands the lock to an urgent waiter (intake) before
any other, so the processor's batches and the workers' updates only ever
delay intake by the unit already running. The gate also remembers when intake last
wrote, so that the processor can keep its units short while a burst comes in.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import AsyncIterator


class WriteGate:
    """An asyncio lock whose urgent waiters are served before the others (each group in arrival order)."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._arrival = itertools.count()
        self._urgent_at = -1e9  # time.monotonic() of the last urgent hold

    @property
    def waiting(self) -> int:
        """Count the writers waiting for the gate."""
        return sum(not waiter.done() for _, _, waiter in self._waiters)

    def urgent_within(self, seconds: float) -> bool:
        """Tell whether an urgent writer (intake) asked for the gate in the last `seconds`."""
        return time.monotonic() - self._urgent_at <= seconds

    @contextlib.asynccontextmanager
    async def hold(self, *, urgent: bool = False) -> AsyncIterator[None]:
        """Hold the gate for the block; urgent holders go ahead of every other waiter."""
        if urgent:
            self._urgent_at = time.monotonic()
        await self._acquire(0 if urgent else 1)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: int) -> None:
        if not self._held:  # free: every waiter left in the heap was cancelled (a release hands over to a live one)
            self._held = True
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (rank, next(self._arrival), waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the gate was handed to us as we were cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)  # handed over: the gate stays held
                return
        self._held = False
