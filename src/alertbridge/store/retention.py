"""Retention: prune what the hub no longer needs, in small batches, one node at a time.

At 100,000 alerts a day nothing may be kept forever. What goes, and when:

- raw inbox **bodies** of processed rows after `inbox_bodies` (the row stays, so a webhook or poller delivery id
  seen again is still recognised as a duplicate), and the processed rows themselves after `inbox_rows`;
- **alerts of closed cases** after `closed_case_alerts` (the case row, its ticket reference and its counters stay,
  so a repeat still finds the case and its ticket);
- **finished jobs** (done or discarded) after `finished_jobs`; dead letters stay until an operator discards them;
- expired enrichment cache entries, and call budgets of past days.

Each batch is one short transaction (`batch` rows), so intake never waits long behind the pruner. A lease row makes
one node at a time prune on a shared PostgreSQL database. On SQLite, freed pages are given back to the file system
with `PRAGMA incremental_vacuum` when the file uses `auto_vacuum=INCREMENTAL` (new databases do; `alertbridge db
vacuum` converts an older file once).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import Table, and_, delete, select, update
from sqlalchemy.engine import make_url

from . import Store
from .leases import take_lease
from .tables import alerts, budgets, cases, enrichment_cache, inbox, jobs

log = structlog.get_logger("alertbridge.retention")
LEASE = "retention"


@dataclass(frozen=True)
class Horizons:
    """How long each kind of row is kept, in seconds."""

    inbox_bodies: float
    inbox_rows: float
    closed_case_alerts: float
    finished_jobs: float
    batch: int = 1000


class Pruner:
    """Delete rows past their horizon, a batch per transaction."""

    def __init__(self, store: Store, horizons: Horizons, holder: str, lease: float = 600.0):
        self.store = store
        self.horizons = horizons
        self.holder = holder
        self.lease = lease

    async def prune(self, now: float | None = None) -> dict[str, int]:
        """Prune once if this node holds the retention lease; return the rows changed per kind."""
        now = time.time() if now is None else now
        if not await take_lease(self.store, LEASE, self.holder, self.lease):
            return {}
        h = self.horizons
        done_before = now - h.finished_jobs
        closed = select(cases.c.id).where(cases.c.state == "closed", cases.c.closed_at < now - h.closed_case_alerts)
        today = datetime.fromtimestamp(now, UTC).date()
        counts = {  # rows first, then bodies: no body is blanked in a row about to go
            "inbox_rows": await self._batched_delete(inbox, and_(inbox.c.state == "done", inbox.c.received_at < now - h.inbox_rows)),
            "inbox_bodies": await self._batched_update(
                inbox, and_(inbox.c.state == "done", inbox.c.received_at < now - h.inbox_bodies, inbox.c.body != b""),
                {"body": b""}),
            "alerts": await self._batched_delete(alerts, alerts.c.case_id.in_(closed)),
            "jobs": await self._batched_delete(jobs, and_(jobs.c.state.in_(("done", "discarded")), jobs.c.finished_at < done_before)),
            "enrichment_cache": await self._batched_delete(enrichment_cache, enrichment_cache.c.expires_at < now, key=enrichment_cache.c.key),
        }
        async with self.store.tx() as conn:
            old_day = (today - timedelta(days=7)).isoformat()
            counts["budgets"] = (await conn.execute(delete(budgets).where(budgets.c.day < old_day))).rowcount
        if any(counts.values()):
            log.info("pruned rows past their retention", **counts)
            await self._give_back_space()
        return counts

    async def _batched_delete(self, table: Table, where, key=None) -> int:
        key = table.c.id if key is None else key
        return await self._batches(lambda ids: delete(table).where(key.in_(ids)), select(key).where(where))

    async def _batched_update(self, table: Table, where, values: dict) -> int:
        return await self._batches(lambda ids: update(table).where(table.c.id.in_(ids)).values(**values), select(table.c.id).where(where))

    async def _batches(self, statement, candidates) -> int:
        total = 0
        while True:
            async with self.store.tx() as conn:
                ids = list((await conn.execute(candidates.limit(self.horizons.batch))).scalars())
                if ids:
                    await conn.execute(statement(ids))
            total += len(ids)
            if len(ids) < self.horizons.batch:
                return total
            await asyncio.sleep(0)  # let intake and workers in between batches

    async def _give_back_space(self) -> None:
        if not self.store.is_sqlite:
            return  # PostgreSQL's autovacuum reuses the space; nothing to plan here
        await asyncio.to_thread(_incremental_vacuum, make_url(self.store.url).database)


def _incremental_vacuum(path: str) -> None:
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    try:
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:  # INCREMENTAL
            # executescript steps the pragma to its end; execute() would free a single page and stop.
            conn.executescript("PRAGMA incremental_vacuum;")
    finally:
        conn.close()


def vacuum_sqlite(url: str) -> tuple[int, int]:
    """Switch a SQLite file to incremental auto-vacuum and compact it once; return its size before and after."""
    import os
    import sqlite3

    path = make_url(url).database
    before = os.path.getsize(path)
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    try:
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("VACUUM")  # rewrites the file: needed once for the auto_vacuum mode to take effect
    finally:
        conn.close()
    return before, os.path.getsize(path)


__all__ = ["Horizons", "Pruner", "vacuum_sqlite"]
