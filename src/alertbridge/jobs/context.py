"""What every job handler is given: the store, the queue, the connectors and the current config,
and the case lookups the handlers share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import Config
from ..connectors.notify_roles import ReviewWriter
from ..connectors.roles import Notifier, Parser, TicketSink
from ..connectors.writeback_roles import Writeback
from ..errors import Permanent
from ..store import Store, cursor
from ..store.instance import instance_id
from ..store.tables import cases
from .queue import Held, Job, JobQueue
from .tickets import ticket_row


@dataclass
class JobContext:
    """The hub as a handler sees it."""

    store: Store
    queue: JobQueue
    config: Config
    sources: dict[str, Parser]
    sinks: dict[str, TicketSink]
    notifiers: dict[str, Notifier]
    reprocess: Callable[[AsyncConnection, int], Awaitable[None]]  # Pipeline.reprocess, for replayed ingest jobs
    reviews: dict[str, ReviewWriter] = field(default_factory=dict)  # post-incident review writers (jobs/review.py)
    writebacks: dict[str, Writeback] = field(default_factory=dict)  # write-backs to sources and SIEMs (jobs/writeback.py)
    _instance: str | None = field(default=None, init=False)

    @property
    def search_lag(self) -> float:
        """Return how long after a possible create a reference search that finds nothing is trusted."""
        return self.config.settings.search_lag

    async def instance(self) -> str:
        """Return this hub's instance id: the configured name, else the id made when the database was created."""
        if self._instance is None:
            async with self.store.read() as conn:
                self._instance = self.config.settings.instance or await instance_id(conn)
        return self._instance

    async def case(self, case_id: int | None) -> dict[str, Any]:
        """Return a case row; raise Permanent if it does not exist."""
        return await self.store.run_read(case_row, case_id)

    def sink(self, case: dict[str, Any], further: str | None = None) -> TicketSink:
        """Return the sink a case files its ticket in (or its route's further sink `further`); raise Permanent if it is not configured."""
        name = further or case["sink"]
        if name not in self.sinks:
            raise Permanent(f"sink {name!r} is not configured")
        return self.sinks[name]

    async def ticketed_case(self, job: Job, further: str | None = None) -> tuple[dict[str, Any], str]:
        """Return the job's case and its ticket key (in the further sink `further`); raise Held while there is none."""
        case = await self.store.run_read(ticketed_row, job.case_id, further)
        return case, case["ticket_key"]

    async def finish(self, job: Job, **case_values: Any) -> None:
        """Mark the job done, with the changes it made to its case, in one unit of work (one round trip)."""
        statements = [update(cases).where(cases.c.id == job.case_id).values(**case_values)] if case_values else []
        await self.queue.run(_finish, statements, self.queue, job)


# Built once: a statement built per call (and its cache key) cost more CPU than running it. On PostgreSQL, where every
# job reads its case in a unit of its own, the same select runs on the unit's cursor (store/cursor.py).
_CASE = select(cases).where(cases.c.id == bindparam("case_id"))
_CASE_COLUMNS = tuple(column.name for column in cases.c)
_PG_CASE = "SELECT " + ", ".join(f'"{name}"' for name in _CASE_COLUMNS) + " FROM cases WHERE id = %s"  # quoted: `key` is a keyword


def case_row(conn: Connection, case_id: int | None) -> dict[str, Any]:
    """Return a case row, inside a unit of work; raise Permanent if it does not exist."""
    if conn.dialect.name == "postgresql":
        values = cursor.fetch_one(conn, _PG_CASE, (case_id,))
        row = dict(zip(_CASE_COLUMNS, values, strict=True)) if values is not None else None
    else:
        mapping = conn.execute(_CASE, {"case_id": case_id}).mappings().first()
        row = dict(mapping) if mapping is not None else None
    if row is None:
        raise Permanent(f"case {case_id} does not exist")
    return row


def ticketed_row(conn: Connection, case_id: int | None, further: str | None) -> dict[str, Any]:
    """Return the case with its ticket in `further` (None: its own sink), inside a unit of work; raise Held while it has none."""
    case = case_row(conn, case_id)
    if further is not None:
        case = {**case, **ticket_row(conn, case, further)}
    if not case["ticket_key"]:
        # Per-case order ran the create first: no key means it was discarded. A fresh create
        # (the next alert, or `alertbridge case retry`) releases this job.
        raise Held(f"case {case['id']} has no ticket yet (its create was discarded); waiting until it has one")
    return case


def _finish(conn: Connection, statements: list, queue: JobQueue, job: Job) -> None:
    for statement in statements:
        conn.execute(statement)
    queue.complete_in(conn, job)
