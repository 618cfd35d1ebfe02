"""The poll runner: durable cursor, atomic pages, vendor-id dedupe, one node at a time; the enrichment cache."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlalchemy import select

from alertbridge.connectors.roles import Poller, PollerConfig, PollResult
from alertbridge.errors import RateLimited
from alertbridge.pipeline.enrich import StoreCache
from alertbridge.pipeline.poll import PollRunner
from alertbridge.store import Store
from alertbridge.store.tables import inbox


class PagedVendor(Poller):
    """A vendor API in memory: items ordered by time, served in pages after a cursor, with optional faults."""

    type = "paged"

    def __init__(self, items: list[dict[str, Any]], page_size: int = 3):
        super().__init__("paged", PollerConfig(type="paged", interval=5))
        self.items = items
        self.page_size = page_size
        self.fail_next: Exception | None = None
        self.calls = 0

    async def poll(self, cursor: str | None) -> PollResult:
        self.calls += 1
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        start = int(cursor or 0)
        page = self.items[start:start + self.page_size]
        end = start + len(page)
        return PollResult(page, str(end), more=end < len(self.items))

    def item_id(self, item: dict[str, Any]) -> str:
        return item["id"]

    def parse(self, payload: Any) -> list:
        return []

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def store(db_url):
    s = Store(db_url)
    yield s
    await s.aclose()


async def stored_ids(store) -> list[str]:
    async with store.read() as conn:
        return [json.loads(b)["id"] for b in (await conn.execute(select(inbox.c.body).order_by(inbox.c.id))).scalars()]


async def test_backfill_pages_until_caught_up_then_waits_the_interval(store):
    vendor = PagedVendor([{"id": f"a{i}"} for i in range(7)])
    runner = PollRunner(store, vendor, "node-1", asyncio.Event())
    assert [await runner.step() for _ in range(3)] == [0.0, 0.0, 5.0]
    assert await stored_ids(store) == [f"a{i}" for i in range(7)]
    assert await runner.cursor() == "7"


async def test_restart_mid_backfill_loses_nothing_and_repeats_nothing(store):
    items = [{"id": f"a{i}"} for i in range(7)]
    first = PollRunner(store, PagedVendor(items), "node-1", asyncio.Event())
    await first.step()  # one page committed, then the process dies
    again = PagedVendor(items)
    second = PollRunner(store, again, "node-1", asyncio.Event())
    while await second.step() == 0.0:
        pass
    assert await stored_ids(store) == [f"a{i}" for i in range(7)]
    # The vendor returns an overlapping window (as rolling-window APIs do): nothing is stored twice.
    async with store.tx() as conn:
        from alertbridge.store.tables import cursors
        await conn.execute(cursors.update().values(value="2"))
    while await second.step() == 0.0:
        pass
    assert await stored_ids(store) == [f"a{i}" for i in range(7)]


async def test_a_429_is_waited_out(store):
    vendor = PagedVendor([{"id": "a"}])
    runner = PollRunner(store, vendor, "node-1", asyncio.Event())
    vendor.fail_next = RateLimited("429", retry_after=42, cause="throttled")
    assert await runner.step() >= 42
    assert await runner.step() == 5.0
    assert await stored_ids(store) == ["a"]


async def test_only_one_node_polls_a_source(store):
    vendor = PagedVendor([{"id": "a"}])
    one = PollRunner(store, vendor, "node-1", asyncio.Event(), lease=30)
    two = PollRunner(store, vendor, "node-2", asyncio.Event(), lease=30)
    assert await one.take_lease() and not await two.take_lease()
    assert await one.take_lease()  # renewing is fine
    async with store.tx() as conn:  # node-1 died: its lease runs out
        from alertbridge.store.tables import leases
        await conn.execute(leases.update().values(until=0))
    assert await two.take_lease() and not await one.take_lease()


async def test_cache_ttl_and_daily_budget(store):
    cache = StoreCache(store)
    await cache.put("ip:198.51.100.1", {"score": 90}, ttl=60)
    await cache.put("ip:198.51.100.2", {"score": 1}, ttl=-1)
    assert await cache.get("ip:198.51.100.1") == {"score": 90}
    assert await cache.get("ip:198.51.100.2") is None
    assert [await cache.spend("abuseipdb", 2) for _ in range(3)] == [True, True, False]
    assert await cache.spend("other", 0) is False
