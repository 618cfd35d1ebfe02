"""The config file: YAML, validated by pydantic, every problem reported with its path.

Strings may reference the environment as ``${VAR}`` or ``${VAR:-default}``; any
key ``<name>_file`` is replaced by ``<name>`` holding the file's contents, so
secrets can live in files mounted by the orchestrator.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, PrivateAttr, SecretStr, ValidationError, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from . import connectors
from .connectors.notify_roles import ReviewConfig
from .connectors.roles import EnricherConfig, NotifierConfig, ParserConfig, SinkConfig, StrictModel
from .errors import ConfigError
from .lifecycle import Lifecycle, check_writebacks
from .model import Severity
from .notify_policy import HealthPolicy, NotifyPolicy, Playbook
from .store.instance import NAME as INSTANCE_NAME
from .config_reports import check_reports
from .config_values import Duration, _format, _resolve, parse_duration  # noqa: F401 - parse_duration is public here too
from .config_sinks import AlsoSink, check_targets
from .templates import syntax_error

class Match(StrictModel):
    """Which alerts a route takes; every given condition must hold."""

    sources: list[str] = Field(default=[], description="Source names; empty means any", examples=[["splunk"]])
    min_severity: Severity = Field(default=Severity.info, description="Lowest severity taken", examples=["medium"])
    categories: list[str] = Field(default=[], description="Alert categories; empty means any", examples=[["malware"]])
    tenants: list[str] = Field(default=[], description="Tenants; empty means any", examples=[["contoso"]])
    when: str | None = Field(default=None, description="Jinja expression over `alert`", examples=["'test' not in alert.title|lower"])


class MemberTracking(StrictModel):
    """Keep a case's hosts one by one (pipeline/members.py): fixed ones leave the ticket, re-opened ones come back."""

    host: str = Field(default="{{ (alert.hosts + alert.ips + [alert.vendor_id])|first }}",
                      description="Template naming the host an alert is about; the ticket lists each host once",
                      examples=["{{ alert.raw.host.dns or alert.raw.host.ip }}"])
    line: str = Field(default="{{ alert.ips|join(', ') }}", description="Template for what the ticket says about one alert's "
                      "member on its host (IP, OS, first and last found…)", examples=["{{ alert.raw.host.ip }}, QID {{ alert.raw.detection.qid }}"])
    field: str | None = Field(default=None, description="Ticket field (by name, a text field) rewritten with the open hosts "
                              "on every change; null: the hosts go in comments only", examples=["Affected Hosts"])
    comment: bool = Field(default=True, description="Comment on the ticket which hosts were fixed, added or re-opened")
    done_transition: str | None = Field(default="Done", description="Transition once every host is fixed; null: leave the ticket open",
                                        examples=["Done"])
    done_resolution: str | None = Field(default="Done", description="Resolution set by done_transition", examples=["Done"])
    settle: Duration = Field(default=30.0, description="Wait this long after a change before writing the ticket, so one scan "
                             "makes one comment", examples=["30s"])

class Rule(StrictModel):
    """Set the severity or category of the alerts a route takes when a condition holds."""

    when: str = Field(description="Jinja expression over `alert`", examples=["alert.raw.attachments | selectattr('risk') | list"])
    severity: Severity | None = Field(default=None, description="Severity to set", examples=["high"])
    category: str | None = Field(default=None, description="Category to set", examples=["malware"])


