"""What a report says, computed from the database: one grouped query per figure, never a query per alert.

- **alerts**: alerts routed into cases in the window (received then), by
  source, route, severity, category and tenant; events received and events
  no route took or no parser could read come from the inbox;
- **cases**: cases opened in the window (their first alert then), with the
  category and tenant of that first alert;
- **tickets**: the tickets of those cases (read off the case, which retention
  keeps: finished jobs and the alerts of closed cases are pruned after their
  horizons, so a report over a period older than `retention.closed_case_alerts`
  undercounts alerts, never cases or tickets);
- **noise ratio**: alerts per ticket, overall and per route;
- **top detections**: alert titles by how many alerts carried them;
- **time to acknowledge / resolve**, per severity, for cases opened in the
  window: from the case's first alert to the first ticket transition a person
  made out of the "new" category (acknowledge), and to the first transition
  into "done" by anyone (resolve). Median and 90th percentile (nearest rank).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from ..model import Severity
from ..store import Store
from ..store.tables import alerts, cases, inbox, ticket_transitions
from ..web.queries import bucket_of
from .period import Window, buckets

DIMENSIONS = ("source", "route", "severity", "category", "tenant")
NONE = "(none)"


def percentile(values: list[float], share: float) -> float | None:
    """Return the nearest-rank percentile (share 0.5 is the median's upper middle, 0.9 the p90), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _first_alerts():
    """Each case's first alert: its category and tenant stand for the case's."""
    first = select(alerts.c.case_id, func.min(alerts.c.id).label("alert_id")).group_by(alerts.c.case_id).subquery()
    return first, alerts.alias("first_alert")


def _case_rows(where):
    first, first_alert = _first_alerts()
    return (
        select(cases.c.id, cases.c.route, cases.c.source, cases.c.severity, cases.c.first_seen, cases.c.ticket_key,
               first_alert.c.data["category"].as_string().label("category"),
               first_alert.c.data[("source", "tenant")].as_string().label("tenant"))
        .select_from(cases.join(first, first.c.case_id == cases.c.id).join(first_alert, first_alert.c.id == first.c.alert_id))
        .where(where)
    )


def _by(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Count rows (weighted by their `n` when grouped already) by each dimension, largest first."""
    out = {}
    for dim in DIMENSIONS:
        counts: Counter[str] = Counter()
        for row in rows:
            counts[str(row[dim] or NONE)] += row.get("n", 1)
        out[dim] = dict(counts.most_common())
    return out


async def build(store: Store, window: Window) -> dict[str, Any]:
    """Compute every figure of the report for a window."""
    start, end = window.start, window.end
    async with store.read() as conn:
        # Alerts are many: count them by every dimension at once in SQL, and sum the combinations here.
        in_window = (alerts.c.received_at >= start) & (alerts.c.received_at < end)
        columns = [alerts.c.source, cases.c.route, alerts.c.severity, alerts.c.title,
                   alerts.c.data["category"].as_string().label("category"), alerts.c.data[("source", "tenant")].as_string().label("tenant")]
        alert_query = (select(*columns, func.count().label("n")).select_from(alerts.join(cases, cases.c.id == alerts.c.case_id))
                       .where(in_window).group_by(*columns))
        alert_rows = [dict(r) for r in (await conn.execute(alert_query)).mappings()]
        size, labels = buckets(window)
        bucket = bucket_of(alerts.c.received_at, start, size, store.is_sqlite)
        alert_series = dict((await conn.execute(select(bucket, func.count()).where(in_window).group_by(bucket))).all())
        case_rows = [dict(r) for r in (await conn.execute(_case_rows((cases.c.first_seen >= start) & (cases.c.first_seen < end)))).mappings()]
        inbox_counts = dict((await conn.execute(
            select(inbox.c.state, func.count()).where(inbox.c.received_at >= start, inbox.c.received_at < end).group_by(inbox.c.state)
        )).all())
        transitions = (await conn.execute(
            select(ticket_transitions.c.case_id, ticket_transitions.c.at, ticket_transitions.c.category, ticket_transitions.c.by_hub)
            .where(ticket_transitions.c.case_id.in_([r["id"] for r in case_rows]) if case_rows else False)
            .order_by(ticket_transitions.c.at)
        )).all()
    ticket_rows = [row for row in case_rows if row["ticket_key"]]
    return {
        "period": {"kind": window.period, "label": window.label, "from": _iso(start), "to": _iso(end)},
        "totals": _totals(alert_rows, case_rows, ticket_rows, inbox_counts),
        "alerts": _by(alert_rows),
        "cases": _by(case_rows),
        "tickets": _by(ticket_rows),
        "noise_by_route": _noise_by_route(alert_rows, ticket_rows),
        "top_detections": _top_detections(alert_rows),
        "response": _response_times(case_rows, transitions),
        "series": _series(window, labels, size, alert_series, ticket_rows),
    }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _ratio(alert_count: int, ticket_count: int) -> float | None:
    return round(alert_count / ticket_count, 2) if ticket_count else None


def _totals(alert_rows, case_rows, ticket_rows, inbox_counts: dict[str, int]) -> dict[str, Any]:
    return {
        "events_received": sum(inbox_counts.values()),
        "events_unparsable": inbox_counts.get("dead", 0),
        "alerts": sum(row["n"] for row in alert_rows),
        "cases_opened": len(case_rows),
        "tickets_created": len(ticket_rows),
        "noise_ratio": _ratio(sum(row["n"] for row in alert_rows), len(ticket_rows)),
    }


def _noise_by_route(alert_rows, ticket_rows) -> dict[str, dict[str, Any]]:
    alert_counts: Counter[str] = Counter()
    for row in alert_rows:
        alert_counts[row["route"]] += row["n"]
    ticket_counts = Counter(row["route"] for row in ticket_rows)
    return {
        route: {"alerts": alert_counts[route], "tickets": ticket_counts[route], "ratio": _ratio(alert_counts[route], ticket_counts[route])}
        for route in sorted(set(alert_counts) | set(ticket_counts), key=lambda r: -alert_counts[r])
    }


def _top_detections(alert_rows, limit: int = 15) -> list[dict[str, Any]]:
    counts: Counter[tuple[str, str]] = Counter()
    for row in alert_rows:
        counts[row["title"], row["source"]] += row["n"]
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]  # ties by title: the same order every run
    return [{"title": title, "source": source, "alerts": n} for (title, source), n in ranked]


def _response_times(case_rows, transitions) -> dict[str, dict[str, Any]]:
    acknowledged: dict[int, float] = {}
    resolved: dict[int, float] = {}
    for case_id, at, category, by_hub in transitions:
        if not by_hub and category in ("indeterminate", "done"):
            acknowledged.setdefault(case_id, at)
        if category == "done":
            resolved.setdefault(case_id, at)
    out = {}
    for severity in reversed(list(Severity)):
        opened = [row for row in case_rows if row["severity"] == severity.value]
        ack = [acknowledged[r["id"]] - r["first_seen"] for r in opened if r["id"] in acknowledged]
        res = [resolved[r["id"]] - r["first_seen"] for r in opened if r["id"] in resolved]
        out[severity.value] = {
            "cases": len(opened),
            "acknowledged": len(ack), "ack_median_s": percentile(ack, 0.5), "ack_p90_s": percentile(ack, 0.9),
            "resolved": len(res), "resolve_median_s": percentile(res, 0.5), "resolve_p90_s": percentile(res, 0.9),
        }
    return out


def _series(window: Window, labels: list[str], size: float, alert_series: dict[int, int], ticket_rows) -> dict[str, Any]:
    last = len(labels) - 1
    series = {"labels": labels, "alerts": [0] * len(labels), "tickets": [0] * len(labels)}
    for number, count in alert_series.items():
        series["alerts"][min(int(number), last)] += count
    for row in ticket_rows:
        series["tickets"][min(int((row["first_seen"] - window.start) // size), last)] += 1
    return series
