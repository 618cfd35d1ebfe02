"""Named leases: one holder at a time for work that must run on one node (a poller, the pruner)."""

from __future__ import annotations

import time

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from . import Store
from .tables import leases


async def take_lease(store: Store, name: str, holder: str, seconds: float) -> bool:
    """Hold (or renew) the lease `name` for `seconds`; False while another live holder has it."""
    now = time.time()
    async with store.tx() as conn:
        taken = await conn.execute(
            update(leases).where(leases.c.name == name, (leases.c.holder == holder) | (leases.c.until < now))
            .values(holder=holder, until=now + seconds)
        )
        if taken.rowcount:
            return True
        if (await conn.execute(select(leases.c.holder).where(leases.c.name == name))).first() is not None:
            return False
    try:
        async with store.tx() as conn:
            await conn.execute(insert(leases).values(name=name, holder=holder, until=now + seconds))
        return True
    except IntegrityError:
        return False  # another node inserted it first