class Route(StrictModel):
    """Where matching alerts go, how they group into cases, and what tickets look like."""

    name: str = Field(description="Unique name, shown in cases and metrics", examples=["splunk-to-soc"])
    match: Match = Match()
    rules: list[Rule] = Field(default=[], description="Severity and category rules; for each, the first rule that holds "
                              "and sets it decides")  # fmt: skip
    drop: bool = Field(default=False, description="Drop matching alerts instead of ticketing them")
    sink: str | None = Field(default=None, description="Sink name from `sinks`", examples=["jira"])
    also_sinks: list[AlsoSink] = Field(default=[], description="Further sinks that each get their own ticket of every case (config_sinks.py)")
    project: str = Field(default="", description="Project key in the sink", examples=["SOC"])
    issue_type: str = Field(default="Alert", description="Issue type name", examples=["Incident"])
    summary: str = Field(default="[{{ alert.severity.value|upper }}] {{ alert.title }}", description="Ticket summary template")
    description: str = Field(
        default="{{ alert.description }}\n\nSource: {{ alert.source.product }} ({{ alert.source.name }})"
        "{% if alert.url %}\nConsole: {{ alert.url }}{% endif %}"
        "{% if alert.hosts %}\nHosts: {{ alert.hosts|join(', ') }}{% endif %}",
        description="Ticket description template (plain text; the sink renders its own markup)",
    )
    labels: list[str] = Field(default=[], description="Extra label templates", examples=[["{{ alert.source.type }}"]])
    fields: dict[str, str] = Field(
        default={}, description="Ticket fields by their display name -> value template",
        examples=[{"Incident Severity": "{{ alert.severity.value|title }}"}],
    )
    group_by: str = Field(
        default="{{ alert.source.name }}|{{ alert.title }}",
        description="Case key template: alerts with the same key share one case and one ticket",
        examples=["qualys|{{ alert.raw.QID }}"],
    )
    reopen_window: Duration = Field(default=86400, description="A repeat within this time after closing reopens the case", examples=["24h"])
    after_window: Literal["new", "reopen"] = Field(default="new", description="What a repeat after the window does")
    wont_fix: list[str] = Field(default=["Won't Do", "Won't Fix", "False Positive", "Duplicate"], description="Resolutions that are never reopened")
    on_repeat: Literal["comment", "update", "ignore"] = Field(default="comment", description="What a repeat alert on an open case does")
    comment_every: Duration = Field(default=300, description="At most one repeat comment per case in this time", examples=["5m"])
    resolve_transition: str | None = Field(default=None, description="Transition to apply when the source says resolved", examples=["Done"])
    resolve_resolution: str | None = Field(default="Done", description="Resolution set by resolve_transition")
    reopen_transition: str = Field(default="Reopen", description="Transition applied when a repeat reopens a closed case", examples=["Reopen"])
    notify: list[NotifyPolicy] = Field(default=[], description="Notifiers told about the route's cases: a name, or a policy (events, "
                                       "min_severity, target, templates); see docs/notifications.md", examples=[["slack-soc"]])
    members: MemberTracking | None = Field(default=None, description="Track the case's hosts one by one: the route's alerts "
                                           "are members (by vendor id), a resolved one is a fixed member. Repeat comments "
                                           "and resolve_transition give way to this; a won't-fix case is never reopened")
    review: str | None = Field(default=None, description="Review writer (from `reviews`) that writes a post-incident review when a case closes",
                               examples=["confluence"])
    review_min_severity: Severity = Field(default=Severity.high, description="Closed cases at or above this severity get a review")
    writeback: list[str] = Field(default=[], description="Write-backs (from `writebacks`) told of this route's ticket changes", examples=[["defender-back", "splunk-hec"]])
    sync: Lifecycle | None = Field(default=None, description="Lifecycle both ways and field ownership (docs/writeback.md); needed by `writeback`")

    _playbooks: bool = PrivateAttr(default=False)  # set by validate_config when the config has playbooks

    @property
    def tells(self) -> bool:
        """Tell whether the route's case events go anywhere: notifiers, a review writer, playbook comments."""
        return bool(self.notify or self.review or self._playbooks)

    @field_validator("notify", mode="before")
    @classmethod
    def _names_are_policies(cls, value: Any) -> Any:
        return [{"notifier": item} if isinstance(item, str) else item for item in value] if isinstance(value, list) else value


class Retry(StrictModel):
    """How failed jobs are retried."""

    max_attempts: int = Field(default=10, ge=1, description="Attempts before a transient failure is dead-lettered")
    base_delay: Duration = Field(default=1.0, description="First backoff", examples=["1s"])
    max_delay: Duration = Field(default=300.0, description="Longest backoff", examples=["5m"])


class Console(StrictModel):
    """Who may use the web console at /ui and how they prove it."""

    identity_header: str | None = Field(
        default=None, description="Header a trusted reverse proxy sets to the signed-in user's name; off when unset",
        examples=["X-Forwarded-User"],
    )
    trusted_proxies: list[str] = Field(
        default=["127.0.0.1", "::1"], description="Peer addresses whose identity header is believed; any other peer must log in",
        examples=[["10.0.0.5"]],
    )
    session_hours: float = Field(default=12.0, gt=0, description="How long a console login lasts", examples=[12])
    secure_cookies: bool = Field(default=False, description="Mark console cookies Secure (set it when served over HTTPS)")


