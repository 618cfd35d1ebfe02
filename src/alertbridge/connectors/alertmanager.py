"""Prometheus Alertmanager source: the body of a `webhook_config` receiver (version "4").

Alertmanager POSTs one notification per alert group with every alert of the
group in `alerts[]`, again on each `repeat_interval` while they fire, and once
more with `status: resolved` when they stop (if `send_resolved`, the default):
https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
Each alert becomes one Alert whose vendor id is its `fingerprint` (a hash of its
labels) and `startsAt`, so the repeats and the resolution of one firing are the
same alert, and a later firing of the same labels is a new one. Alertmanager
signs nothing: authenticate it with `auth: {mode: bearer}` and the receiver's
`http_config.authorization.credentials` (docs/connectors/alertmanager.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from ..errors import PayloadError
from ..model import Alert, AlertStatus, Observables, Severity, SourceInfo
from .roles import Parser, ParserConfig, WebhookConfig, WebhookSource

DEFAULT_SEVERITIES = {
    "critical": Severity.critical, "page": Severity.critical, "error": Severity.high, "high": Severity.high,
    "warning": Severity.medium, "warn": Severity.medium, "medium": Severity.medium, "low": Severity.low,
    "info": Severity.info, "informational": Severity.info, "none": Severity.info,
}  # fmt: skip
# Annotations that are links an on-call engineer follows, named as the Prometheus community does.
RUNBOOK_ANNOTATIONS = ("runbook_url", "runbook", "dashboard_url")
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: "not ended yet" in endsAt
FNV_OFFSET, FNV_PRIME = 14695981039346656037, 1099511628211


class AlertmanagerParser(Parser):
    """An Alertmanager webhook notification: one Alert per alert in the group."""

    type: ClassVar[str] = "alertmanager"

    class Config(ParserConfig):
        """Which label carries the severity, how its words map, and which labels name the host."""

        severity_label: str = Field(default="severity", description="Label holding the severity word", examples=["priority"])
        severity_map: dict[str, Severity] = Field(
            default=DEFAULT_SEVERITIES,
            description="Severity word -> severity, case-insensitive; the default knows critical, page, error, high, "
            "warning, warn, medium, low, info, informational and none",
            examples=[{"p1": "critical", "p2": "high", "warning": "medium"}],
        )
        default_severity: Severity = Field(
            default=Severity.medium, description="Severity when the label is absent or its word is not mapped", examples=["low"]
        )
        host_labels: list[str] = Field(
            default=["instance", "host", "hostname", "node"],
            description="Labels naming the affected machine; a ':port' suffix is dropped",
            examples=[["instance", "kubernetes_node"]],
        )

    config: Config

    def __init__(self, name: str, config: Config):
        super().__init__(name, config)
        self._severities = {word.lower(): severity for word, severity in config.severity_map.items()}

    def parse(self, payload: Any) -> list[Alert]:
        """Turn one webhook notification into one alert per entry of `alerts`."""
        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            raise PayloadError("not an Alertmanager webhook body: no 'alerts' list")
        if not payload["alerts"]:
            raise PayloadError("Alertmanager webhook body with an empty 'alerts' list")
        common = _strings(payload.get("commonAnnotations"))
        return [self._alert(payload, item, common) for item in payload["alerts"]]

    def _alert(self, payload: dict[str, Any], item: Any, common: dict[str, str]) -> Alert:
        if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
            raise PayloadError("an entry of 'alerts' is not an object with 'labels'")
        labels = _strings(item["labels"])
        annotations = {**common, **_strings(item.get("annotations"))}
        starts = item.get("startsAt") if isinstance(item.get("startsAt"), str) else ""
        word = labels.get(self.config.severity_label)
        status = item.get("status") if item.get("status") in ("firing", "resolved") else payload.get("status")
        generator = item.get("generatorURL") if isinstance(item.get("generatorURL"), str) else None
        return Alert(
            source=SourceInfo(
                name=self.name, type=self.type, product="Alertmanager", vendor="Prometheus",
                instance=payload.get("externalURL") if isinstance(payload.get("externalURL"), str) else None,
                tenant=self.config.tenant,
            ),
            vendor_id=f"{_fingerprint(item)}@{starts}",
            title=annotations.get("summary") or labels.get("alertname") or "Alertmanager alert",
            description=_description(labels, annotations),
            severity=self._severities.get((word or "").lower(), self.config.default_severity),
            vendor_severity=word,
            category=labels.get("alertname"),
            status=AlertStatus.resolved if status == "resolved" else AlertStatus.new,
            url=generator or None,
            detected_at=_time(starts),
            observables=Observables(hosts=list(dict.fromkeys(_host(labels[n]) for n in self.config.host_labels if labels.get(n)))),
            raw=item,
        )


def _strings(mapping: Any) -> dict[str, str]:
    """Keep a label or annotation map's non-empty text values (Alertmanager only sends text)."""
    if not isinstance(mapping, dict):
        return {}
    return {str(k): v.strip() for k, v in mapping.items() if isinstance(v, str) and v.strip()}


def _fingerprint(item: dict[str, Any]) -> str:
    """Return Alertmanager's fingerprint; before v0.19 it sent none, so compute it as Prometheus does.

    Prometheus' `LabelSet.Fingerprint()` (common/model/signature.go): FNV-1a 64 over the
    sorted label names and values, each followed by the byte 0xff, printed as 16 hex digits.
    """
    given = item.get("fingerprint")
    if isinstance(given, str) and given.strip():
        return given.strip()
    digest = FNV_OFFSET
    labels = {k: v for k, v in item["labels"].items() if isinstance(v, str)}
    for byte in b"".join(f"{k}".encode() + b"\xff" + labels[k].encode() + b"\xff" for k in sorted(labels)):
        digest = ((digest ^ byte) * FNV_PRIME) % 2**64
    return f"{digest:016x}"


def _description(labels: dict[str, str], annotations: dict[str, str]) -> str:
    links = [f"{name}: {annotations[name]}" for name in RUNBOOK_ANNOTATIONS if name in annotations]
    rest = [f"{k}: {v}" for k, v in annotations.items() if k not in ("summary", "description", *RUNBOOK_ANNOTATIONS)]
    label_lines = ["Labels:", *(f"{k}={v}" for k, v in sorted(labels.items()))] if labels else []
    parts = [annotations.get("description", ""), "\n".join(links + rest), "\n".join(label_lines)]
    return "\n\n".join(part for part in parts if part)


def _host(value: str) -> str:
    """Drop the port of an `instance` label (host:9100, [::1]:9100)."""
    host, sep, port = value.rpartition(":")
    return host.strip("[]") if sep and port.isdigit() and host else value


def _time(value: str) -> datetime | None:
    """Read an RFC 3339 time (Go writes nanoseconds, which fromisoformat cuts to microseconds)."""
    if not value or value == ZERO_TIME:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


class AlertmanagerSource(AlertmanagerParser, WebhookSource):
    """Alertmanager's webhook_config, pushed to /hooks/<name>."""

    parser = AlertmanagerParser

    class Config(AlertmanagerParser.Config, WebhookConfig):
        """The parser's settings and the required `auth`."""

    config: Config
