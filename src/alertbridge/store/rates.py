"""The call budget of each sink, shared by every process on one PostgreSQL database (jobs/budget.py).

One row per sink holds the sink's next free send time (GCRA's "theoretical
arrival time", wall-clock seconds). Reserving ``count`` send times is one
statement: push it forward by ``count × interval`` from whichever is later, the
row or now, and return it (the first reservation makes the row); the reservation
is the ``count`` times just before.
The row lock makes processes take turns; a process that dies holding send times
only leaves them unused, which errs on the side of fewer calls.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from sqlalchemy import Column, Float, String, Table, func
from sqlalchemy.dialects.postgresql import insert

from . import Store
from .tables import metadata

sink_rates = Table(
    "sink_rates",
    metadata,
    Column("sink", String(200), primary_key=True),
    Column("next_free", Float, nullable=False),  # wall-clock seconds: the earliest moment the next call may leave
)


class Slots(ABC):
    """Where a sink's send times come from: this process alone (jobs/budget.py), or the database."""

    @abstractmethod
    async def reserve(self, count: int, interval: float, now: float) -> float:
        """Reserve `count` send times `interval` apart, none before `now`; return the first."""


class SharedSlots(Slots):
    """Send times of one sink, shared through the database by every process (PostgreSQL)."""

    def __init__(self, store: Store, sink: str):
        self.store = store
        self.sink = sink

    async def reserve(self, count: int, interval: float, now: float) -> float:
        """Reserve `count` send times `interval` apart, none before `now` (wall clock); return the first."""
        # One upsert, not "insert once, then update": two reservations of one process racing on a new sink would
        # otherwise find the row its first insert had not committed yet (NoResultFound).
        upsert = insert(sink_rates).values(sink=self.sink, next_free=now + count * interval)
        upsert = upsert.on_conflict_do_update(
            index_elements=[sink_rates.c.sink],
            set_={"next_free": func.greatest(sink_rates.c.next_free, now) + count * interval},
        ).returning(sink_rates.c.next_free)
        async with self.store.tx() as conn:
            last = (await conn.execute(upsert)).scalar_one()
        return last - count * interval
