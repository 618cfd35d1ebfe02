"""Splunk source: the body of Splunk's built-in webhook alert action.

Splunk POSTs ``{sid, search_name, app, owner, results_link, result}``, where
``result`` is only the *first row* of the triggering search's results and
``search_name`` is null for a search that was not saved:
https://help.splunk.com/splunk-enterprise/alert-and-respond/alerting-manual/10.0/configure-alert-actions/use-a-webhook-alert-action
So one webhook is one alert; set the alert to trigger "For each result" to get
one per row. The built-in action cannot set headers: authenticate it with
``auth: {mode: query_token}`` and ``?token=`` in its URL (docs/connectors/splunk.md).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field

from ..errors import PayloadError
from ..model import Alert, Observables, Severity, SourceInfo
from ._values import hostname as _hostname
from ._values import is_ip as _is_ip
from ._values import text as _text
from .roles import Parser, ParserConfig, WebhookConfig, WebhookSource

# Common Information Model fields that name a machine, by either a host name or an
# IP address depending on the data, so the value decides which it is:
# https://docs.splunk.com/Documentation/CIM/latest/User/Howtousethesereferencetables
ADDRESS_FIELDS = ("host", "dest", "dest_host", "dest_nt_host", "dest_ip", "src", "src_host", "src_nt_host", "src_ip", "dvc")
OBSERVABLE_FIELDS = {
    "users": ("user", "src_user", "dest_user"),
    "domains": ("domain", "url_domain"),
    "urls": ("url",),
    "hashes": ("file_hash",),
    "emails": ("sender", "recipient"),
}
# Further fields an analyst wants to read in the ticket, besides the observables.
CONTEXT_FIELDS = ("index", "sourcetype", "source", "signature", "action")

# Splunk Enterprise Security urgency values:
# https://docs.splunk.com/Documentation/ES/latest/User/Howurgencyisassigned
ES_URGENCY = {
    "informational": Severity.info,
    "low": Severity.low,
    "medium": Severity.medium,
    "high": Severity.high,
    "critical": Severity.critical,
}


class SplunkParser(Parser):
    """Splunk's webhook alert action: one triggered search, its first result row."""

    type: ClassVar[str] = "splunk"

    class Config(ParserConfig):
        """How a result row's fields become severity and category."""

        severity_field: str = Field(
            default="risk_score",
            description="Result field holding the severity: a word looked up in `severity_map`, "
            "or a number compared with `severity_thresholds`",
            examples=["urgency"],
        )
        severity_thresholds: dict[Severity, float] = Field(
            default={Severity.critical: 80, Severity.high: 60, Severity.medium: 40},
            description="A number above a threshold gets that severity (the highest such); "
            "at or below all of them, low",
            examples=[{"critical": 90, "high": 70, "medium": 30}],
        )
        severity_map: dict[str, Severity] = Field(
            default=ES_URGENCY,
            description="Word in `severity_field` -> severity, case-insensitive; the default maps "
            "Splunk ES urgency (informational, low, medium, high, critical)",
            examples=[{"informational": "info", "sev1": "critical"}],
        )
        default_severity: Severity = Field(
            default=Severity.medium,
            description="Severity when `severity_field` is absent, empty or neither mapped nor a number",
            examples=["low"],
        )
        category_field: str | None = Field(
            default="category",
            description="Result field holding the alert's category; unset for none",
            examples=["security_domain"],
        )

    config: Config

    def __init__(self, name: str, config: Config):
        super().__init__(name, config)
        self._severity_map = {word.lower(): severity for word, severity in config.severity_map.items()}
        observable_fields = [field for fields in OBSERVABLE_FIELDS.values() for field in fields]
        chosen = [*CONTEXT_FIELDS, *ADDRESS_FIELDS, *observable_fields, config.severity_field, config.category_field]
        self._description_fields = [field for field in dict.fromkeys(chosen) if field]

    def parse(self, payload: Any) -> list[Alert]:
        """Turn one webhook body into its alert."""
        if not isinstance(payload, dict):
            raise PayloadError(f"not a Splunk webhook body: expected a JSON object, got {type(payload).__name__}")
        sid = payload.get("sid")
        if not isinstance(sid, str) or not sid.strip():  # a blank sid names no search: the alert would have no id
            raise PayloadError("not a Splunk webhook body: no 'sid' (search id)")
        result = payload.get("result") or {}
        if not isinstance(result, dict):
            raise PayloadError(f"'result' must be an object (the first result row), got {type(result).__name__}")
        search_name = _text(payload.get("search_name"))
        link = _text(payload.get("results_link"))
        severity, vendor_severity = self._severity(result)
        category = _values(result, self.config.category_field) if self.config.category_field else []
        alert = Alert(
            source=SourceInfo(
                name=self.name, type=self.type, product="Splunk Enterprise", vendor="Splunk",
                instance=_hostname(link), tenant=self.config.tenant,
            ),
            vendor_id=_vendor_id(sid, result),
            title=search_name or f"Splunk search {sid}",
            description=self._description(payload, result),
            severity=severity,
            vendor_severity=vendor_severity,
            category=category[0] if category else None,
            url=link,
            detected_at=_event_time(result),
            observables=_observables(result),
            raw=payload,
        )
        return [alert]

    def _severity(self, result: dict[str, Any]) -> tuple[Severity, str | None]:
        values = _values(result, self.config.severity_field)
        if not values:
            return self.config.default_severity, None
        vendor = values[0]
        if vendor.lower() in self._severity_map:
            return self._severity_map[vendor.lower()], vendor
        try:
            score = float(vendor)
        except ValueError:
            return self.config.default_severity, vendor
        if not math.isfinite(score):
            return self.config.default_severity, vendor
        passed = [(threshold, severity) for severity, threshold in self.config.severity_thresholds.items() if score > threshold]
        return (max(passed, key=lambda pair: pair[0])[1] if passed else Severity.low), vendor

    def _description(self, payload: dict[str, Any], result: dict[str, Any]) -> str:
        context = [
            f"{key}: {value}"
            for key in ("search_name", "app", "owner")
            if (value := _text(payload.get(key)))
        ]
        facts = [f"{field}: {', '.join(values)}" for field in self._description_fields if (values := _values(result, field))]
        parts = ["\n".join(_values(result, "_raw")), "\n".join(context + facts)]
        return "\n\n".join(part for part in parts if part)



