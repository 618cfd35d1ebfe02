"""One writer at a time in this process, intake first: SQLite has a single write lock, and who waits for it matters.

Without the gate every writer of the process (intake's group commit, the inbox
processor, job claims and outcomes) would queue in arrival order for the one
write connection, and a request waiting for its 202 would sit behind a whole
processing batch. The gate hands the lock to an urgent waiter (intake) before
any other, so the processor's batches and the workers' updates only ever
delay intake by the unit already running.

While a crowd of requests comes in (a commit of intake leaves ``CROWD`` requests
or more waiting), the other writers wait before they even queue, and the
processor waits before it reads (``defer_to_intake``): the burst is answered
first, on the whole CPU, and the work it causes runs once no request has waited
for ``QUIET``, or fewer than a crowd have for ``REMEMBER`` (a trickle holds no
one up for long). A deferral lasts at most ``DEFER_AT_MOST``; then the others
write undeferred for ``OPEN_FOR`` before the next one can begin, so that under a
load that never pauses processing and jobs still get their share. The gate also
remembers when intake last wrote, so that the processor can keep its units short.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Iterator

CROWD = 16  # requests waiting for their commit at once: a burst, far above a steady few hundred a second at ms each
QUIET = 0.05  # seconds without a request waiting for its commit after which a crowd is over
REMEMBER = 0.25  # seconds a crowd lasts after its last crowded commit while fewer requests wait
DEFER_AT_MOST = 1.0  # one burst of the bench (1,000 requests) at the no-op endpoint's rate on a quiet machine
OPEN_FOR = 0.5  # seconds of undeferred writing after a deferral that reached its bound: a third of a long storm


class WriteGate:
    """An asyncio lock whose urgent waiters are served before the others (each group in arrival order)."""

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[tuple[int, int, asyncio.Future]] = []
        self._arrival = itertools.count()
        self._urgent_at = -1e9  # time.monotonic() of the last urgent hold
        self._requests = 0  # intake's requests waiting for their commit
        self._answered_at = -1e9  # time.monotonic() when the last of them was answered
        self._crowd_since = -1e9  # time.monotonic() when the current deferral began
        self._crowded_at = float("-inf")  # time.monotonic() of the last commit that left a crowd of requests waiting
        self._idle: list[asyncio.Future] = []  # deferred writers waiting for no request to be left waiting

    @property
    def waiting(self) -> int:
        """Count the writers waiting for the gate."""
        return sum(not waiter.done() for _, _, waiter in self._waiters)

    def urgent_within(self, seconds: float) -> bool:
        """Tell whether an urgent writer (intake) asked for the gate in the last `seconds`."""
        return time.monotonic() - self._urgent_at <= seconds

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        """Count one intake request as waiting for its commit for the block."""
        self._requests += 1
        try:
            yield
        finally:
            self._requests -= 1
            if not self._requests:
                self._answered_at = time.monotonic()
            if self._idle and self._requests < CROWD:  # no crowd now: the deferred writers look again
                idle, self._idle = self._idle, []
                for waiter in idle:
                    if not waiter.done():
                        waiter.set_result(None)

    def committed(self) -> None:
        """Note that intake committed: the requests waiting then (this commit's and the next's) may make a crowd."""
        if self._requests < CROWD:
            return
        now = time.monotonic()
        if now >= self._crowd_since + DEFER_AT_MOST + OPEN_FOR:
            self._crowd_since = now  # a deferral may begin: the last one is over, and so is the others' turn after it
        self._crowded_at = now

    def deferred_for(self) -> float:
        """Return how long a writer other than intake should still wait for the crowd of requests (0: not at all)."""
        if self._crowded_at < self._crowd_since:
            return 0.0  # no crowd since the deferral could begin
        until = self._crowd_since + DEFER_AT_MOST
        if self._requests < CROWD:
            # Fewer wait now: between two cohorts of a burst (the senders send the next), or the crowd has thinned
            # to a trickle, which must not hold processing up for long.
            until = min(until, self._crowded_at + REMEMBER)
            if not self._requests:
                until = min(until, self._answered_at + QUIET)
        return max(0.0, until - time.monotonic())

    async def defer_to_intake(self) -> None:
        """Wait while a crowd of requests is being answered, at most until the deferral's bound."""
        while (wait := self.deferred_for()) > 0:
            waiter = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, wait)

    @contextlib.asynccontextmanager
    async def hold(self, *, urgent: bool = False) -> AsyncIterator[None]:
        """Hold the gate for the block; urgent holders go ahead of every other waiter, the others defer to a crowd."""
        if urgent:
            self._urgent_at = time.monotonic()
        else:
            await self.defer_to_intake()
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
