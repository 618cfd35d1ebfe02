"""Routing: pick the first route whose conditions hold, and render what it needs. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Route
from ..connectors.roles import TicketDraft
from ..model import Alert
from ..templates import is_true, render


@dataclass
class Routed:
    """An alert with its route and its rendered case key."""

    alert: Alert
    route: Route
    key: str


def matches(route: Route, alert: Alert) -> bool:
    """Tell whether every condition of the route's match holds for the alert."""
    match = route.match
    if match.sources and alert.source.name not in match.sources:
        return False
    if alert.severity.rank < match.min_severity.rank:
        return False
    if match.categories and (alert.category or "").lower() not in {c.lower() for c in match.categories}:
        return False
    if match.tenants and alert.source.tenant not in match.tenants:
        return False
    return not match.when or is_true(match.when, {"alert": alert})


def route_alert(alert: Alert, routes: list[Route]) -> Routed | None:
    """Return the first matching route with the case key, or None when no route (or a drop route) takes it."""
    for route in routes:
        if matches(route, alert):
            if route.drop:
                return None
            alert = apply_rules(route, alert)
            key = render(route.group_by, {"alert": alert}) or alert.id
            return Routed(alert, route, key)
    return None


def apply_rules(route: Route, alert: Alert) -> Alert:
    """Return the alert with the severity and category the route's rules give it (the first rule setting each wins)."""
    changes: dict[str, Any] = {}
    for rule in route.rules:
        wanted = {name: value for name, value in (("severity", rule.severity), ("category", rule.category)) if value is not None}
        if set(wanted) - set(changes) and is_true(rule.when, {"alert": alert}):
            changes = wanted | changes
    return alert.model_copy(update=changes) if changes else alert


def draft_ticket(route: Route, alert: Alert, case: dict[str, Any]) -> TicketDraft:
    """Render a route's ticket templates for an alert and its case."""
    context = {"alert": alert, "case": case}
    return TicketDraft(
        project=route.project,
        issue_type=route.issue_type,
        summary=render(route.summary, context),
        description=render(route.description, context),
        severity=alert.severity,
        reference=case.get("reference", ""),  # the create passes the case's; a draft made for its fields needs none
        labels=[label for label in (render(t, context) for t in route.labels) if label],
        fields={name: render(template, context) for name, template in route.fields.items()},
    )
