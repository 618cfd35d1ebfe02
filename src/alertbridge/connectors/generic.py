"""Generic JSON source: any webhook body, mapped to alerts by JMESPath or Jinja.

For senders that have no connector of their own. ``items`` picks the alerts out
of the body and ``fields`` says where each alert field is, for example for a
Prometheus Alertmanager webhook (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config):

    type: generic
    product: Alertmanager
    vendor: Prometheus
    items: alerts
    fields:
      vendor_id: "{{ item.labels.alertname }}/{{ item.labels.instance }}/{{ item.startsAt }}"
      title: labels.alertname
      description: annotations.description
      severity: labels.severity
      detected_at: startsAt

JMESPath syntax: https://jmespath.org/specification.html
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

import jmespath
from jinja2 import TemplateError
from jmespath.exceptions import JMESPathError
from pydantic import BeforeValidator, Field, field_validator

from ..errors import PayloadError
from ..model import Alert, AlertStatus, Observables, Severity, SourceInfo
from ..templates import render, syntax_error
from .roles import Parser, ParserConfig, WebhookConfig, WebhookSource

FieldName = Literal[
    "vendor_id", "title", "description", "severity", "category", "status", "url", "detected_at",
    "hosts", "ips", "users", "domains", "urls", "hashes", "emails", "tactics", "techniques", "labels",
]
LIST_FIELDS = ("hosts", "ips", "users", "domains", "urls", "hashes", "emails", "tactics", "techniques", "labels")

# What each field is read from unless the config says otherwise; `a || b` takes
# the first of the two that is present and not empty.
DEFAULT_FIELDS: dict[str, str] = {
    "vendor_id": "id || uid || alert_id",
    "title": "title || name",
    "description": "description || message",
    "severity": "severity",
    "category": "category",
    "status": "status",
    "url": "url || link",
    "detected_at": "detected_at || created_at || timestamp",
    "hosts": "hosts || host || hostname",
    "ips": "ips || ip",
    "users": "users || user",
    "domains": "domains || domain",
    "urls": "urls",
    "hashes": "hashes || hash",
    "emails": "emails || email",
    "tactics": "tactics",
    "techniques": "techniques",
    "labels": "labels || tags",
}

# Vendor words for the three states, used when `status_map` has no entry.
STATUS_WORDS = {
    "new": AlertStatus.new, "open": AlertStatus.new, "firing": AlertStatus.new, "triggered": AlertStatus.new,
    "in_progress": AlertStatus.in_progress, "in progress": AlertStatus.in_progress,
    "acknowledged": AlertStatus.in_progress, "investigating": AlertStatus.in_progress,
    "resolved": AlertStatus.resolved, "closed": AlertStatus.resolved, "done": AlertStatus.resolved,
}

# Epoch numbers above this are milliseconds: as seconds they would be after the year 5000.
MILLIS_ABOVE = 100_000_000_000

# What evaluating an operator's template over a payload can raise: Jinja's own
# errors (undefined attribute, sandbox refusal) and those of Python operations on
# values of an unexpected type (`item.count + 1` on a string, `1 / item.zero`, `'{x}'.format_map(item)` without x).
TEMPLATE_DATA_ERRORS = (TemplateError, TypeError, ValueError, ArithmeticError, LookupError)


def _is_template(expression: str) -> bool:
    """Tell a Jinja template from a JMESPath expression."""
    return "{{" in expression or "{%" in expression


def _lower_keys(mapping: Any) -> Any:
    """Make map keys text in lower case, so that YAML numbers and any case match."""
    if not isinstance(mapping, dict):
        return mapping
    return {str(key).lower(): value for key, value in mapping.items()}


def _check_expression(where: str, expression: str) -> None:
    """Raise ValueError, which pydantic reports with its path, if a field expression does not compile."""
    if _is_template(expression):
        if error := syntax_error(expression):
            raise ValueError(f"{where}: {error}")
        return
    try:
        jmespath.compile(expression)
    except JMESPathError as exc:
        raise ValueError(f"{where}: not a JMESPath expression: {exc}") from None


class GenericParser(Parser):
    """Any JSON body, mapped to alerts by configured JMESPath expressions and templates."""

    type: ClassVar[str] = "generic"

    class Config(ParserConfig):
        """Where the alerts and their fields are in the body."""

        product: str = Field(default="Generic JSON", description="Product name shown in tickets", examples=["Alertmanager"])
        vendor: str = Field(default="Unknown", description="Vendor name shown in tickets", examples=["Prometheus"])
        items: str | None = Field(
            default=None,
            description="JMESPath to the list of alerts in the body; unset, the body itself is used "
            "(an object is one alert, a list is many)",
            examples=["alerts", "reply.incidents"],
        )
        fields: dict[FieldName, str] = Field(
            default={},
            description="Alert field -> JMESPath expression over one item, or a Jinja template over `item` "
            "when it contains '{{' or '{%'; replaces that field's default",
            examples=[{"title": "labels.alertname", "description": "{{ item.annotations.summary }}"}],
        )
        severity_map: Annotated[dict[str, Severity], BeforeValidator(_lower_keys)] = Field(
            default={},
            description="Vendor severity -> severity (case-insensitive; numbers allowed); an unmapped value "
            "that names a severity is taken as it is",
            examples=[{"1": "critical", "2": "high", "warning": "medium"}],
        )
        default_severity: Severity = Field(
            default=Severity.medium, description="Severity when the item has none or an unmapped one", examples=["low"]
        )
        status_map: Annotated[dict[str, AlertStatus], BeforeValidator(_lower_keys)] = Field(
            default={},
            description="Vendor status -> new, in_progress or resolved (case-insensitive); checked before the "
            "common words (open, firing, acknowledged, closed…)",
            examples=[{"active": "new", "suppressed": "resolved"}],
        )

        @field_validator("items")
        @classmethod
        def _check_items(cls, value: str | None) -> str | None:
            if value is not None and _is_template(value):
                raise ValueError("items must be a JMESPath expression, not a template")
            if value is not None:
                _check_expression("items", value)
            return value

        @field_validator("fields")
        @classmethod
        def _check_fields(cls, value: dict[str, str]) -> dict[str, str]:
            for name, expression in value.items():
                _check_expression(name, expression)
            return value

    config: Config

    def __init__(self, name: str, config: Config):
        super().__init__(name, config)
        self._expressions = DEFAULT_FIELDS | config.fields
        self._readers = {field: _reader(source) for field, source in self._expressions.items()}
        self._items = jmespath.compile(config.items) if config.items else None

    def parse(self, payload: Any) -> list[Alert]:
        """Turn a JSON body into one alert per item."""
        if self._items is not None:
            payload = _evaluate(self._items.search, payload, "items")
            if payload is None:
                raise PayloadError(f"items {self.config.items!r} found nothing in the payload")
        items = payload if isinstance(payload, list) else [payload]
        return [self._alert(item, f"item {n}") for n, item in enumerate(items)]

    def _alert(self, item: Any, where: str) -> Alert:
        if not isinstance(item, dict):
            raise PayloadError(f"{where}: expected a JSON object, got {type(item).__name__}")
        value = {field: self._read(field, item, where) for field in self._readers}
        if not (value["title"] or "").strip():  # a blank title is no title
            raise PayloadError(f"{where}: no title at {self._expressions['title']!r}; set fields.title")
        return Alert(
            source=SourceInfo(
                name=self.name, type=self.type, product=self.config.product, vendor=self.config.vendor,
                tenant=self.config.tenant,
            ),
            vendor_id=value["vendor_id"] or _fingerprint(item, where),
            title=value["title"],
            description=value["description"] or "",
            severity=self._severity(value["severity"]),
            vendor_severity=value["severity"],
            category=value["category"],
            status=self._status(value["status"]),
            url=value["url"],
            detected_at=value["detected_at"],
            observables=Observables(**{kind: value[kind] for kind in Observables.model_fields}),
            tactics=value["tactics"],
            techniques=value["techniques"],
            labels=value["labels"],
            raw=item,
        )

    def _read(self, field: str, item: dict[str, Any], where: str) -> Any:
        """Read and convert one field; a default that finds the wrong shape reads as absent, a configured one raises."""
        convert = CONVERTERS.get(field, _text)
        where = f"{where}: fields.{field}"
        try:
            return convert(_evaluate(self._readers[field], item, where), where)
        except PayloadError:
            # Defaults are guesses (`labels` is an object in Alertmanager, a list elsewhere):
            # a wrong guess must not reject the alert, a wrong configured expression must.
            if field in self.config.fields:
                raise
            return convert(None, where)

    def _severity(self, vendor_value: str | None) -> Severity:
        key = (vendor_value or "").lower()
        return self.config.severity_map.get(key) or Severity.__members__.get(key, self.config.default_severity)

    def _status(self, vendor_value: str | None) -> AlertStatus:
        key = (vendor_value or "").lower()
        return self.config.status_map.get(key) or STATUS_WORDS.get(key, AlertStatus.new)


def _reader(source: str) -> Callable[[Any], Any]:
    """Return a function reading one field's value out of an item."""
    if _is_template(source):
        return lambda item: render(source, {"item": item})
    if _PLAIN_PATHS.fullmatch(source):
        return _paths_reader([path.strip().split(".") for path in source.split("||")])
    return jmespath.compile(source).search


