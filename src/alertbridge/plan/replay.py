"""`alertbridge plan --since 24h`: replay the stored events through a changed config and say what would differ.

The stored raw events (the inbox) are parsed by the new config's sources,
given the enrichment recorded for them (enrichers are not called: no vendor
call, no budget spent), routed and correlated in memory with the same
decision function as the pipeline (`correlate.decide`). What the database
recorded is the baseline: which route and case each alert went to, and the
ticket each case's create job asked for.

Cases that existed before the window are the starting state, with their
closing times as recorded. A new case whose first alert also opened a
recorded case is that case's ticket, so it closes when that ticket did;
other new cases stay open (no one has closed tickets that never existed).
Nothing is written anywhere.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import select

from ..config import Config, Route
from ..connectors.roles import Parser
from ..model import Alert
from ..pipeline.correlate import decide, key_hash
from ..pipeline.process import decode
from ..pipeline.route import draft_ticket
from ..store import Store
from ..store.tables import alerts, cases, inbox
from .explain import case_key, choose_route

BATCH = 1000
DRAFT_FIELDS = ("project", "issue_type", "summary", "labels")


@dataclass
class Replayed:
    """One stored alert: where it went then, and where it would go now."""

    number: int
    at: float
    alert: Alert
    old_route: str | None
    old_case: int | None
    new_route: str | None = None
    new_key: str | None = None
    new_case: str | None = None  # "case 12" (an existing case) or "new 3"


@dataclass
class SimCase:
    """A case as the new config would have it."""

    label: str
    route: Route
    key: str
    closed_at: float | None = None
    resolution: str | None = None
    first: Replayed | None = None
    alerts: list[Replayed] = field(default_factory=list)


async def replay(config: Config, store: Store, sources: dict[str, Parser], start: float, end: float,
                 current: Config | None = None) -> dict[str, Any]:
    """Replay the events received in [start, end) through `config`; return the differences as JSON-ready data.

    With `current` (the running config), tickets both configs create are compared field by field: the ticket
    is rendered when its create job runs, so the database keeps which route revision made it, not its fields.
    """
    items, skipped, missing_sources = await _load(store, sources, start, end)
    for item in items:
        verdicts, route = choose_route(item.alert, config.settings.routes)
        if route is not None:
            try:
                item.new_route, item.new_key = route.name, case_key(route, item.alert)
            except TemplateError:
                item.new_route = None
    old_cases = await _recorded(store, {i.old_case for i in items if i.old_case is not None})
    preexisting = await _preexisting(store, {key_hash(i.new_route, i.new_key) for i in items if i.new_route}, start)
    sims = _simulate(items, {r.name: r for r in config.settings.routes}, preexisting, old_cases)
    running = {r.name: r for r in current.settings.routes} if current is not None else None
    return _compare(items, sims, old_cases, running, start) | {
        "window": {"from": start, "to": end}, "events_unparsable": skipped["unparsable"], "events_pruned": skipped["pruned"],
        "sources_not_in_config": missing_sources,
    }


async def _load(store: Store, sources: dict[str, Parser], start: float, end: float):
    """Read and parse the window's events batch by batch, joined with what was recorded for each alert."""
    items: list[Replayed] = []
    unparsable, missing = 0, Counter()
    pruned = 0
    after = 0
    while True:
        async with store.read() as conn:
            rows = (await conn.execute(
                select(inbox.c.id, inbox.c.source, inbox.c.body, inbox.c.received_at)
                .where(inbox.c.received_at >= start, inbox.c.received_at < end, inbox.c.id > after).order_by(inbox.c.id).limit(BATCH)
            )).all()
            if not rows:
                break
            recorded = {(r.inbox_id, r.alert_id): r for r in (await conn.execute(
                select(alerts.c.inbox_id, alerts.c.alert_id, alerts.c.case_id, alerts.c.received_at, cases.c.route, alerts.c.data["enrichment"].label("enrichment"))
                .select_from(alerts.join(cases, cases.c.id == alerts.c.case_id))
                .where(alerts.c.inbox_id.in_([r.id for r in rows]))
            )).all()}
        after = rows[-1].id
        for row in rows:
            if not row.body:
                pruned += 1  # retention blanked the body (retention.inbox_bodies): nothing to replay
                continue
            source = sources.get(row.source)
            if source is None:
                missing[row.source] += 1
                continue
            try:
                parsed = [a for a in source.parse(decode(row.body)) if isinstance(a, Alert)]
            except Exception:  # noqa: BLE001 — the same event the pipeline dead-letters
                unparsable += 1
                continue
            for alert in parsed:
                then = recorded.get((row.id, alert.id))
                if then is not None and then.enrichment:
                    alert.enrichment = then.enrichment if isinstance(then.enrichment, dict) else json.loads(then.enrichment)
                items.append(Replayed(len(items) + 1, then.received_at if then else row.received_at, alert,
                                      then.route if then else None, then.case_id if then else None))
    return items, {"unparsable": unparsable, "pruned": pruned}, dict(missing)


