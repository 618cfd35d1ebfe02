"""A PostgreSQL session: one connection in one transaction across several units of work, the event loop free in between."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import Connection

T = TypeVar("T")


class Session:
    """One connection in one transaction, each step on a session thread (store `_PostgresUnits.session`), not a unit's.

    For work whose locks must last while the loop does its part: the processor locks a batch of inbox rows, parses them
    in the loop, then writes them in the same transaction, without any statement of it going through the async engine.
    """

    def __init__(self, run: Callable[..., Awaitable[Any]], conn: Connection):
        self._run = run
        self._conn = conn

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(conn, *args)` on a thread, in this session's transaction, and return what it returns."""
        return await self._run(work, args, connection=self._conn)

    async def rollback(self) -> None:
        """Undo the transaction so far and let go of its locks; a later step begins a new one."""
        await self.run(Connection.rollback)


def end_session(conn: Connection, commit: bool) -> None:
    """Commit (or roll back) a session's transaction and give its connection back to the pool."""
    try:
        if commit:
            conn.commit()
        else:
            with contextlib.suppress(Exception):  # the session failed, perhaps as the server went away: the pool sorts that out
                conn.rollback()
    finally:
        conn.close()
