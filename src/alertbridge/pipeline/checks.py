"""`alertbridge check --live`: try every route's tickets against the sink's real (or sandbox) API.

Each route's templates are rendered for a sample alert at every severity it
accepts, and the sink is asked what creating those tickets would meet: an
unknown project, issue type or field, a required field with no mapping, a
value outside the allowed options, a transition that does not exist.
"""

from __future__ import annotations

from jinja2 import TemplateError

from .. import connectors
from ..config import Config, Route
from ..connectors.roles import TicketSink, TransitionCheck
from ..errors import ConnectorError
from ..model import Alert, Observables, Severity, SourceInfo
from .route import draft_ticket


def sample_alert(route: Route, severity: Severity) -> Alert:
    """Return a plausible alert this route would take, for rendering its templates."""
    source = route.match.sources[0] if route.match.sources else "example"
    return Alert(
        source=SourceInfo(name=source, type="generic", product="Example product", vendor="Example", tenant=(route.match.tenants or [None])[0]),
        vendor_id="alertbridge-check", title="Example alert from alertbridge check", description="Rendered by alertbridge check.",
        severity=severity, category=(route.match.categories or ["other"])[0], url="https://console.example.com/alerts/1",
        observables=Observables(ips=["198.51.100.7"], users=["alice"], hosts=["ws-001"], domains=["example.com"]),
    )


async def check_routes_live(config: Config) -> list[str]:
    """Return every problem the sinks report for the configured routes."""
    sinks: dict[str, TicketSink] = {
        name: connectors.load(connectors.SINKS, cfg.type)(name, cfg) for name, cfg in config.sinks.items()
    }
    problems: list[str] = []
    try:
        for i, route in enumerate(config.settings.routes):
            if route.drop or route.sink is None:
                continue
            where = f"routes[{i}] ({route.name})"
            sink = sinks[route.sink]
            try:
                drafts = [
                    draft_ticket(route, sample_alert(route, severity), {"id": 0, "key": "check", "alert_count": 1, "reference": "alertbridge-check-0"})
                    for severity in Severity if severity.rank >= route.match.min_severity.rank
                ]
            except TemplateError as exc:
                problems.append(f"{where}: a template fails on a sample alert: {exc}")
                continue
            try:
                problems += [f"{where}: {p}" for p in await sink.check(drafts)]
                if isinstance(sink, TransitionCheck):
                    for name in filter(None, {route.resolve_transition, route.reopen_transition}):
                        problems += [f"{where}: {p}" for p in await sink.check_transition(route.project, route.issue_type, name)]
            except ConnectorError as exc:
                problems.append(f"{where}: cannot reach sink {route.sink!r}: {exc}")
    finally:
        for sink in sinks.values():
            await sink.aclose()
    return list(dict.fromkeys(problems))
