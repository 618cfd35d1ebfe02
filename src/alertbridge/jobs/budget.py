"""A call budget per sink (`rate_limit: 10/s`): the hub never sends a sink more calls than that, all its workers together.

The budget hands out send times, one every ``1/rate`` seconds (GCRA, the generic
cell rate algorithm: a single "theoretical arrival time" that each reservation
pushes forward). Calls wait in line by rank — new Critical/High tickets first,
repeat comments last, with aging so no call waits for ever (jobs/queue.py ``place``) —
and each send time goes to the best call waiting when it comes, so a Critical create
overtakes comments queued shortly before it.

Send times come from ``Slots``: in memory for one process (SQLite), or from a
row per sink in the database on PostgreSQL (store/rates.py), so every process
shares one budget. A process reserves a few send times per round trip: at most
half a second's worth, and never more than calls are waiting. A send time that
passed before its call could leave (the process was busy) is left unused rather
than sent late, so calls never bunch: at most ``rate`` leave in any second.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import math
import time

import structlog

from .. import failpoints
from ..connectors._http import Clock
from ..connectors._http.gate import CallGate
from ..store import Store
from ..store.rates import SharedSlots, Slots
from .queue import place

log = structlog.get_logger("alertbridge.jobs")

RESERVE_SECONDS = 0.5  # the most send times reserved at once, in seconds of the budget


class WallClock(Clock):
    """Wall-clock seconds: what send times shared by processes (on several machines) are counted in."""

    def now(self) -> float:
        """Return seconds since the epoch."""
        return time.time()


class LocalSlots(Slots):
    """Send times for one process."""

    def __init__(self) -> None:
        self.next_free = 0.0

    async def reserve(self, count: int, interval: float, now: float) -> float:
        """Reserve `count` send times after the last one handed out."""
        first = max(self.next_free, now)
        self.next_free = first + count * interval
        return first


class SinkBudget:
    """One sink's budget: calls wait in line by rank, one leaves every 1/rate seconds."""

    def __init__(self, sink: str, rate: float, slots: Slots, clock: Clock):
        self.sink = sink
        self.rate = rate
        self.slots = slots
        self.clock = clock
        self._line: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._dispenser: asyncio.Task | None = None

    async def take(self, rank: int) -> None:
        """Wait for this call's send time."""
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._line, (place(rank, self.clock.now()), next(self._order), turn))
        if self._dispenser is None or self._dispenser.done():
            self._dispenser = asyncio.create_task(self._dispense(), name=f"budget-{self.sink}")
        await turn

    def waiting(self) -> int:
        """Count the calls in line (cancelled ones aside)."""
        return sum(not turn.done() for _, _, turn in self._line)

    async def _dispense(self) -> None:
        interval = 1.0 / self.rate
        lead = 0.0  # how long the last reservation took: ask for send times that will not have passed when it answers
        while self.waiting():
            count = min(self.waiting(), max(1, math.floor(self.rate * RESERVE_SECONDS)))
            asked = self.clock.now()
            try:
                first = await self.slots.reserve(count, interval, asked + lead)
            except Exception:  # the database is away: the calls wait, they are not sent over budget
                log.warning("reserving send times failed; retrying", sink=self.sink, exc_info=True)
                await self.clock.sleep(1.0)
                continue
            lead = min(1.0, self.clock.now() - asked)
            for number in range(count):
                send_at = first + number * interval
                if send_at > self.clock.now():
                    await self.clock.sleep(send_at - self.clock.now())
                now = self.clock.now()  # read after the sleep too: on a busy machine a sleep can overrun by a lot
                if now - send_at > interval / 2:
                    continue  # a send time that passed while this process was busy goes unused: sent late, calls would bunch
                if not self._admit_best():
                    break  # nobody left in line: the rest of the reserved times go unused, never over budget
                failpoints.note("budget.send", now)

    def _admit_best(self) -> bool:
        while self._line:
            _, _, turn = heapq.heappop(self._line)
            if not turn.done():  # a cancelled call (a job cut at shutdown) gives its place up
                turn.set_result(None)
                return True
        return False

    async def aclose(self) -> None:
        """Stop handing out send times."""
        if self._dispenser is not None:
            self._dispenser.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispenser


class JobGate(CallGate):
    """The gate of one job's task: its calls to a budgeted sink wait for their send time, at the job's rank."""

    def __init__(self, budgets: dict[str, SinkBudget], rank: int):
        self.budgets = budgets
        self.rank = rank

    async def admit(self, connector: str) -> None:
        """Wait for the connector's budget, if it has one."""
        budget = self.budgets.get(connector)
        if budget is not None:
            await budget.take(self.rank)


def sink_budgets(rates: dict[str, float | None], store: Store) -> dict[str, SinkBudget]:
    """Build the budget of every sink with a `rate_limit`: shared through the database on PostgreSQL, in memory on SQLite."""
    if store.is_sqlite:  # one process writes a SQLite file: its budget is the whole budget
        return {sink: SinkBudget(sink, rate, LocalSlots(), Clock()) for sink, rate in rates.items() if rate}
    return {sink: SinkBudget(sink, rate, SharedSlots(store, sink), WallClock()) for sink, rate in rates.items() if rate}
