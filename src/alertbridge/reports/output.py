"""A report as JSON, CSV (one figure per row) or HTML with SVG charts (the same page as /ui/reports, standalone)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from markupsafe import Markup

from ..web.charts import columns, duration, ranking
from ..web.pages import render_page
from .figures import DIMENSIONS

MEDIA_TYPES = {"html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8", "json": "application/json"}
FORMATS = tuple(MEDIA_TYPES)


def charts(report: dict[str, Any]) -> dict[str, Markup]:
    """Draw the report's charts: alerts and tickets over the period, and alerts by each dimension."""
    series = report["series"]
    every = max(1, len(series["labels"]) // 12)
    drawn = {
        "alerts_over_time": columns(series["labels"], series["alerts"], "Alerts", every=every),
        "tickets_over_time": columns(series["labels"], series["tickets"], "Tickets created", every=every),
        "top_detections": ranking([(d["title"], d["alerts"]) for d in report["top_detections"]], "Top detections (alerts)", width=640),
    }
    for dim in DIMENSIONS:
        drawn[f"alerts_by_{dim}"] = ranking(list(report["alerts"][dim].items()), f"Alerts by {dim}")
    return drawn


def rows(report: dict[str, Any]) -> list[tuple[str, str, str, str, Any]]:
    """Flatten a report to (section, dimension, key, metric, value) rows."""
    out: list[tuple[str, str, str, str, Any]] = [("totals", "", "", name, value) for name, value in report["totals"].items()]
    for section in ("alerts", "cases", "tickets"):
        out += [(section, dim, key, "count", n) for dim in DIMENSIONS for key, n in report[section][dim].items()]
    for route, figures in report["noise_by_route"].items():
        out += [("noise", "route", route, metric, figures[metric]) for metric in ("alerts", "tickets", "ratio")]
    out += [("top_detections", "title", d["title"], "alerts", d["alerts"]) for d in report["top_detections"]]
    for severity, figures in report["response"].items():
        out += [("response", "severity", severity, metric, value) for metric, value in figures.items()]
    return out


def render(report: dict[str, Any], fmt: str) -> str:
    """Write a report in one of FORMATS."""
    if fmt == "json":
        return json.dumps(report, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["period", "section", "dimension", "key", "metric", "value"])
        label = report["period"]["label"]
        writer.writerows((label, *row) for row in rows(report))
        return buffer.getvalue()
    if fmt == "html":
        return render_page("report.html", {"report": report, "charts": charts(report)})
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def summary(report: dict[str, Any]) -> str:
    """Write a few plain lines for a chat notifier: the totals, response times by severity, the top detections."""
    totals = report["totals"]
    lines = [f"{totals['alerts']} alerts, {totals['cases_opened']} new cases, {totals['tickets_created']} tickets "
             f"(noise ratio {totals['noise_ratio'] or '-'} alerts per ticket)."]
    if totals["events_unparsable"]:
        lines.append(f"{totals['events_unparsable']} received event(s) could not be read: see the dead letters.")
    lines += [_response_line(severity, figures) for severity, figures in report["response"].items() if figures["cases"]]
    if top := report["top_detections"][:5]:
        lines.append("Top detections: " + ", ".join(f"{d['title']} ({d['alerts']})" for d in top))
    return "\n".join(lines)


def _response_line(severity: str, figures: dict[str, Any]) -> str:
    parts = [f"{severity}: {figures['cases']} case{'' if figures['cases'] == 1 else 's'}"]
    for done, key in (("acknowledged", "ack"), ("resolved", "resolve")):
        if figures[done]:
            parts.append(f"{done} {figures[done]} in {duration(figures[f'{key}_median_s'])} median, {duration(figures[f'{key}_p90_s'])} p90")
    if not figures["acknowledged"]:
        parts.append("none acknowledged yet")
    return "; ".join(parts)
