"""Run a polling source: one node at a time, a durable cursor, and no vendor alert stored twice.

Each page of items is committed to the inbox *together with* the cursor that
follows it, in one transaction: a restart in the middle of a backfill resumes
after the last committed page, losing nothing. Each item's vendor id is its
inbox delivery id, so an item the vendor returns again (overlapping windows,
a page retried after a crash) is stored once. A lease row (`leases`) makes
sure only one process polls a source at a time when several share a database.

A page the poller cannot parse (``BadPage``) is kept as a dead inbox row with a
dead ``ingest`` job, so an operator sees the raw page in the dead-letter list,
and the cursor stays where it was: the next poll asks for that page again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time

import structlog
from sqlalchemy import insert, select, update

from ..connectors.roles import Poller, PollResult
from ..errors import BadPage, ConnectorError, Retryable
from ..metrics import POLL_ITEMS, POLLS
from ..store import Store
from ..store.leases import take_lease
from ..store.tables import cursors, inbox, jobs
from .inbox import DUPLICATE, store_events

log = structlog.get_logger("alertbridge.poll")


class PollRunner:
    """Poll one source forever, holding its lease."""

    def __init__(self, store: Store, poller: Poller, holder: str, wake: asyncio.Event, lease: float = 60.0):
        self.store = store
        self.poller = poller
        self.holder = holder
        self.wake = wake
        self.lease = lease
        self.failures = 0

    @property
    def name(self) -> str:
        return f"poll:{self.poller.name}"

    async def run_forever(self, stopping: asyncio.Event) -> None:
        """Poll until `stopping` is set; never raise."""
        while not stopping.is_set():
            delay = await self.step()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)

    async def step(self) -> float:
        """Poll once if we hold the lease; return how long to wait before the next step."""
        interval = self.poller.config.interval
        try:
            if not await self.take_lease():
                return min(interval, self.lease / 2)
            result = await self.poller.poll(await self.cursor())
            stored = await self.commit(result)
        except BadPage as exc:
            await self.dead_letter(exc)
            return self._failed(exc.reason.value, exc, exc.retry_after)
        except Retryable as exc:
            return self._failed(exc.reason.value, exc, exc.retry_after)
        except ConnectorError as exc:  # permanent (a credential, a refused request): a person must act, do not hammer
            return self._failed(exc.reason.value, exc, max(interval, 60.0))
        except Exception as exc:  # a bug or the database: log it and keep the poller alive
            log.exception("poll crashed", source=self.poller.name)
            return self._failed("error", exc, None)
        self.failures = 0
        POLLS.labels(source=self.poller.name, outcome="ok").inc()
        if stored:
            self.wake.set()
        return 0.0 if result.more else interval

    def _failed(self, outcome: str, exc: Exception, wait: float | None) -> float:
        self.failures += 1
        POLLS.labels(source=self.poller.name, outcome=outcome).inc()
        backoff = min(300.0, 2.0 ** min(self.failures, 8)) * random.uniform(0.5, 1.0)
        log.warning("poll failed", source=self.poller.name, outcome=outcome, error=str(exc), failures=self.failures)
        return max(wait or 0.0, backoff)

    async def cursor(self) -> str | None:
        """Return the stored cursor, or None before the first committed page."""
        async with self.store.read() as conn:
            return (await conn.execute(select(cursors.c.value).where(cursors.c.name == self.name))).scalar()

    async def commit(self, result: PollResult) -> int:
        """Store the page's items and its cursor in one transaction; return how many items were new."""
        events = [(self.poller.name, self.poller.item_id(item), json.dumps(item).encode()) for item in result.items]
        async with self.store.tx() as conn:
            ids = await store_events(conn, events) if events else []
            if result.cursor is not None:
                now = time.time()
                changed = await conn.execute(update(cursors).where(cursors.c.name == self.name).values(value=result.cursor, updated_at=now))
                if not changed.rowcount:
                    await conn.execute(insert(cursors).values(name=self.name, value=result.cursor, updated_at=now))
        new = sum(1 for i in ids if i != DUPLICATE)
        POLL_ITEMS.labels(source=self.poller.name, outcome="new").inc(new)
        POLL_ITEMS.labels(source=self.poller.name, outcome="duplicate").inc(len(ids) - new)
        return new

    async def dead_letter(self, error: BadPage) -> None:
        """Keep a page that did not parse as a dead inbox row and a dead ingest job; the same page twice is kept once."""
        now, reason = time.time(), str(error)[:4000]
        delivery = "bad-page:" + hashlib.sha256(error.raw).hexdigest()[:40]
        async with self.store.tx() as conn:
            known = select(inbox.c.id).where(inbox.c.source == self.poller.name, inbox.c.delivery_id == delivery)
            if (await conn.execute(known)).first() is not None:
                return
            row = await conn.execute(insert(inbox).values(
                source=self.poller.name, delivery_id=delivery, received_at=now, body=error.raw, state="dead", error=reason,
            ).returning(inbox.c.id))
            await conn.execute(insert(jobs).values(
                kind="ingest", payload={"inbox_id": row.scalar_one(), "source": self.poller.name}, state="dead",
                run_after=now, created_at=now, finished_at=now, last_error=reason,
            ))
        log.error("poll page kept in the dead-letter list", source=self.poller.name, error=reason, bytes=len(error.raw))

    async def take_lease(self) -> bool:
        """Hold (or renew) this source's lease; False while another live process holds it."""
        return await take_lease(self.store, self.name, self.holder, self.lease)