class ReportSchedule(StrictModel):
    """A report made after each period ends, written to a folder or posted to a notifier."""

    name: str = Field(description="Unique name, used in file names", examples=["weekly-soc"])
    period: Literal["day", "week", "month"] = Field(description="The period each report covers (UTC)", examples=["week"])
    format: Literal["html", "csv", "json"] = Field(default="html", description="File format when writing to a folder")
    folder: str | None = Field(default=None, description="Write the report here", examples=["/var/lib/alertbridge/reports"])
    notifier: str | None = Field(default=None, description="Post a summary to this notifier", examples=["slack-soc"])


class Retention(StrictModel):
    """How long rows are kept; the hub prunes past these horizons in small batches (see store/retention.py)."""

    enabled: bool = Field(default=True, description="Prune at all; off keeps every row forever")
    interval: Duration = Field(default=3600, description="Time between pruning runs", examples=["1h"])
    inbox_bodies: Duration = Field(default=14 * 86400, description="Raw bodies of processed inbox rows", examples=["14d"])
    inbox_rows: Duration = Field(
        default=90 * 86400, description="Processed inbox rows themselves (the window in which a redelivered delivery id is a duplicate)",
        examples=["90d"])
    closed_case_alerts: Duration = Field(default=30 * 86400, description="Alerts of cases closed this long ago", examples=["30d"])
    finished_jobs: Duration = Field(default=30 * 86400, description="Done and discarded jobs; dead letters stay until discarded", examples=["30d"])
    batch: int = Field(default=1000, ge=10, le=100_000, description="Rows per pruning transaction")


class Settings(StrictModel):
    """The whole config file."""

    database: str = Field(
        default="sqlite:///alertbridge.db",
        description="SQLAlchemy URL: sqlite:///file.db (relative to the config file's folder) or postgresql://user@host/db",
        examples=["postgresql://alertbridge@db.internal/alertbridge"],
    )
    instance: str | None = Field(
        default=None,
        description="This hub's name in ticket references (alertbridge-<instance>-<case id>); by default the random id "
        "made with the database. Give every hub sharing a ticket project its own, and a new one after a database reset",
        examples=["soc-prod"],
    )
    listen: str = Field(default="127.0.0.1:8080", description="host:port for the HTTP server")
    admin_token: SecretStr | None = Field(default=None, description="Bearer token for /api; the admin API is off without it")
    # A job spends most of its time waiting (its writer round trips, then the sink's answer): at ~0.5 s a job under
    # load, 32 workers ran ~64 jobs/s, short of the ~100 creates and first comments a second of 1,000 alerts/s with
    # 10 % new cases (docs/benchmarks.md, session 22). Workers are cheap tasks; what a sink is sent stays bounded.
    workers: int = Field(default=64, ge=1, le=256, description="Jobs in flight at once in this process (asyncio tasks); each "
                         "sink's `rate_limit` and connection slots bound what it is sent")
    lease: Duration = Field(default=60.0, description="How long a claimed job is ours before another worker may take it over")
    search_lag: Duration = Field(default=10.0, description="How long after a possible create to trust a label search that finds nothing")
    max_body_bytes: int = Field(default=1_048_576, description="Largest webhook body accepted (413 above)")
    shutdown_grace: Duration = Field(
        default=20.0, description="On SIGTERM, how long in-flight requests and running jobs may take before their "
        "jobs are released to other workers", examples=["20s"])
    retry: Retry = Retry()
    retention: Retention = Retention()
    sources: dict[str, dict[str, Any]] = Field(default={}, description="Alert sources by name; each has a `type`")
    sinks: dict[str, dict[str, Any]] = Field(default={}, description="Ticket systems by name; each has a `type`")
    notifiers: dict[str, dict[str, Any]] = Field(default={}, description="Notifiers by name; each has a `type`")
    enrichers: dict[str, dict[str, Any]] = Field(default={}, description="Enrichers by name, applied to every alert in order; each has a `type`")
    reviews: dict[str, dict[str, Any]] = Field(default={}, description="Post-incident review writers by name (Confluence); each has a `type`")
    writebacks: dict[str, dict[str, Any]] = Field(default={}, description="Write-backs to sources and SIEMs by name (docs/writeback.md); each has a `type`")
    playbooks: list[Playbook] = Field(default=[], description="Playbook links by alert category, source or detection; the best match is "
                                      "commented on each new ticket and shown in its notifications")
    public_url: str | None = Field(default=None, description="Base URL people reach this hub's console at, for links in messages",
                                   examples=["https://alertbridge.example.com"], pattern=r"^https?://")
    health: HealthPolicy = HealthPolicy()
    routes: list[Route] = Field(default=[], description="Rules, first match wins; unmatched alerts are dropped and counted")
    console: Console = Console()
    reports: list[ReportSchedule] = Field(default=[], description="Reports made on a schedule")

    @field_validator("database")
    @classmethod
    def _supported_database(cls, url: str) -> str:
        try:
            backend = make_url(url).get_backend_name()
        except ArgumentError:
            raise ValueError(f"not a database URL: {url!r} (use sqlite:///file.db or postgresql://user@host/db)") from None
        if backend not in DATABASES:
            raise ValueError(f"unsupported database {backend!r}: alertbridge runs on {' or '.join(DATABASES)} "
                             "(sqlite:///file.db or postgresql://user@host/db)")
        return url

    @field_validator("instance")
    @classmethod
    def _instance_name(cls, name: str | None) -> str | None:
        if name is not None and not INSTANCE_NAME.match(name):
            raise ValueError("2 to 32 lower-case letters, digits or '-', starting with a letter (it goes into ticket labels)")
        return name


