"""Figures from what the load generator saw, the sandbox's issues and the hub's /metrics."""

from __future__ import annotations

import math
import re

from loadgen import LoadResult, case_of_title
from procs import jira_epoch


def pct(values: list[float], share: float) -> float | None:
    """Return the `share` percentile (nearest rank) of `values`, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def spread(values: list[float]) -> dict:
    """Return p50, p99 and max of `values`."""
    return {"p50": pct(values, 0.5), "p99": pct(values, 0.99), "max": max(values, default=None)}


def intake_figures(load: LoadResult, ok_status: int) -> dict:
    """Summarise what the load generator saw: acknowledged alerts, throughput and latency."""
    acked = [s for s in load.sent if s.status == ok_status]
    statuses: dict[str, int] = {}
    for s in load.sent:
        statuses[str(s.status or "no answer")] = statuses.get(str(s.status or "no answer"), 0) + 1
    return {
        "sent": len(load.sent), "acknowledged": len(acked), "statuses": statuses, "transport_errors": load.errors,
        "attempts": load.attempts or len(load.sent), "bursts": load.bursts, "active_seconds": round(load.active_seconds, 3),
        "wall_seconds": round(load.wall_seconds, 3), "stopped_early": load.stopped_early,
        "throughput": len(acked) / load.active_seconds if load.active_seconds else 0.0,
        "latency_ms": spread([s.latency * 1000 for s in acked]),
        "start_late_ms": spread([s.late * 1000 for s in load.sent]) if load.paced else None,
    }


def ticket_figures(load: LoadResult, issues: list[dict], window: float = 10.0) -> dict:
    """Match issues to cases; count duplicates; measure lag from acknowledgement to ticket and to first comment.

    `lag_over_time` is the ticket lag's p99 per `window` seconds of the load, by when the case's first alert was
    acknowledged: a lag that grows from window to window is a backlog that grows.
    """
    acks: dict[int, list[float]] = {}
    for s in load.sent:
        if s.status == 202:
            acks.setdefault(s.case, []).append(s.acked_at)
    for times in acks.values():
        times.sort()
    by_case: dict[int, list[dict]] = {}
    by_label: dict[str, int] = {}
    comments = 0
    for issue in issues:
        fields = issue["fields"]
        case = case_of_title(fields["summary"])
        by_case.setdefault(case if case is not None else -1, []).append(fields)
        for label in fields["labels"]:
            if label.startswith("alertbridge-"):
                by_label[label] = by_label.get(label, 0) + 1
        comments += len(fields["comment"]["comments"])
    ticket_lag, comment_lag, windows = [], [], {}
    start = min((times[0] for times in acks.values()), default=0.0)
    for case, times in acks.items():
        found = by_case.get(case)
        if not found:
            continue
        first = min(found, key=lambda f: f["created"])
        lag = (jira_epoch(first["created"]) - times[0]) * 1000
        ticket_lag.append(lag)
        windows.setdefault(int((times[0] - start) // window), []).append(lag)
        notes = sorted(jira_epoch(c["created"]) for f in found for c in f["comment"]["comments"])
        if len(times) > 1 and notes:
            comment_lag.append((notes[0] - times[1]) * 1000)
    return {
        "tickets": len(issues),
        "cases_sent": len(acks),
        "cases_without_ticket": sum(1 for case in acks if case not in by_case),
        "duplicate_labels": sum(1 for n in by_label.values() if n > 1),
        "duplicate_tickets": sum(len(found) - 1 for found in by_case.values()),
        "comments": comments,
        "ticket_lag_ms": spread(ticket_lag),
        "comment_lag_ms": spread(comment_lag),
        "lag_over_time": [{"from_s": n * window, "cases": len(lags), "ticket_lag_p99_ms": pct(lags, 0.99)}
                          for n, lags in sorted(windows.items())],  # fmt: skip
    }


def parse_metrics(text: str) -> dict:
    """Pick the sink-call and 429 counters out of the hub's Prometheus text."""
    calls: dict[str, float] = {}
    limited: dict[str, float] = {}
    for line in text.splitlines():
        if match := re.match(r'alertbridge_sink_calls_total\{(.*)\} ([0-9.e+]+)', line):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))
            key = f"{labels['operation']}:{labels['outcome']}"
            calls[key] = calls.get(key, 0) + float(match[2])
        elif match := re.match(r'alertbridge_rate_limited_total\{(.*)\} ([0-9.e+]+)', line):
            reason = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))["reason"]
            limited[reason] = limited.get(reason, 0) + float(match[2])
    return {"sink_calls": calls, "rate_limited_by_reason": limited}
