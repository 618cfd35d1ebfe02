"""Named leases: one holder at a time for work that must run on one node (a poller, the pruner); node names across restarts."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import time

import structlog
from sqlalchemy import Connection, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from . import Store
from .preflight import sqlite_path
from .tables import jobs, leases

log = structlog.get_logger("alertbridge.store.leases")


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


# The advisory-lock namespace of node names on PostgreSQL ("albr"): a node name's lock is (NODE_LOCKS, hashtext(name)).
NODE_LOCKS = 0x616C6272


class Node:
    """This process's stable name among the hub's processes, and the work its previous boot left behind.

    A process is known in the queue by its boot (`worker`: host and pid); its node name (`serve@host`,
    `worker@host`, or `--node`) outlives it. The name is held under a lock that only a live process holds —
    a PostgreSQL session advisory lock, or an OS file lock next to a SQLite file — both freed by the kernel
    or the server the moment the process dies, SIGKILL included. So whoever takes a name knows its previous
    boot is dead, and hands that boot's running jobs and leases back at once instead of waiting for their
    leases to run out. A name a live process holds is never taken: the newcomer tries `name#2`, `name#3`…
    """

    def __init__(self, store: Store, base: str, worker: str, *, slots: int = 8):
        self.store = store
        self.base = base
        self.worker = worker
        # A container's process is often pid 1 on a fixed hostname at every start: the boot id tells two boots apart
        # even when their worker ids are the same.
        self.boot = secrets.token_hex(4)
        self.slots = slots
        self.name: str | None = None
        self._held: AsyncConnection | int | None = None  # the lock's session (PostgreSQL) or file descriptor (SQLite)

    async def claim(self) -> tuple[str | None, str | None, int]:
        """Take the first free name; release its previous boot's work; return (name, previous boot, jobs released)."""
        if self.name is not None:
            raise RuntimeError(f"this boot holds the node name {self.name!r} already")
        for slot in range(1, self.slots + 1):
            name = self.base if slot == 1 else f"{self.base}#{slot}"
            if await self._lock(name):
                try:
                    previous, released = await self.store.run(_succeed, f"node:{name}", self.worker, self.boot, time.time())
                except BaseException:  # not recorded: let the name go, so a retry starts from the beginning
                    await self._unlock(name)
                    raise
                self.name = name
                return name, previous, released
        return None, None, 0

    async def keep(self) -> bool:
        """Check the name's lock is still ours (PostgreSQL: its session may die with a server restart); take it again if not.

        Return False when another process took the name in between: it may run this boot's jobs too (as after a lease
        expiry, the queue then refuses this boot's late outcomes).
        """
        if self.store.is_sqlite or self.name is None:
            return True  # a file lock lives as long as this process
        if self._held is not None:
            try:
                await self._held.execute(text("SELECT 1"))
                await self._held.commit()
                return True
            except Exception:  # the session is gone, and its lock with it
                with contextlib.suppress(Exception):
                    await self._held.invalidate()
                    await self._held.close()
                self._held = None
        # No session holds the name now (also when the last try to take it again met the database still away): take it.
        if not await self._lock(self.name):
            return False
        log.info("took this node's name again on a new database session", node=self.name)
        return True

    async def _lock(self, name: str) -> bool:
        if not self.store.is_sqlite:
            conn = await self.store.writer.connect()
            try:
                taken = (await conn.execute(text("SELECT pg_try_advisory_lock(:space, hashtext(:name))"),
                                            {"space": NODE_LOCKS, "name": name})).scalar()
                await conn.commit()  # a session lock outlives the transaction; the connection must not sit in one
            except BaseException:
                await conn.invalidate()
                raise
            if not taken:
                await conn.close()
                return False
            self._held = conn
            return True
        path = sqlite_path(self.store.url)
        if path is None:
            return True  # an in-memory database lives and dies with this process: nobody else can hold a name in it
        fd = os.open(f"{path}-node-{re.sub(r'[^A-Za-z0-9_.@-]', '_', name)}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._held = fd
        return True

    async def aclose(self) -> None:
        """Let go of the name (the process is stopping)."""
        if self.name is not None:
            await self._unlock(self.name)
        self.name = None

    async def _unlock(self, name: str) -> None:
        held, self._held = self._held, None
        if isinstance(held, AsyncConnection):
            with contextlib.suppress(Exception):  # the server is gone: so is the lock
                # Unlocked in so many words: a closed session's backend lets go only once it has noticed, a moment later.
                await held.execute(text("SELECT pg_advisory_unlock(:space, hashtext(:name))"), {"space": NODE_LOCKS, "name": name})
                await held.commit()
            with contextlib.suppress(Exception):
                await held.invalidate()  # closes the session instead of handing it back to the pool
                await held.close()
        elif held is not None:
            os.close(held)


def _succeed(conn: Connection, node: str, worker: str, boot: str, now: float) -> tuple[str | None, int]:
    """Record this boot as holding `node`; hand the previous boot's running jobs and leases back now.

    The caller claims no job before this has run: every running job of the previous boot's worker id is the dead
    boot's, even when that id is this boot's own (pid 1 in a container).
    """
    held = conn.execute(select(leases.c.holder).where(leases.c.name == node)).scalar()
    previous, _, previous_boot = held.rpartition("/") if held is not None else (None, "", None)
    released = 0
    if previous and previous_boot != boot:
        # An expired lease is what another worker's claim looks for: the jobs run again at once, the cut attempt counted
        # (it may have reached the sink), exactly as after a lease expiry.
        released = conn.execute(update(jobs).where(jobs.c.state == "running", jobs.c.worker == previous)
                                .values(lease_until=now - 1)).rowcount
        if previous != worker:  # a poller lease of this same worker id is ours already (take_lease renews it)
            conn.execute(update(leases).where(leases.c.holder == previous).values(until=now - 1))
    # `until` says when this boot took the name; the lock, not the time, is what keeps the name its own.
    holder = f"{worker}/{boot}"
    if not conn.execute(update(leases).where(leases.c.name == node).values(holder=holder, until=now)).rowcount:
        conn.execute(insert(leases).values(name=node, holder=holder, until=now))
    return previous or None, released