# `a.b || c`, the shape of every default and most configured fields: read with dict look-ups, as JMESPath would,
# because its interpreter costs more than the rest of the parse together (a field of a non-object is null, and
# `||` takes the first value that is not null, false, nor an empty string, list or object).
_PLAIN_PATHS = re.compile(r"\s*[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\s*(\|\|\s*[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\s*)*", re.ASCII)


def _paths_reader(paths: list[list[str]]) -> Callable[[Any], Any]:
    def read(item: Any) -> Any:
        value = None
        for path in paths:
            value = item
            for name in path:
                value = value.get(name) if isinstance(value, dict) else None
            if not (value is None or value is False or (isinstance(value, str | list | dict) and not value)):
                return value
        return value

    return read


def _evaluate(reader: Callable[[Any], Any], data: Any, where: str) -> Any:
    """Run a reader, turning what the payload's values can make it raise into PayloadError."""
    try:
        return reader(data)
    except JMESPathError as exc:  # e.g. a JMESPath function given a value of the wrong type
        raise PayloadError(f"{where}: {exc}") from exc
    except TEMPLATE_DATA_ERRORS as exc:
        raise PayloadError(f"{where}: template failed on this payload: {exc}") from exc


def _text(value: Any, where: str) -> str | None:
    """Return a scalar as text, None when absent or empty."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a severity 3.0 should match the key "3"
    if isinstance(value, str | int | float):
        return str(value)
    raise PayloadError(f"{where}: expected text, got a JSON {type(value).__name__}; point the field at a scalar")


def _strings(value: Any, where: str) -> list[str]:
    """Return a scalar or a list of scalars as a list of non-empty texts."""
    values = value if isinstance(value, list) else [value]
    return [text for v in values if (text := _text(v, where)) is not None]


def _timestamp(value: Any, where: str) -> datetime | None:
    """Read ISO 8601 text or epoch seconds or milliseconds (number or numeric text) as UTC."""
    text = _text(value, where)
    if text is None:
        return None
    number: float | None
    try:
        number = float(text)
    except ValueError:
        number = None
    try:
        if number is None:
            moment = datetime.fromisoformat(text)
            # A time without offset is taken as UTC: servers log in UTC far more often than not.
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
        if not math.isfinite(number):
            raise ValueError("not a finite number")
        return datetime.fromtimestamp(number / 1000 if abs(number) > MILLIS_ABOVE else number, UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise PayloadError(f"{where}: {text[:64]!r} is not an ISO 8601 time or epoch seconds/millis ({exc})") from exc


def _fingerprint(item: dict[str, Any], where: str) -> str:
    """Return a stable id for an item without one: the hash of its canonical JSON."""
    try:
        canonical = json.dumps(item, sort_keys=True, separators=(",", ":"))
    except RecursionError as exc:
        raise PayloadError(f"{where}: nested too deeply to fingerprint; map fields.vendor_id") from exc
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


CONVERTERS: dict[str, Callable[[Any, str], Any]] = {"detected_at": _timestamp} | {field: _strings for field in LIST_FIELDS}


class GenericSource(GenericParser, WebhookSource):
    """Any JSON body pushed to /hooks/<name>, read as the parser's config says."""

    parser = GenericParser

    class Config(GenericParser.Config, WebhookConfig):
        """The parser's settings and the required `auth`."""

    config: Config
