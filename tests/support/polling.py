"""Drive a PollRunner and read what it stored, for the poller tests."""

from __future__ import annotations

from sqlalchemy import select

from alertbridge.pipeline.poll import PollRunner
from alertbridge.store import Store
from alertbridge.store.tables import inbox


async def stored(store: Store) -> list[str]:
    """Return the delivery ids (vendor item ids) in the inbox, in arrival order."""
    async with store.read() as conn:
        return [row.delivery_id for row in await conn.execute(select(inbox.c.delivery_id).order_by(inbox.c.id))]


async def run_until_caught_up(runner: PollRunner, limit: int = 30) -> list[float]:
    """Step the runner until it says to wait (at most `limit` steps); return every wait it returned."""
    waits: list[float] = []
    while not waits or waits[-1] == 0.0:
        if len(waits) == limit:
            raise AssertionError(f"the poller never caught up in {limit} steps")
        waits.append(await runner.step())
    return waits


async def drain(runner: PollRunner, limit: int = 30) -> float:
    """Step until the runner says to wait; return that wait."""
    return (await run_until_caught_up(runner, limit))[-1]
