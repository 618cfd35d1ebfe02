"""`alertbridge plan` output for people: one block per alert, or a readable diff of a replay."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from .explain import AlertPlan

MARKS = {"taken": "✓", "drops it": "✗ drop", "no": "✗", "not reached": "·", "error": "!"}
SHOWN = 10


def _short(value: Any, width: int = 70) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "⏎ ")
    return text if len(text) <= width else text[: width - 1] + "…"


def explain_text(plans: list[AlertPlan]) -> str:
    """Write the per-alert plan."""
    lines: list[str] = []
    for number, plan in enumerate(plans, 1):
        alert = plan.alert
        lines.append(f"alert {number}: {alert.title!r} ({alert.source.name}, {alert.severity.value}, vendor id {alert.vendor_id})")
        lines.append("  routes:")
        for verdict in plan.routes:
            reason = f": {verdict.reason}" if verdict.reason else ""
            lines.append(f"    {MARKS.get(verdict.verdict, '?')} {verdict.route}{reason}{'  <- takes it' if verdict.verdict == 'taken' else ''}")
        if plan.key is not None:
            lines.append(f"  case key: {plan.key!r} (route {plan.route})")
        lines.append(f"  would: {plan.case}")
        lines += [f"  problem: {problem}" for problem in plan.problems]
        if plan.draft is not None:
            lines += _ticket(plan)
        lines.append("")
    return "\n".join(lines)


def _ticket(plan: AlertPlan) -> list[str]:
    draft = plan.draft or {}
    lines = [f"  ticket for sink {plan.sink!r}:",
             f"    project {draft['project']!r}, issue type {draft['issue_type']!r}, severity {draft['severity']}",
             f"    summary: {_short(draft['summary'], 100)}",
             f"    reference: {draft['reference']} (how the sink finds the case's ticket)",
             f"    labels: {', '.join(draft['labels']) or '-'}"]
    ids = plan.preview.field_ids if plan.preview else {}
    body_fields = (plan.preview.body.get("fields") or {}) if plan.preview else {}
    if draft["fields"]:
        lines.append("    fields (name -> id: value as sent):")
        for name, value in draft["fields"].items():
            field_id = ids.get(name)
            sent = body_fields.get(field_id, value) if field_id else value
            lines.append(f"      {name} -> {field_id or '(id unknown)'}: {_short(sent)}")
    if plan.preview is not None:
        lines += [f"    sink says: {problem}" for problem in plan.preview.problems]
        lines.append("    request body: " + json.dumps(plan.preview.body, ensure_ascii=False))
    else:
        lines.append(f"    ({plan.preview_note})")
    return lines


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def diff_text(diff: dict[str, Any], config_name: str) -> str:
    """Write a replay's differences as a readable diff."""
    window = diff["window"]
    lines = [f"plan: {diff['alerts']} stored alerts from {_when(window['from'])} to {_when(window['to'])} "
             f"replayed through {config_name} (nothing was sent or written)",
             f"  alerts: {diff['alerts_same_case']} same case, {diff['alerts_other_case']} other case, "
             f"{diff['alerts_newly_dropped']} newly dropped, {diff['alerts_newly_routed']} newly routed",
             f"  cases: {diff['cases_before']} -> {diff['cases_after']}; tickets created: {diff['tickets_before']} -> {diff['tickets_after']}"]
    if diff["events_unparsable"]:
        lines.append(f"  {diff['events_unparsable']} stored event(s) do not parse with this config")
    if diff["events_pruned"]:
        lines.append(f"  {diff['events_pruned']} stored event(s) have no body left (retention.inbox_bodies) and are not replayed")
    for source, count in diff["sources_not_in_config"].items():
        lines.append(f"  source {source!r} is not in this config: its {count} event(s) are not replayed")
    lines.append(f"\nmerges: {len(diff['merges'])} new case(s) would each take the alerts of several of today's cases")
    for merge in diff["merges"][:SHOWN]:
        olds = ", ".join(str(c) for c in merge["old_cases"])
        lines.append(f"  + {merge['key']!r} (route {merge['route']}, {merge['alerts']} alerts) <- cases {olds}")
    lines += _more(diff["merges"])
    lines.append(f"\nsplits: {len(diff['splits'])} of today's case(s) would split")
    for split in diff["splits"][:SHOWN]:
        into = "; ".join(f"{part['key']!r} ({part['alerts']} alerts)" for part in split["into"])
        lines.append(f"  - case {split['old_case']} {split['key']!r} -> {into}")
    lines += _more(diff["splits"])
    lines.append(f"\ntickets: {len(diff['tickets_only_after'])} would be created that were not, "
                 f"{len(diff['tickets_only_before'])} were created that would not be")
    for ticket in diff["tickets_only_after"][:SHOWN]:
        lines.append(f"  + {ticket['key']!r} (route {ticket['route']}, {ticket['alerts']} alerts)")
    lines += _more(diff["tickets_only_after"])
    if diff["tickets_only_before"]:
        lines.append("  - cases " + ", ".join(str(c) for c in diff["tickets_only_before"][:50]))
    lines += _routes_text(diff["routes"])
    lines += _changes_text(diff["ticket_changes"])
    return "\n".join(lines) + "\n"


def _more(items: list) -> list[str]:
    return [f"  … and {len(items) - SHOWN} more (--json lists all)"] if len(items) > SHOWN else []


def _routes_text(routes: dict[str, Any]) -> list[str]:
    lines = ["\nroutes:"]
    lines += [f"  {move['from']} -> {move['to']}: {move['alerts']} alert(s)" for move in routes["moves"]]
    lines += [f"  {gone['route']} no longer matches any alert (it took {gone['alerts_before']})" for gone in routes["no_longer_matching"]]
    lines += [f"  {new['route']} now takes {new['alerts_after']} alert(s) (it took none)" for new in routes["newly_matching"]]
    return lines if len(lines) > 1 else ["\nroutes: every alert keeps its route"]


def _changes_text(changes: list[dict[str, Any]] | None) -> list[str]:
    if changes is None:
        return ["\nticket fields and projects: not compared (give --current with the running config to compare them)"]
    if not changes:
        return ["\nticket fields and projects: unchanged for every ticket both configs create"]
    by_what: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for change in changes:
        by_what[change["what"]].append(change)
    lines = ["\nticket fields and projects (tickets both configs create):"]
    for what, items in by_what.items():
        first = items[0]
        lines.append(f"  {what}: changes on {len(items)} ticket(s), e.g. case {first['case']}: "
                     f"{_short(first['before'], 40)} -> {_short(first['after'], 40)}")
    return lines
