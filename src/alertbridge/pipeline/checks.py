"""`alertbridge check --live`: try every route's tickets against the sink's real (or sandbox) API.

Each route's templates are rendered for a sample alert at every severity it
accepts, and the sink is asked what creating those tickets would meet: an
unknown project, issue type or field, a required field with no mapping, a
value outside the allowed options, a transition the workflow does not have.
A sink that cannot be used at all (not that product, the credentials refused,
unreachable) is one problem of the sink, not one per route.

It also looks at the neighbours: the references on the project's recent tickets
name the alertbridge instances filing there. Another instance's tickets are a
warning (staging pointed at production's project), and so are this instance's
tickets for cases this database does not have (a database reset under a
configured `instance` name). Warnings, like a transition that cannot be checked,
are printed but do not fail the check.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from jinja2 import TemplateError

from .. import connectors
from ..config import Config, Route
from ..connectors.roles import ReferenceScan, SampleItem, TicketSink, TransitionCheck, parser_class
from ..connectors.writeback_roles import Resolutions
from ..errors import ConnectorError, Permanent, Unchecked
from ..lifecycle import lifecycle_of
from ..model import Alert, Observables, Severity, SourceInfo
from ..store.instance import Identity
from ..templates import render
from .route import draft_ticket


@dataclass
class LiveReport:
    """What the sinks said: problems fail the check, warnings do not."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        """Record a problem, once."""
        if text not in self.problems:
            self.problems.append(text)

    def warning(self, text: str) -> None:
        """Record a warning, once."""
        if text not in self.warnings:
            self.warnings.append(text)


def sample_alert(route: Route, severity: Severity, config: Config | None = None) -> Alert:
    """Return a plausible alert this route would take, for rendering its templates: its source's own sample when it has one."""
    source = route.match.sources[0] if route.match.sources else "example"
    own = _source_sample(config, source) if config is not None else None
    if own is not None:
        return own.model_copy(update={"severity": severity})
    return Alert(
        source=SourceInfo(name=source, type="generic", product="Example product", vendor="Example", tenant=(route.match.tenants or [None])[0]),
        vendor_id="alertbridge-check", title="Example alert from alertbridge check", description="Rendered by alertbridge check.",
        severity=severity, category=(route.match.categories or ["other"])[0], url="https://console.example.com/alerts/1",
        observables=Observables(ips=["198.51.100.7"], users=["alice"], hosts=["ws-001"], domains=["example.com"]),
    )


def _source_sample(config: Config, name: str) -> Alert | None:
    """Parse the sample item of a configured source whose parser declares one (SampleItem)."""
    source = config.sources.get(name)
    parser = parser_class(connectors.load(connectors.SOURCES, source.type)) if source is not None else None
    if parser is None or not issubclass(parser, SampleItem):
        return None
    made = parser(name, parser.Config.model_validate({"type": source.type, "tenant": source.tenant})).parse(parser.sample_item())
    return made[0] if made and isinstance(made[0], Alert) else None


async def check_routes_live(config: Config, identity: Identity | None = None) -> LiveReport:
    """Ask each route's sink about its tickets and transitions, and each project about its neighbours."""
    sinks: dict[str, TicketSink] = {
        name: connectors.load(connectors.SINKS, cfg.type)(name, cfg) for name, cfg in config.sinks.items()
    }
    report = LiveReport()
    broken: set[str] = set()  # sinks that cannot be used at all: said once, their routes skipped
    sound: set[tuple[str, str]] = set()  # (sink, project) of routes the sink found nothing wrong with
    try:
        for i, route in enumerate(config.settings.routes):
            if route.drop or route.sink is None or route.sink in broken:
                continue
            before = len(report.problems)
            try:
                await _check_route(sinks[route.sink], route, f"routes[{i}] ({route.name})", report, config)
            except ConnectorError as exc:
                broken.add(route.sink)
                report.problem(f"sinks.{route.sink}: {exc}" if isinstance(exc, Permanent) else f"sinks.{route.sink}: cannot reach it: {exc}")
            if len(report.problems) == before:
                sound.add((route.sink, route.project))
        for sink_name, project in sorted(sound):  # an unknown project is said by its routes already
            sink = sinks[sink_name]
            if sink_name in broken or not isinstance(sink, ReferenceScan):
                continue
            try:
                references = await sink.recent_references(project)
            except ConnectorError as exc:
                report.warning(f"sinks.{sink_name}: project {project}: its tickets' references could not be read: {exc}")
                continue
            for text in neighbours(references, config.settings.instance, identity):
                report.warning(f"sinks.{sink_name}: project {project}: {text}")
    finally:
        for sink in sinks.values():
            await sink.aclose()
    return report


async def _check_route(sink: TicketSink, route: Route, where: str, report: LiveReport, config: Config) -> None:
    try:
        drafts = [
            draft_ticket(route, sample_alert(route, severity, config),
                         {"id": 0, "key": "check", "alert_count": 1, "reference": "alertbridge-check-0"})
            for severity in Severity if severity.rank >= route.match.min_severity.rank
        ]
        for template in (route.members.host, route.members.line) if route.members else ():
            render(template, {"alert": sample_alert(route, route.match.min_severity, config)})
    except TemplateError as exc:
        report.problem(f"{where}: a template fails on a sample alert: {exc}")
        return
    for problem in await sink.check(drafts):
        report.problem(f"{where}: {problem}")
    lifecycle = lifecycle_of(route)
    moves = {move.transition for move in lifecycle.source_states.values()} if lifecycle is not None else set()
    if lifecycle is not None and isinstance(sink, Resolutions):
        for name in await sink.resolutions():
            if lifecycle.ticket_state("done", None, name) is None:
                report.problem(f"{where}: sync.ticket_states: resolution '{name}' of sink {route.sink} maps to no source state; "
                               "a ticket closed with it could not be written back")
    if isinstance(sink, TransitionCheck):
        done = route.members.done_transition if route.members else None
        for name in sorted(filter(None, {route.resolve_transition, route.reopen_transition, done, *moves})):
            try:
                for problem in await sink.check_transition(route.project, route.issue_type, name):
                    report.problem(f"{where}: {problem}")
            except Unchecked as exc:
                report.warning(f"{where}: {exc}")


def neighbours(references: list[str], configured: str | None, identity: Identity | None) -> list[str]:
    """Say which other alertbridge instances' tickets are among `references`, and any of ours no case of ours has."""
    ours = {name for name in (configured, identity.instance if identity else None) if name}
    others: Counter[str] = Counter()
    legacy = orphans = 0
    for reference in references:
        instance, _, case_id = reference.removeprefix("alertbridge-").rpartition("-")
        if not case_id.isdigit():
            continue
        if not instance:
            legacy += 1
        elif instance not in ours:
            others[instance] += 1
        elif identity is not None and int(case_id) > identity.last_case:
            orphans += 1
    found = [
        f"holds {n} recent ticket(s) of another alertbridge instance, {name!r}: a hub with its own database files there "
        "too (is this staging pointed at production's project?)"
        for name, n in others.most_common()
    ]
    if legacy and not (identity and identity.legacy):
        found.append(f"holds {legacy} recent ticket(s) labelled alertbridge-<case id> by an alertbridge without instance "
                     "ids, whose cases this database does not have")
    if orphans:
        found.append(f"holds {orphans} recent ticket(s) of this instance ({', '.join(sorted(ours))}) for cases this database "
                     "does not have: was it reset under the same `instance` name? Give this hub a new one")
    return found