async def _recorded(store: Store, case_ids: set[int]) -> dict[int, dict[str, Any]]:
    """Return the recorded cases."""
    found = {}
    ids = sorted(case_ids)
    async with store.read() as conn:
        for chunk in (ids[i:i + BATCH] for i in range(0, len(ids), BATCH)):
            for row in (await conn.execute(select(cases).where(cases.c.id.in_(chunk)))).mappings():
                found[row["id"]] = dict(row)
    return found


async def _preexisting(store: Store, digests: set[str], start: float) -> dict[str, dict[str, Any]]:
    """Return, per key hash, the newest case opened before the window: the state the replay starts from."""
    found: dict[str, dict[str, Any]] = {}
    digest_list = sorted(digests)
    async with store.read() as conn:
        for chunk in (digest_list[i:i + BATCH] for i in range(0, len(digest_list), BATCH)):
            query = select(cases).where(cases.c.key_hash.in_(chunk), cases.c.first_seen < start).order_by(cases.c.id)
            for row in (await conn.execute(query)).mappings():
                found[row["key_hash"]] = dict(row)
    return found


def _simulate(items: list[Replayed], routes: dict[str, Route], preexisting, old_cases) -> dict[str, SimCase]:
    """Correlate the replayed alerts in order, in memory, with the pipeline's own decision function."""
    current: dict[str, SimCase] = {}
    sims: dict[str, SimCase] = {}
    opened = 0
    openers = {}  # recorded case -> the replayed alert that opened it
    for item in items:
        if item.old_case is not None and item.old_case not in openers:
            openers[item.old_case] = item
    for item in items:
        if item.new_route is None:
            continue
        route = routes[item.new_route]
        digest = key_hash(route.name, item.new_key)
        sim = current.get(digest)
        if sim is None and digest in preexisting:
            case = preexisting[digest]
            sim = SimCase(f"case {case['id']}", route, item.new_key, case["closed_at"], case["resolution"])
        view = None if sim is None else {
            "state": "closed" if sim.closed_at is not None and sim.closed_at <= item.at else "open",
            "closed_at": sim.closed_at, "resolution": sim.resolution,
        }
        outcome = decide(view, item.alert, route, item.at)
        if outcome == "ignored":
            continue  # no case at all: a tracked route's fix of something never ticketed
        if outcome == "opened":
            opened += 1
            sim = SimCase(f"new {opened}", route, item.new_key, first=item)
            then = old_cases.get(item.old_case)
            if then is not None and openers[item.old_case] is item and then["closed_at"]:
                sim.closed_at, sim.resolution = then["closed_at"], then["resolution"]  # the same ticket: it closed then
        elif outcome == "reopened":
            sim.closed_at = None
        current[digest] = sim
        sims[sim.label] = sim
        sim.alerts.append(item)
        item.new_case = sim.label
    return sims


