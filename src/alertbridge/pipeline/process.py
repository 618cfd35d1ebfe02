"""The inbox processor: parse → enrich → route → correlate → jobs, one unit of work per batch.

Parsing, enrichment (vendor calls), routing and rendering happen in the event
loop; the database then sees the whole batch as one synchronous function
(pipeline/batch.py): on SQLite one hand-off to the database thread, on
PostgreSQL a few batched statements. A row that cannot be parsed is marked
dead with a dead ``ingest`` job that keeps the reason. If the batch as a whole
fails (a bug, a bad template), it is rolled back and written again row by row,
each in a savepoint, so that only the failing row is dead-lettered and the
rest go on. Replaying an ``ingest`` job re-runs this pipeline on the kept raw body.

Intake goes first. While a burst comes in (intake asked to commit in the last
``INTAKE_BUSY`` seconds) a batch takes at most ``BUSY_LIMIT`` rows, so that a
commit of intake waits only for a short unit; and parsing yields to the event
loop every ``YIELD_EVERY`` rows, so that requests are not held behind it.

Several `serve` processes share the inbox on PostgreSQL: each claims the
oldest rows no one holds (``FOR UPDATE SKIP LOCKED``) and parses them while
the others do the same, then waits until every older row is written before it
writes its own — so alerts of one case are applied in the order they came in.
That transaction is a session (store/session.py): its statements run on the
unit threads with synchronous connections, the event loop parsing in between,
as the job units do. Ticket events (a row from a ticket system's webhook) are
applied in their own transaction, in order with the alerts around them; on
PostgreSQL a batch that holds one goes through the async engine, for which
pipeline/sync.py is written.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import Config
from ..connectors.roles import Enricher, Parser
from ..errors import PayloadError
from ..metrics import ALERTS_ROUTED
from ..model import Alert, TicketEvent
from ..store import Store, savepoint
from ..store.tables import inbox
from .batch import Batch
from .correlate import Prepared, correlate, prepare
from .enrich import StoreCache
from .route import route_alert
from .statements import statements, statements_of
from .sync import apply_ticket_event

log = structlog.get_logger("alertbridge.pipeline")


# Text JSON may spell but no store or vendor API takes: NUL (PostgreSQL text) and lone UTF-16 surrogates (not UTF-8).
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def decode(body: bytes) -> Any:
    """Decode a raw body as strict UTF-8 JSON, NUL and lone surrogates made U+FFFD; raise PayloadError saying why not."""
    try:
        text = body.decode("utf-8-sig")  # strict: encoded surrogates and overlong forms are not UTF-8
        if not _UNSTORABLE_ESCAPE.search(text):
            return json.loads(text)
        text = _NUL_ESCAPE.sub(r"\1\\ufffd", json.dumps(json.loads(text), ensure_ascii=False))
        return json.loads(re.sub("[\ud800-\udfff]", "\ufffd", text))
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise PayloadError("body is nested too deeply") from None


INTAKE_BUSY = 0.5  # seconds after intake last asked for the gate that it counts as busy (load spaces its commits out)
BUSY_LIMIT = 100  # rows per batch while intake is busy: a unit of 10-20 ms (25 left processing at ~220 rows/s)
YIELD_EVERY = 50  # rows parsed and routed between two turns of the event loop (each turn serves every request ready)

Item = Prepared | TicketEvent | None  # None: an alert that no route takes (or a drop route)
_DATABASE_FAILED = (OperationalError, InterfaceError, PendingRollbackError)  # not the row's fault: the batch is retried


@dataclass
class Row:
    """One inbox row ready for the database: what its body became, or why it cannot be processed."""

    id: int
    source: str
    items: list[Item] | Exception

    @property
    def has_events(self) -> bool:
        """Tell whether the row carries ticket events (applied in a transaction of their own)."""
        return isinstance(self.items, list) and any(isinstance(item, TicketEvent) for item in self.items)


class Pipeline:
    """Process pending inbox rows into cases and jobs."""

    def __init__(self, config: Config, store: Store, sources: dict[str, Parser], enrichers: list[Enricher] | None = None):
        self.config = config
        self.store = store
        self.sources = sources
        self.enrichers = enrichers or []
        self.cache = StoreCache(store)

    async def process_batch(self, limit: int = 200) -> int:
        """Process up to `limit` pending inbox rows; return how many were taken."""
        if not self.store.is_sqlite:
            return await self._process_shared(limit)
        if self.store.gate.urgent_within(INTAKE_BUSY):
            limit = min(limit, BUSY_LIMIT)
        # Parse and enrich outside the transaction: enrichers call vendor APIs, and no lock should wait on them.
        rows = await self.store.run_read(_pending, limit)
        if not rows:
            return 0
        for segment in _segments(await self._prepare(rows)):
            if segment[0].has_events:
                async with self.store.tx() as conn:
                    if (await conn.execute(select(inbox.c.state).where(inbox.c.id == segment[0].id))).scalar() == "pending":
                        await self._apply_events(conn, segment[0])
            else:
                # Another process may have taken some of these rows meanwhile: the unit writes only those still pending.
                _count(await self.store.run(_write, segment, True))
        return len(rows)

    async def _process_shared(self, limit: int) -> int:
        for _ in range(3):
            # The batch's statements run on the unit threads, in one transaction held while the loop parses the rows.
            async with self.store.session() as session:
                rows = await session.run(_locked, limit)
                if not rows:
                    return 0
                prepared = await self._prepare(rows)
                # Wait for the processors holding older rows to commit: per-case order is inbox order.
                if await session.run(_older_pending, rows[0].id):
                    await session.rollback()  # older rows nobody is processing: start again from them
                    continue
                if any(row.has_events for row in prepared):
                    await session.rollback()  # ticket events are applied through the async engine (pipeline/sync.py)
                    return await self._process_shared_events(limit)
                _count(await session.run(_write, prepared, False))
            return len(rows)
        return 0

    async def _process_shared_events(self, limit: int) -> int:
        """Process a shared batch that holds ticket events, on the async engine, each event row in a savepoint of its own."""
        for _ in range(3):
            async with self.store.tx() as conn:
                rows = await conn.run_sync(_locked, limit)
                if not rows:
                    return 0
                prepared = await self._prepare(rows)
                if await conn.run_sync(_older_pending, rows[0].id):
                    await conn.rollback()
                    continue
                for segment in _segments(prepared):
                    if segment[0].has_events:
                        await self._apply_events(conn, segment[0])
                    else:
                        _count(await conn.run_sync(_write, segment, False))
            return len(rows)
        return 0

    async def reprocess(self, conn: AsyncConnection, inbox_id: int) -> None:
        """Run the pipeline again on one kept inbox row (replay of a dead ingest job); raise PayloadError if it still fails."""
        found = (await conn.execute(select(inbox.c.id, inbox.c.source, inbox.c.body).where(inbox.c.id == inbox_id))).all()
        if not found:
            raise PayloadError(f"inbox row {inbox_id} no longer exists")
        (row,) = await self._prepare(found)
        if isinstance(row.items, Exception):
            raise row.items
        await self._apply_row(conn, row)
        await conn.execute(update(inbox).where(inbox.c.id == inbox_id).values(state="done", error=None))

    async def _prepare(self, rows) -> list[Row]:
        parsed = []
        for n, (row_id, source_name, body) in enumerate(rows, 1):
            parsed.append((row_id, source_name, self._parse(source_name, body)))
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        await self._enrich([item for _, _, items in parsed if isinstance(items, list) for item in items if isinstance(item, Alert)])
        prepared = []
        for n, (row_id, source_name, items) in enumerate(parsed, 1):
            prepared.append(Row(row_id, source_name, self._route(items)))
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        return prepared

    def _parse(self, source_name: str, body: bytes) -> list[Alert | TicketEvent] | Exception:
        source = self.sources.get(source_name)
        if source is None:
            return PayloadError(f"source {source_name!r} is no longer in the config")
        try:
            return list(source.parse(decode(body)))
        except Exception as exc:  # noqa: BLE001 — a parser bug must dead-letter its row, not stop the inbox
            return exc

    async def _enrich(self, alerts: list[Alert]) -> None:
        for enricher in self.enrichers:
            try:
                await enricher.enrich(alerts, self.cache)
            except Exception:  # an enricher must never hold alerts back
                log.exception("enricher failed", enricher=enricher.name)

    def _route(self, items: list[Alert | TicketEvent] | Exception) -> list[Item] | Exception:
        if isinstance(items, Exception):
            return items
        try:
            return [item if isinstance(item, TicketEvent) else _prepared(route_alert(item, self.config.settings.routes))
                    for item in items]
        except Exception as exc:  # noqa: BLE001 — a route's template failing on this alert dead-letters its row
            return exc

    async def _apply_events(self, conn: AsyncConnection, row: Row) -> None:
        """Apply a row carrying ticket events in a savepoint of its own; dead-letter it if that fails."""
        for attempt in (1, 2):
            try:
                async with conn.begin_nested():
                    await self._apply_row(conn, row)
                    await conn.execute(update(inbox).where(inbox.c.id == row.id).values(state="done"))
                return
            except IntegrityError:
                if attempt == 2:
                    raise
            except _DATABASE_FAILED:
                raise
            except Exception as exc:  # noqa: BLE001 — any failure of one row must not lose it nor stop the others
                await conn.run_sync(_fail, row, exc)
                return

    async def _apply_row(self, conn: AsyncConnection, row: Row) -> None:
        """Apply the row's ticket events and alerts in order, in the caller's transaction; raise what fails."""
        assert isinstance(row.items, list)
        now, alerts = time.time(), []
        for item in row.items:
            if not isinstance(item, TicketEvent):
                alerts.append(item)
                continue
            await _correlate_async(conn, Row(row.id, row.source, alerts))
            alerts = []
            outcome = await apply_ticket_event(conn, item, now, self.config)
            log.info("ticket event", ticket=item.ticket_key, outcome=outcome)
        await _correlate_async(conn, Row(row.id, row.source, alerts))


_SQL = statements_of("postgresql")  # the shared path's: several processors share the inbox on PostgreSQL only


def _pending(conn: Connection, limit: int) -> list:
    return conn.exec_driver_sql(statements(conn).pending, (limit,)).all()


def _locked(conn: Connection, limit: int) -> list:
    return conn.exec_driver_sql(_SQL.pending_locked, (limit,)).all()


def _older_pending(conn: Connection, first: int) -> bool:
    return conn.exec_driver_sql(_SQL.older_locked, (first,)).first() is not None


def _prepared(routed) -> Prepared | None:
    return None if routed is None else prepare(routed)


def _segments(rows: list[Row]) -> list[list[Row]]:
    """Split rows into runs written as one unit each: alert rows together, each ticket-event row on its own."""
    segments: list[list[Row]] = []
    for row in rows:
        if row.has_events or not segments or segments[-1][0].has_events:
            segments.append([row])
        else:
            segments[-1].append(row)
    return segments


async def _correlate_async(conn: AsyncConnection, alerts: Row) -> None:
    if alerts.items:
        _count(await conn.run_sync(_correlate, [alerts], False))


def _count(outcomes: list[tuple[str, str]]) -> None:
    for (route, outcome), count in Counter(outcomes).items():  # a look-up of the labelled child per pair, not per alert
        ALERTS_ROUTED.labels(route=route, outcome=outcome).inc(count)


def _write(conn: Connection, rows: list[Row], recheck: bool) -> list[tuple[str, str]]:
    """Write a batch of rows in one go; if that fails, row by row so that only the failing row is dead-lettered."""
    if recheck:
        sql = statements(conn)
        pending = set(conn.exec_driver_sql(sql.still_pending, (sql.values([r.id for r in rows]),)).scalars())
        rows = [row for row in rows if row.id in pending]
    try:
        with savepoint(conn):
            return _correlate(conn, rows, True)
    except _DATABASE_FAILED:
        raise
    except Exception:  # noqa: BLE001 — find the row at fault: the others must go on
        log.info("batch failed; writing its rows one by one", rows=len(rows))
    outcomes: list[tuple[str, str]] = []
    for row in rows:
        for attempt in (1, 2):
            try:
                with savepoint(conn):
                    outcomes += _correlate(conn, [row], True)
                break
            except IntegrityError:
                # Another processor opened the same case key a moment ago; the retry finds it open.
                if attempt == 2:
                    raise
            except _DATABASE_FAILED:
                raise
            except Exception as exc:  # noqa: BLE001 — any failure of one row must not lose it nor stop the others
                _fail(conn, row, exc)
                break
    return outcomes


def _correlate(conn: Connection, rows: list[Row], finish: bool) -> list[tuple[str, str]]:
    """Correlate every alert of the rows against its case, write the result, and (when `finish`) mark the rows done or dead."""
    batch = Batch(conn, time.time(), lock_cases=conn.dialect.name != "sqlite")
    prepared = [item for row in rows if isinstance(row.items, list) for item in row.items if isinstance(item, Prepared)]
    batch.load({(p.routed.route.name, p.digest) for p in prepared},
               {(p.routed.route.name, p.digest, p.member.member) for p in prepared if p.member is not None})
    outcomes: list[tuple[str, str]] = []
    for row in rows:
        if isinstance(row.items, Exception):
            _dead_letter(batch, row, row.items)
            continue
        for item in row.items:
            if item is None:
                outcomes.append(("", "dropped"))
            elif isinstance(item, Prepared):
                outcomes.append((item.routed.route.name, correlate(batch, item, row.id)))
        if finish:
            batch.done.append(row.id)
    batch.flush()
    return outcomes


def _fail(conn: Connection, row: Row, exc: Exception) -> None:
    batch = Batch(conn, time.time())
    _dead_letter(batch, row, exc)
    batch.flush()


def _dead_letter(batch: Batch, row: Row, exc: Exception) -> None:
    reason = str(exc) if isinstance(exc, PayloadError) else f"{type(exc).__name__}: {exc}"
    log.warning("ingest failed", inbox_id=row.id, source=row.source, reason=reason)
    batch.fail(row.id, row.source, reason)
