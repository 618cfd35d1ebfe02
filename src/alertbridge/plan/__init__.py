"""`alertbridge plan`: what a config would do, before it goes live, with no side effects.

`explain.py` plans payload files alert by alert; `replay.py` replays the
stored events of a window and compares with what happened; `text.py` writes
both for people (`--json` gives the data).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .. import connectors
from ..config import Config
from ..connectors.roles import Parser, Poller, TicketSink
from ..errors import PayloadError
from ..model import Alert
from ..pipeline.process import decode
from ..store import Store
from .explain import AlertPlan, explain
from .replay import replay
from .text import diff_text, explain_text

__all__ = ["AlertPlan", "diff_text", "explain_text", "plan_payloads", "plan_since", "sources_of"]


def sources_of(config: Config) -> dict[str, Parser]:
    """Build the config's sources (parsers only: nothing is polled or listened to)."""
    return {name: connectors.load(connectors.SOURCES, cfg.type)(name, cfg) for name, cfg in config.sources.items()}


def parse_payloads(source: Parser, paths: list[Path]) -> list[Alert]:
    """Parse payload files with one source; raise PayloadError naming the file that fails."""
    found: list[Alert] = []
    for path in paths:
        try:
            found += [item for item in source.parse(decode(path.read_bytes())) if isinstance(item, Alert)]
        except (OSError, PayloadError) as exc:
            raise PayloadError(f"{path}: {exc}") from None
    return found


async def _reachable(store: Store) -> bool:
    from sqlalchemy import select

    from ..store.preflight import sqlite_path
    from ..store.tables import cases

    path = sqlite_path(store.url)
    if path is not None and not path.exists():
        return False  # connecting would create the file: a plan has no side effects
    try:
        async with store.read() as conn:
            await conn.execute(select(cases.c.id).limit(1))
    except Exception:  # noqa: BLE001 — no database, or not migrated: plan without the existing cases
        return False
    return True


async def _close(sources: dict[str, Parser], sinks: dict[str, TicketSink], store: Store) -> None:
    for connector in [*(s for s in sources.values() if isinstance(s, Poller)), *sinks.values()]:
        await connector.aclose()
    await store.aclose()


async def plan_payloads(config: Config, source_name: str, paths: list[Path], *, offline: bool = False) -> list[AlertPlan]:
    """Plan each alert of the payload files, reading the database and the sinks' metadata only."""
    sources, store = sources_of(config), Store(config.settings.database)
    sinks: dict[str, TicketSink] = {} if offline else {
        name: connectors.load(connectors.SINKS, cfg.type)(name, cfg) for name, cfg in config.sinks.items()
    }
    try:
        alerts = parse_payloads(sources[source_name], paths)
        return await explain(config, store if await _reachable(store) else None, sinks, alerts, time.time())
    finally:
        await _close(sources, sinks, store)


async def plan_since(config: Config, seconds: float, *, current: Config | None = None, now: float | None = None) -> dict[str, Any]:
    """Replay the last `seconds` of stored events through the config and return what would differ (from `current`'s tickets)."""
    end = now if now is not None else time.time()
    sources, store = sources_of(config), Store(config.settings.database)
    try:
        return await replay(config, store, sources, end - seconds, end, current)
    finally:
        await _close(sources, {}, store)
