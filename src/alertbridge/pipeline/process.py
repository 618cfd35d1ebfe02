"""The inbox processor: parse → route → correlate → jobs, one transaction per batch.

Each inbox row is handled inside a savepoint: a row that fails (unparsable, or
a bug) is marked dead with a dead ``ingest`` job that keeps the reason, and
the rest of the batch goes on. Replaying that job re-runs this pipeline on the
kept raw body.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import Config
from ..connectors.roles import Enricher, Parser
from ..errors import PayloadError
from ..metrics import ALERTS_ROUTED
from ..model import Alert, TicketEvent
from ..store import Store
from ..store.tables import inbox, jobs
from .correlate import correlate
from .enrich import StoreCache
from .route import route_alert
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
        # Parse and enrich outside the transaction: enrichers call vendor APIs, and no lock should wait on them.
        async with self.store.read() as conn:
            query = select(inbox.c.id, inbox.c.source, inbox.c.body).where(inbox.c.state == "pending")
            rows = (await conn.execute(query.order_by(inbox.c.id).limit(limit))).all()
        if not rows:
            return 0
        parsed = {row_id: self._parse(source_name, body) for row_id, source_name, body in rows}
        await self._enrich([item for items in parsed.values() if isinstance(items, list) for item in items if isinstance(item, Alert)])
        async with self.store.tx() as conn:
            # Another processor may have taken some of these rows meanwhile: keep only those still pending and unlocked.
            locked = select(inbox.c.id, inbox.c.source).where(inbox.c.id.in_(list(parsed)), inbox.c.state == "pending")
            for row_id, source_name in (await conn.execute(locked.order_by(inbox.c.id).with_for_update(skip_locked=True))).all():
                await self._process_row(conn, row_id, source_name, parsed[row_id])
        return len(rows)

    async def reprocess(self, conn: AsyncConnection, inbox_id: int) -> None:
        """Run the pipeline again on one kept inbox row (replay of a dead ingest job); raise PayloadError if it still fails."""
        row = (await conn.execute(select(inbox.c.source, inbox.c.body).where(inbox.c.id == inbox_id))).first()
        if row is None:
            raise PayloadError(f"inbox row {inbox_id} no longer exists")
        items = self._parse(row.source, row.body)
        if isinstance(items, Exception):
            raise items
        await self._enrich([item for item in items if isinstance(item, Alert)])
        await self._handle(conn, inbox_id, items, time.time())
        await conn.execute(update(inbox).where(inbox.c.id == inbox_id).values(state="done", error=None))

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

    async def _process_row(self, conn: AsyncConnection, row_id: int, source_name: str, items) -> None:
        now = time.time()
        for attempt in (1, 2):
            try:
                if isinstance(items, Exception):
                    raise items
                async with conn.begin_nested():
                    await self._handle(conn, row_id, items, now)
                    await conn.execute(update(inbox).where(inbox.c.id == row_id).values(state="done"))
                return
            except IntegrityError:
                # Another processor opened the same case key a moment ago; the retry finds it open.
                if attempt == 2:
                    raise
            except (OperationalError, InterfaceError, PendingRollbackError):
                raise  # the database, not the row, failed: the whole batch rolls back and is retried
            except Exception as exc:  # noqa: BLE001 — any failure of one row must not lose it nor stop the others
                reason = str(exc) if isinstance(exc, PayloadError) else f"{type(exc).__name__}: {exc}"
                log.warning("ingest failed", inbox_id=row_id, source=source_name, reason=reason)
                await conn.execute(update(inbox).where(inbox.c.id == row_id).values(state="dead", error=reason[:4000]))
                await conn.execute(insert(jobs).values(
                    kind="ingest", payload={"inbox_id": row_id, "source": source_name}, state="dead",
                    run_after=now, created_at=now, finished_at=now, last_error=reason[:4000],
                ))
                return

    async def _handle(self, conn: AsyncConnection, row_id: int, items: list[Alert | TicketEvent], now: float) -> None:
        for item in items:
            if isinstance(item, TicketEvent):
                outcome = await apply_ticket_event(conn, item, now, self.config)
                log.info("ticket event", ticket=item.ticket_key, outcome=outcome)
            else:
                await self._handle_alert(conn, item, row_id, now)

    async def _handle_alert(self, conn: AsyncConnection, alert: Alert, row_id: int, now: float) -> None:
        routed = route_alert(alert, self.config.settings.routes)
        if routed is None:
            ALERTS_ROUTED.labels(route="", outcome="dropped").inc()
            return
        _case_id, outcome = await correlate(conn, routed, row_id, now)
        ALERTS_ROUTED.labels(route=routed.route.name, outcome=outcome).inc()
