"""Shared commits: the job side's units of work that wait for the SQLite writer at the same time go in one transaction.

Each job writes a few small units (its claim, the comment it is about to make, its finish), each once a
transaction of its own: on SQLite one writer commits them one at a time, and each commit waits for the disk
(``synchronous=FULL``: an fsync, ~5 ms here) — so the writer, not the CPU, capped jobs at ~100 a second, and the
hand-off to the database thread and the transaction's own work cost more CPU than the unit's statements.

Here a unit is queued; one writer task takes everything queued when its turn for the write gate comes and runs it
as one transaction, each unit in a savepoint of its own (when there are several), so a unit that raises is
rolled back alone and its error goes to its caller only. Every caller gets its result once the transaction has
committed: what a unit wrote is as durable, when its caller goes on, as it was with a transaction of its own.
A unit whose caller was cancelled before its turn came is not run. On PostgreSQL units run as before, each in its
own transaction (the server commits concurrent transactions together, and holding one connection for several
callers would serialize them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection

from ..store import Store, savepoint

T = TypeVar("T")
# Units per transaction: a bound on how long one batch holds the write gate that intake's commits wait for (at about
# half a millisecond of the database thread per unit, some 15-20 ms: as long as one of the processor's batches).
MOST_PER_COMMIT = 32
Queued = tuple[Callable[..., Any], tuple, asyncio.Future]


class SharedCommits:
    """Run units of work, those that wait for the writer together in one transaction (SQLite)."""

    def __init__(self, store: Store, most: int = MOST_PER_COMMIT):
        self.store = store
        self.most = most
        self._queued: list[Queued] = []
        self._writer: asyncio.Task[None] | None = None

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(conn, *args)` in a write transaction, perhaps shared with other units; return what it returns once committed."""
        if not self.store.is_sqlite:
            return await self.store.run(work, *args)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append((work, args, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="job-commits")
        return await future

    async def run_one(self, work: Callable[..., T], *args: Any) -> T:
        """Run a unit of exactly one statement: shared like any other on SQLite, in autocommit on PostgreSQL (Store.run_one)."""
        if not self.store.is_sqlite:
            return await self.store.run_one(work, *args)
        return await self.run(work, *args)

    def _take(self) -> list[Queued]:
        """Take the queued units whose callers still wait, up to `most` (called once this writer holds the gate)."""
        taken: list[Queued] = []
        while self._queued and len(taken) < self.most:
            queued = self._queued.pop(0)
            if not queued[2].done():  # a cancelled caller's unit is dropped, as one that never got the gate
                taken.append(queued)
        return taken

    async def _write(self) -> None:
        while self._queued:
            taken: list[Queued] = []
            try:
                results = await self.store.run_collected(_run_all, lambda: taken.extend(self._take()) or taken)
            except Exception as exc:  # the transaction failed as a whole: every unit in it failed
                for _, _, future in taken:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:  # this task is cancelled (the loop is closing): nobody is left to write for the callers
                for _, _, future in [*taken, *self._queued]:
                    future.cancel()
                self._queued.clear()
                raise
            for (_, _, future), (ok, value) in zip(taken, results, strict=True):
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)


def _run_all(conn: Connection, taken: list[Queued]) -> list[tuple[bool, Any]]:
    """Run the taken units in this transaction, each in a savepoint when there are several; return (ok, result or error) each."""
    if len(taken) == 1:  # alone: its error rolls the whole transaction back, as a transaction of its own would
        work, args, _ = taken[0]
        return [(True, work(conn, *args))]
    # Each unit's savepoint is released or rolled back before the next unit, so the transaction SQLAlchemy knows of is
    # the same before and after.
    results: list[tuple[bool, Any]] = []
    for work, args, _ in taken:
        try:
            with savepoint(conn):
                results.append((True, work(conn, *args)))
        except Exception as exc:  # noqa: BLE001 — the unit's own failure, handed to its caller; the others go on
            results.append((False, exc))
    return results
