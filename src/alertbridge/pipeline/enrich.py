"""The database-backed cache and daily budget that enrichers share across processes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..connectors.roles import EnrichmentCache
from ..store import Store
from ..store.tables import budgets, enrichment_cache


class StoreCache(EnrichmentCache):
    """Enrichment cache and budgets in the hub's own database."""

    def __init__(self, store: Store):
        self.store = store

    async def get(self, key: str) -> Any | None:
        """Return a cached value, or None when absent or expired."""
        async with self.store.read() as conn:
            row = (await conn.execute(select(enrichment_cache.c.value, enrichment_cache.c.expires_at).where(enrichment_cache.c.key == key))).first()
        return row.value if row is not None and row.expires_at > time.time() else None

    async def put(self, key: str, value: Any, ttl: float) -> None:
        """Cache a value for `ttl` seconds."""
        async with self.store.tx() as conn:
            await conn.execute(delete(enrichment_cache).where(enrichment_cache.c.key == key))
            await conn.execute(insert(enrichment_cache).values(key=key, value=value, expires_at=time.time() + ttl))

    async def spend(self, budget: str, limit: int) -> bool:
        """Take one call from today's budget; False once `limit` calls were spent today (UTC)."""
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        for _ in range(2):
            async with self.store.tx() as conn:
                spent = await conn.execute(
                    update(budgets).where(budgets.c.name == budget, budgets.c.day == day, budgets.c.used < limit).values(used=budgets.c.used + 1)
                )
                if spent.rowcount:
                    return True
                exists = (await conn.execute(select(budgets.c.used).where(budgets.c.name == budget, budgets.c.day == day))).first()
                if exists is not None:
                    return False
            try:
                async with self.store.tx() as conn:
                    await conn.execute(insert(budgets).values(name=budget, day=day, used=1 if limit > 0 else 0))
                return limit > 0
            except IntegrityError:
                continue  # another process opened today's row first: spend from it
        return False
