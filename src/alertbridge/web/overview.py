"""The console's Overview: is the hub healthy right now?

Durable figures come from the database, so any node shows every node's work:
jobs per sink and notifier, each poller's last poll (`poll_health`), cursors,
queue depths, dead letters. Vendor call counters (calls, errors, 429s) are this
process's Prometheus counters since it started, and are labelled so.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter
from sqlalchemy import select

from ..connectors.roles import Poller
from ..metrics import ALERTS_REJECTED, RATE_LIMITED, SINK_CALLS
from ..service import Hub
from ..store.tables import cursors, leases, poll_health
from . import queries
from .charts import columns

DAY = 86400.0


def counter_totals(counter: Counter, by: str) -> dict[str, dict[str, float]]:
    """Sum a labelled counter's samples by one label, then by its last label (the outcome or reason)."""
    totals: dict[str, dict[str, float]] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if not sample.name.endswith("_total"):
                continue
            other = [v for k, v in sample.labels.items() if k not in (by, "operation")]
            bucket = totals.setdefault(sample.labels[by], {})
            bucket[other[-1] if other else ""] = bucket.get(other[-1] if other else "", 0.0) + sample.value
    return totals


async def sources_health(hub: Hub, conn, now: float) -> list[dict[str, Any]]:
    """Return each source's health: its role, last event, and for pollers the last poll, last error and cursor."""
    activity = await queries.source_activity(conn, now - DAY)
    polls = {row["name"]: dict(row) for row in (await conn.execute(select(poll_health))).mappings()}
    cursor_at = dict((await conn.execute(select(cursors.c.name, cursors.c.updated_at))).all())
    holders = dict((await conn.execute(select(leases.c.name, leases.c.holder).where(leases.c.until >= now))).all())
    rejected = counter_totals(ALERTS_REJECTED, "source")
    out = []
    for name, source in sorted(hub.sources.items()):
        poller = isinstance(source, Poller)
        seen = activity.get(name, {})
        poll = polls.get(f"poll:{name}", {})
        entry = {
            "name": name, "type": source.config.type, "role": "poller" if poller else "webhook",
            "last_event": seen.get("last_event"), "events": seen.get("events", 0), "dead": seen.get("dead", 0),
            "rejected": sum(rejected.get(name, {}).values()),
            "last_poll": poll.get("last_poll_at"), "last_ok": poll.get("last_ok_at"), "failures": poll.get("failures", 0),
            "last_error": poll.get("last_error"), "last_error_at": poll.get("last_error_at"),
            "cursor_at": cursor_at.get(f"poll:{name}"), "node": holders.get(f"poll:{name}"),
        }
        entry["cursor_lag"] = now - entry["cursor_at"] if entry["cursor_at"] else None
        entry["status"] = _source_status(entry, poller)
        out.append(entry)
    return out


def _source_status(entry: dict[str, Any], poller: bool) -> str:
    if entry["dead"] and entry["events"] == 0:
        return "warn"
    if poller:
        if entry["failures"]:
            return "bad" if entry["failures"] >= 3 else "warn"
        return "ok" if entry["last_ok"] else "idle"
    return "ok" if entry["last_event"] else "idle"


async def outputs_health(hub: Hub, conn, now: float) -> list[dict[str, Any]]:
    """Return each sink's and notifier's health: job figures over 24 h and this process's call counters."""
    sinks = await queries.sink_activity(conn, now - DAY)
    notifiers = await queries.notifier_activity(conn, now - DAY)
    calls = counter_totals(SINK_CALLS, "sink")
    limited = counter_totals(RATE_LIMITED, "sink")
    out = []
    for role, names, activity in (("sink", hub.sinks, sinks), ("notifier", hub.notifiers, notifiers)):
        for name in sorted(names):
            figures = activity.get(name, {"jobs": 0, "attempts": 0, "dead": 0, "last_success": None, "last_error": None})
            outcomes = calls.get(name, {})
            entry = {"name": name, "role": role, "type": names[name].config.type, **figures,
                     "calls": sum(v for k, v in outcomes.items() if k != "paused"),
                     "errors": sum(v for k, v in outcomes.items() if k not in ("ok", "paused")),
                     "rate_limited": max(sum(limited.get(name, {}).values()), outcomes.get("rate_limited", 0))}
            entry["status"] = "bad" if figures["dead"] else "warn" if figures["attempts"] > figures["jobs"] else "ok"
            out.append(entry)
    return out


def hour_labels(start_hour: int, hours: int) -> list[str]:
    """Label hour numbers as HH:00 (UTC)."""
    return [time.strftime("%H:00", time.gmtime((start_hour + i) * 3600)) for i in range(hours)]


async def overview(hub: Hub) -> dict[str, Any]:
    """Gather everything the Overview page shows."""
    now = time.time()
    stats = await hub.stats()
    async with hub.store.read() as conn:
        sources = await sources_health(hub, conn, now)
        outputs = await outputs_health(hub, conn, now)
        dead = await queries.dead_counts(conn)
        stuck = await queries.count_cases(conn, queries.CaseFilter(state="stuck"))
        end_hour = int(now // 3600) + 1
        series = await queries.hourly(conn, (end_hour - 24) * 3600, end_hour * 3600, hub.store.is_sqlite)
    labels = hour_labels(end_hour - 24, 24)
    hours = range(end_hour - 24, end_hour)
    charts = {
        name: columns(labels, [series[name].get(h, None if name == "lag" else 0) for h in hours], title, every=4, line=name == "lag",
                      unit="s" if name == "lag" else "")
        for name, title in (("alerts", "Alerts per hour"), ("cases", "New cases per hour"), ("tickets", "Tickets created per hour"),
                            ("lag", "End-to-end lag, alert received → ticket created (median per hour)"))
    }
    return {"stats": stats, "sources": sources, "outputs": outputs, "dead": dead, "stuck": stuck, "charts": charts, "now": now}