DATABASES = ("sqlite", "postgresql")


def resolve_database(url: str, base_dir: Path) -> str:
    """Anchor a relative SQLite path to `base_dir` (the config file's folder), so the hub finds its database from any folder."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return url
    if Path(database).is_absolute():
        return url
    return parsed.set(database=str((base_dir / database).resolve())).render_as_string(hide_password=False)


class Config:
    """A validated config: settings plus each connector's typed config, and what `check` warns about."""

    def __init__(self, settings: Settings, sources: dict[str, ParserConfig], sinks: dict[str, SinkConfig], notifiers: dict[str, NotifierConfig],
                 enrichers: dict[str, EnricherConfig], reviews: dict[str, ReviewConfig] | None = None, writebacks: dict[str, Any] | None = None):
        self.settings = settings
        self.sources = sources
        self.sinks = sinks
        self.notifiers = notifiers
        self.enrichers = enrichers
        self.reviews, self.writebacks = reviews or {}, writebacks or {}
        self.warnings = [f"sources.{name}.{warning}" for name, source in sources.items() for warning in source.warnings(name)]


def load_config(path: str | Path) -> Config:
    """Read, substitute and validate a config file; raise ConfigError listing every problem."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError([f"{path}: {exc}"]) from exc
    except yaml.YAMLError as exc:
        # PyYAML's own message quotes the offending line, which may hold a secret: say only what and where.
        mark = getattr(exc, "problem_mark", None)
        what = " ".join(filter(None, [getattr(exc, "context", None), getattr(exc, "problem", None)])) or type(exc).__name__
        raise ConfigError([f"{path}: {what}" + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark else "")]) from None
    return validate_config(data, base_dir=Path(path).parent)


def validate_config(data: Any, base_dir: Path = Path(".")) -> Config:
    """Validate an already-parsed config document."""
    problems: list[str] = []
    data = _resolve(data, "", problems, base_dir)
    if not isinstance(data, dict):
        raise ConfigError(problems + ["<root>: the config must be a mapping"])
    # Validate the parts separately so that one mistake does not hide the others.
    raw_routes = data.get("routes") or []
    settings = None
    try:
        settings = Settings.model_validate({**data, "routes": []})
    except ValidationError as exc:
        problems += _format(exc)
    routes = []
    for i, raw in enumerate(raw_routes if isinstance(raw_routes, list) else []):
        try:
            routes.append((i, Route.model_validate(raw)))
        except ValidationError as exc:
            problems += _format(exc, prefix=f"routes[{i}]")
    sections = {name: data.get(name) if isinstance(data.get(name), dict) else {} for name in ("sources", "sinks", "notifiers", "enrichers", "reviews", "writebacks")}
    sources = _connector_configs(sections["sources"], "sources", connectors.SOURCES, problems)
    sinks = _connector_configs(sections["sinks"], "sinks", connectors.SINKS, problems)
    notifiers = _connector_configs(sections["notifiers"], "notifiers", connectors.NOTIFIERS, problems)
    enrichers = _connector_configs(sections["enrichers"], "enrichers", connectors.ENRICHERS, problems)
    reviews = _connector_configs(sections["reviews"], "reviews", connectors.REVIEWS, problems)
    writebacks = _connector_configs(sections["writebacks"], "writebacks", connectors.WRITEBACKS, problems)
    problems += _check_routes(routes, sections) + check_writebacks(routes, sections, writebacks)
    problems += check_reports(data.get("reports"), sections)
    problems += check_targets(routes, sections["sinks"], sinks)
    if problems or settings is None:
        raise ConfigError(problems)
    settings.routes = [route for _, route in routes]
    for route in settings.routes:
        route._playbooks = bool(settings.playbooks)
    settings.database = resolve_database(settings.database, base_dir)
    config = Config(settings, sources, sinks, notifiers, enrichers, reviews, writebacks)
    config.warnings += check_deadlines(settings.lease, sinks)
    return config


def check_deadlines(lease: float, sinks: dict[str, SinkConfig]) -> list[str]:
    """Warn of each sink whose call deadline exceeds a quarter of the job lease.

    The heartbeat renews leases every lease/3: a call of at most lease/4 ends before its job's lease could run out
    even when the heartbeat stops just as it starts, so no other worker takes the job over while the call may still land.
    A warning, not an error: a longer deadline is safe while the heartbeat beats (tests run with second-long leases).
    """
    return [f"sinks.{name}.timeout: {sink.timeout:g}s is more than a quarter of the lease ({lease:g}s): if the heartbeat "
            f"stops, a hung call may outlive its job's lease and the job run twice; set it to at most {lease / 4:g}s "
            "or raise `lease`" for name, sink in sinks.items() if sink.timeout > lease / 4]


def _connector_configs(raw: dict[str, dict[str, Any]], section: str, registry: dict[str, str], problems: list[str]) -> dict[str, Any]:
    configs = {}
    for name, body in raw.items():
        type_name = body.get("type") if isinstance(body, dict) else None
        if type_name not in registry:
            problems.append(f"{section}.{name}.type: unknown type {type_name!r} (known: {', '.join(sorted(registry))})")
            continue
        try:
            configs[name] = connectors.load(registry, type_name).Config.model_validate(body)
        except ValidationError as exc:
            problems += _format(exc, prefix=f"{section}.{name}")
    return configs


def _check_routes(routes: list[tuple[int, Route]], sections: dict[str, dict[str, Any]]) -> list[str]:
    found = []
    seen: set[str] = set()
    for i, route in routes:
        where = f"routes[{i}]"
        if route.name in seen:
            found.append(f"{where}.name: duplicate route name {route.name!r}")
        seen.add(route.name)
        if not route.drop and route.sink is None:
            found.append(f"{where}.sink: required unless drop is true")
        if route.sink is not None and route.sink not in sections['sinks']:
            found.append(f"{where}.sink: unknown sink {route.sink!r} (known: {', '.join(sorted(sections['sinks'])) or 'none'})")
        for j, source in enumerate(route.match.sources):
            if source not in sections['sources']:
                found.append(f"{where}.match.sources[{j}]: unknown source {source!r} (known: {', '.join(sorted(sections['sources'])) or 'none'})")
        for j, policy in enumerate(route.notify):
            if policy.notifier not in sections['notifiers']:
                found.append(f"{where}.notify[{j}]: unknown notifier {policy.notifier!r} (known: {', '.join(sorted(sections['notifiers'])) or 'none'})")
        if route.review is not None and route.review not in sections['reviews']:
            found.append(f"{where}.review: unknown review writer {route.review!r} (known: {', '.join(sorted(sections['reviews'])) or 'none'})")
        templates = {"summary": route.summary, "description": route.description, "group_by": route.group_by}
        templates |= {f"notify[{j}].templates.{kind}": t for j, policy in enumerate(route.notify) for kind, t in policy.templates.items()}
        templates |= {f"fields[{name!r}]": t for name, t in route.fields.items()}
        templates |= {f"labels[{k}]": t for k, t in enumerate(route.labels)}
        if route.members is not None:
            templates |= {"members.host": route.members.host, "members.line": route.members.line}
        for key, template in templates.items():
            if error := syntax_error(template):
                found.append(f"{where}.{key}: {error}")
        if route.match.when and (error := syntax_error(route.match.when, expression=True)):
            found.append(f"{where}.match.when: {error}")
        for k, rule in enumerate(route.rules):
            if error := syntax_error(rule.when, expression=True):
                found.append(f"{where}.rules[{k}].when: {error}")
    return found