def _compare(items: list[Replayed], sims: dict[str, SimCase], old_cases, running: dict[str, Route] | None, start: float) -> dict[str, Any]:
    """Turn the old and new assignments of every alert into merges, splits, tickets, fields and routes."""
    by_old: dict[int, set[str]] = defaultdict(set)
    by_new: dict[str, set[int]] = defaultdict(set)
    for item in items:
        if item.old_case is not None and item.new_case is not None:
            by_old[item.old_case].add(item.new_case)
            by_new[item.new_case].add(item.old_case)
    old_members = defaultdict(set)
    for item in items:
        if item.old_case is not None:
            old_members[item.old_case].add(item.number)
    merges = [{"new_case": label, "route": sims[label].route.name, "key": sims[label].key, "old_cases": sorted(olds),
               "alerts": len(sims[label].alerts)} for label, olds in by_new.items() if len(olds) > 1]
    splits = [{"old_case": case_id, "route": old_cases[case_id]["route"], "key": old_cases[case_id]["key"],
               "into": [{"case": label, "key": sims[label].key, "alerts": sum(1 for a in sims[label].alerts if a.old_case == case_id)}
                        for label in sorted(news)]} for case_id, news in by_old.items() if len(news) > 1]
    new_opened = [s for s in sims.values() if s.label.startswith("new ")]
    old_opened = {c for c in old_members if c in old_cases and old_cases[c]["first_seen"] >= start}
    same = {s.label: next(iter(by_new[s.label])) for s in new_opened
            if len(by_new[s.label]) == 1 and {a.number for a in s.alerts} == old_members[next(iter(by_new[s.label]))]}
    def kept(item: Replayed) -> bool:
        return same.get(item.new_case) == item.old_case or item.new_case == f"case {item.old_case}"

    return {
        "alerts": len(items),
        "alerts_same_case": sum(1 for i in items if i.old_case is not None and i.new_case is not None and kept(i)),
        "alerts_other_case": sum(1 for i in items if i.old_case is not None and i.new_case is not None and not kept(i)),
        "alerts_newly_dropped": sum(1 for i in items if i.old_case is not None and i.new_case is None),
        "alerts_newly_routed": sum(1 for i in items if i.old_case is None and i.new_case is not None),
        "cases_before": len(old_members), "cases_after": len(sims),
        "tickets_before": len(old_opened), "tickets_after": len(new_opened),
        "merges": merges, "splits": splits,
        "tickets_only_before": sorted(old_opened - set(same.values())),
        "tickets_only_after": [{"case": s.label, "route": s.route.name, "key": s.key, "alerts": len(s.alerts)}
                               for s in new_opened if s.label not in same],
        "routes": _route_changes(items),
        "ticket_changes": _draft_changes(sims, same, old_cases, running) if running is not None else None,
    }


def _route_changes(items: list[Replayed]) -> dict[str, Any]:
    moves = Counter((i.old_route or "(dropped)", i.new_route or "(dropped)") for i in items if i.old_route != i.new_route)
    before = Counter(i.old_route for i in items if i.old_route)
    after = Counter(i.new_route for i in items if i.new_route)
    return {
        "moves": [{"from": a, "to": b, "alerts": n} for (a, b), n in moves.most_common()],
        "no_longer_matching": [{"route": r, "alerts_before": n} for r, n in before.items() if not after[r]],
        "newly_matching": [{"route": r, "alerts_after": n} for r, n in after.items() if not before[r]],
    }


def _draft_changes(sims: dict[str, SimCase], same: dict[str, int], old_cases, running: dict[str, Route]) -> list[dict[str, Any]]:
    """Compare, for each ticket both configs would create, the ticket the running config renders with the new one."""
    changes: list[dict[str, Any]] = []
    for label, case_id in same.items():
        sim, case = sims[label], old_cases[case_id]
        route = running.get(case["route"])
        if route is None or sim.first is None:
            continue
        context = {"id": case_id, "key": case["key"], "alert_count": 1, "reference": case["reference"] or ""}
        try:
            old = draft_ticket(route, sim.first.alert, context)
            new = draft_ticket(sim.route, sim.first.alert, context | {"key": sim.key})
        except TemplateError as exc:
            changes.append({"case": case_id, "what": "template", "before": None, "after": f"fails: {exc}"})
            continue
        for name in DRAFT_FIELDS:
            if getattr(old, name) != getattr(new, name):
                changes.append({"case": case_id, "what": name, "before": getattr(old, name), "after": getattr(new, name)})
        for name in sorted(set(old.fields) | set(new.fields)):
            if old.fields.get(name) != new.fields.get(name):
                changes.append({"case": case_id, "what": f"field {name}", "before": old.fields.get(name), "after": new.fields.get(name)})
    return changes