def _values(result: dict[str, Any], field: str) -> list[str]:
    """Return a result field's non-empty values; a multivalue field arrives as a JSON list."""
    value = result.get(field)
    return [v for v in (value if isinstance(value, list) else [value]) if _text(v)]


def _vendor_id(sid: str, result: dict[str, Any]) -> str:
    """Return the sid, plus the row's id when there is one.

    An alert that triggers "For each result" sends one webhook per row under the
    same sid, and a real-time search keeps its sid: `_cd` (the event's index
    address) or `_serial` (its row number) tells those alerts apart.
    """
    row = _values(result, "_cd") or _values(result, "_serial")
    return f"{sid}#{row[0]}" if row else sid


def _event_time(result: dict[str, Any]) -> datetime | None:
    """Read `_time`, which Splunk sends as epoch seconds text."""
    values = _values(result, "_time")
    if not values:
        return None
    try:
        return datetime.fromtimestamp(float(values[0]), UTC)
    except (ValueError, OverflowError, OSError):
        # A search may have reformatted _time (e.g. with strftime); the alert matters more than its time.
        return None



def _observables(result: dict[str, Any]) -> Observables:
    """Collect the CIM fields an analyst pivots on, sorting addresses into hosts and IPs."""
    found: dict[str, list[str]] = {kind: [] for kind in Observables.model_fields}
    for field in ADDRESS_FIELDS:
        for value in _values(result, field):
            found["ips" if _is_ip(value) else "hosts"].append(value)
    for kind, fields in OBSERVABLE_FIELDS.items():
        for field in fields:
            found[kind] += _values(result, field)
    return Observables(**{kind: list(dict.fromkeys(values)) for kind, values in found.items()})


class SplunkSource(SplunkParser, WebhookSource):
    """Splunk's webhook alert action, pushed to /hooks/<name>."""

    parser = SplunkParser

    class Config(SplunkParser.Config, WebhookConfig):
        """The parser's settings and the required `auth`."""

    config: Config
