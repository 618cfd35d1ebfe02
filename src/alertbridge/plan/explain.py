"""`alertbridge plan PAYLOAD…`: what a config would do with each alert, step by step, without doing it.

For each alert: every route in order and why it did not take the alert, the
case key, whether the alert would open a case or join (reopen) one — read
from the database when it is there, never written — and the ticket exactly as
the sink would receive it, fields by name and by id (`TicketPreview`, which
reads the sink's metadata only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from jinja2 import TemplateError
from sqlalchemy import select

from ..config import Config, Route
from ..connectors.operator_roles import PreviewedTicket, TicketPreview
from ..connectors.roles import TicketSink
from ..model import Alert, case_reference
from ..pipeline.correlate import decide, key_hash
from ..pipeline.route import draft_ticket, mismatch
from ..store import Store
from ..store.instance import instance_id
from ..store.tables import cases
from ..templates import render


@dataclass
class RouteVerdict:
    """What one route made of an alert: taken, drops it, no (with the reason) or not reached."""

    route: str
    verdict: str
    reason: str | None = None


@dataclass
class AlertPlan:
    """Everything the config would do with one alert."""

    alert: Alert
    routes: list[RouteVerdict]
    route: str | None = None
    key: str | None = None
    case: str = "dropped: no route takes it"
    case_id: int | None = None
    sink: str | None = None
    draft: dict[str, Any] | None = None
    preview: PreviewedTicket | None = None
    preview_note: str | None = None  # why there is no preview
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Return the plan as JSON-ready data."""
        out = {k: v for k, v in asdict(self).items() if k not in ("alert", "preview")}
        out["alert"] = {"id": self.alert.id, "title": self.alert.title, "source": self.alert.source.name,
                        "severity": self.alert.severity.value, "vendor_id": self.alert.vendor_id}
        out["preview"] = asdict(self.preview) if self.preview else None
        return out


def choose_route(alert: Alert, routes: list[Route]) -> tuple[list[RouteVerdict], Route | None]:
    """Walk the routes in order as the pipeline does, saying why each one before the winner did not take the alert."""
    verdicts: list[RouteVerdict] = []
    chosen, stopped = None, False
    for route in routes:
        if stopped:
            verdicts.append(RouteVerdict(route.name, "not reached"))
            continue
        try:
            reason = mismatch(route, alert)
        except TemplateError as exc:
            verdicts.append(RouteVerdict(route.name, "error", f"match.when fails: {exc} (the pipeline would dead-letter the event)"))
            stopped = True
            continue
        if reason:
            verdicts.append(RouteVerdict(route.name, "no", reason))
            continue
        stopped = True
        verdicts.append(RouteVerdict(route.name, "drops it" if route.drop else "taken"))
        chosen = None if route.drop else route
    return verdicts, chosen


def case_key(route: Route, alert: Alert) -> str:
    """Render the route's group_by for an alert, as routing does."""
    return render(route.group_by, {"alert": alert}) or alert.id


async def explain(config: Config, store: Store | None, sinks: dict[str, TicketSink], alerts: list[Alert], now: float) -> list[AlertPlan]:
    """Plan each alert in order; alerts earlier in the list count as having happened (a repeat joins their case)."""
    opened_here: dict[str, int] = {}  # key hash -> number of the alert that would open it
    plans = []
    for number, alert in enumerate(alerts, 1):
        verdicts, route = choose_route(alert, config.settings.routes)
        plan = AlertPlan(alert, verdicts)
        plans.append(plan)
        if route is None:
            plan.case = "dropped by a drop route" if any(v.verdict == "drops it" for v in verdicts) else plan.case
            continue
        plan.route, plan.sink = route.name, route.sink
        try:
            plan.key = case_key(route, alert)
        except TemplateError as exc:
            plan.problems.append(f"group_by fails: {exc}")
            continue
        digest = key_hash(route.name, plan.key)
        if digest in opened_here:
            plan.case = f"join the case alert {opened_here[digest]} above would open"
            continue
        existing = await _latest_case(store, route.name, digest)
        outcome = decide(existing, alert, route, now)
        if outcome == "ignored":
            plan.case = "be ignored: the route tracks members, and this fixes something never ticketed"
            continue
        if outcome != "opened":
            plan.case_id = existing["id"]
            ticket = f", ticket {existing['ticket_key']}" if existing["ticket_key"] else ", no ticket yet"
            plan.case = {"repeat": "join", "reopened": "reopen", "suppressed": "be recorded on (nothing sent to)"}[outcome] + \
                f" case {existing['id']} ({existing['state']}, {existing['alert_count']} alerts{ticket})"
            continue
        opened_here[digest] = number
        plan.case = "open a new case" + (" (the database is not reachable: existing cases unknown)" if store is None else "")
        await _draft(plan, route, alert, sinks, await _instance(store))
    return plans


async def _latest_case(store: Store | None, route: str, digest: str) -> dict[str, Any] | None:
    if store is None:
        return None
    async with store.read() as conn:
        row = (await conn.execute(select(cases).where(cases.c.route == route, cases.c.key_hash == digest)
                                  .order_by(cases.c.id.desc()).limit(1))).mappings().first()
    return dict(row) if row else None


async def _instance(store: Store | None) -> str:
    if store is None:
        return "<instance id>"
    async with store.read() as conn:
        return await instance_id(conn)


async def _draft(plan: AlertPlan, route: Route, alert: Alert, sinks: dict[str, TicketSink], instance: str) -> None:
    # The case id, and so its reference, exists only once the case does.
    case = {"id": "<new case id>", "key": plan.key, "alert_count": 1, "reference": case_reference(instance, "<new case id>")}  # type: ignore[arg-type]
    try:
        draft = draft_ticket(route, alert, case)
    except TemplateError as exc:
        plan.problems.append(f"a ticket template fails: {exc}")
        return
    plan.draft = asdict(draft) | {"severity": draft.severity.value}
    sink = sinks.get(route.sink or "")
    if sink is None:
        plan.preview_note = "offline: the sink's metadata was not read, so field ids are unknown"
    elif not isinstance(sink, TicketPreview):
        plan.preview_note = f"sink {route.sink!r} cannot show its request: the draft above is what it is given"
    else:
        try:
            plan.preview = await sink.preview(draft)
        except Exception as exc:  # noqa: BLE001 — an unreachable sink leaves the draft, and says why
            plan.problems.append(f"cannot read sink {route.sink!r}'s metadata: {type(exc).__name__}: {exc}")
