"""AWS Security Incident Response cases as alerts, purely: one item is one case update (ListCases item + GetCase + latest comments)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field, field_validator

from ...errors import PayloadError
from ...model import Alert, AlertStatus, Observables, Severity, SourceComment, SourceInfo, SourceState
from .._values import iso_time
from .._values import objects as _dicts
from .._values import text as _text
from .._values import texts as _texts
from ..roles import Parser, ParserConfig

CLOSURE_CODES = {"False Positive": SourceState.false_positive, "Duplicate": SourceState.suppressed}  # service-2.json ClosureCode
OPEN_STATUSES = {"Submitted": AlertStatus.new}  # every other status but Closed is work in progress
CONSOLE_URL = "https://console.aws.amazon.com/security-ir/home?region={region}#/cases/{case_id}"
SEVERITY_WORDS = {
    "critical": Severity.critical, "high": Severity.high, "medium": Severity.medium,
    "low": Severity.low, "informational": Severity.info, "info": Severity.info,
}  # fmt: skip


class AwsSecurityIrParser(Parser):
    """Security IR cases as the poller stores them: ListCases item + GetCase + the latest comments."""

    type: ClassVar[str] = "aws_security_ir"

    class Config(ParserConfig):
        """How a case reads as an alert."""

        region: str | None = Field(default=None, description="AWS Region of the Security IR membership; unset: the boto3 chain's (AWS_REGION, profile)", examples=["us-east-1"])
        console_url: str = Field(default=CONSOLE_URL, description="Deep link to a case; {region} and {case_id} are filled in", examples=[CONSOLE_URL])
        severity_key: str = Field(default="severity", description="caseMetadata key whose value (Critical, High, Medium, Low, Informational) is the severity", examples=["severity"])
        engagement_severity: dict[str, Severity] = Field(
            default={"Security Incident": Severity.high, "Investigation": Severity.medium},
            description="Severity by engagementType for cases without a severity in caseMetadata",
            examples=[{"Security Incident": "critical", "Investigation": "low"}],
        )
        default_severity: Severity = Field(default=Severity.medium, description="Severity when neither caseMetadata nor engagementType says", examples=["medium"])

        @field_validator("console_url")
        @classmethod
        def _placeholders(cls, url: str) -> str:
            try:
                url.format(region="us-east-1", case_id="1234567890")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"only {{region}} and {{case_id}} may appear in braces ({exc})") from None
            return url

    config: Config

    def parse(self, payload: Any) -> list[Alert]:
        """Turn one case (ListCases item + GetCase + latest comments) into its alert."""
        if not isinstance(payload, dict):
            raise PayloadError(f"not a Security IR case: expected a JSON object, got {type(payload).__name__}")
        case_id = payload.get("caseId")
        if not isinstance(case_id, str) or not case_id.strip():
            raise PayloadError("not a Security IR case: no 'caseId'")
        arn = _text(payload.get("caseArn")) or ""
        arn_parts = arn.split(":")
        region = (arn_parts[3] if len(arn_parts) > 4 else "") or self.config.region or "us-east-1"
        severity, vendor_severity = self._severity(payload)
        status = _text(payload.get("caseStatus")) or ""
        ips = [_text(t.get("ipAddress")) for t in _dicts(payload.get("threatActorIpAddresses"))]
        return [Alert(
            source=SourceInfo(
                name=self.name, type=self.type, product="AWS Security Incident Response", vendor="AWS",
                instance=(arn_parts[4] if len(arn_parts) > 4 else None) or None, tenant=self.config.tenant,
            ),
            vendor_id=case_id,
            title=_text(payload.get("title")) or f"AWS Security IR case {case_id}",
            description=_description(payload),
            severity=severity,
            vendor_severity=vendor_severity,
            category=_text(payload.get("engagementType")),
            status=AlertStatus.resolved if status == "Closed" else OPEN_STATUSES.get(status, AlertStatus.in_progress),
            disposition=CLOSURE_CODES.get(_closure_code(payload) or ""),
            revision=_text(payload.get("lastUpdatedDate")),
            url=self.config.console_url.format(region=region, case_id=case_id),
            detected_at=_first_time(payload, "actualIncidentStartDate", "reportedIncidentStartDate", "createdDate"),
            observables=Observables(ips=list(dict.fromkeys(ip for ip in ips if ip))),
            comments=[SourceComment(id=cid, author=_text(c.get("creator")), text=body, at=iso_time(c.get("createdDate")))
                      for c in _dicts(payload.get("comments")) if (cid := _text(c.get("commentId"))) and (body := _text(c.get("body")))],
            raw=payload,
        )]

    def _severity(self, case: dict[str, Any]) -> tuple[Severity, str | None]:
        for entry in _dicts(case.get("caseMetadata")):
            if str(entry.get("key", "")).lower() == self.config.severity_key.lower() and (word := _text(entry.get("value"))):
                return SEVERITY_WORDS.get(word.lower(), self.config.default_severity), word
        engagement = _text(case.get("engagementType"))
        return self.config.engagement_severity.get(engagement or "", self.config.default_severity), None


def _description(case: dict[str, Any]) -> str:
    facts = {
        "Engagement": _text(case.get("engagementType")),
        "Status": _text(case.get("caseStatus")),
        "Resolver": _text(case.get("resolverType")),
        "Pending action": _text(case.get("pendingAction")),
        "Closure code": _text(case.get("closureCode")),
        "Impacted accounts": ", ".join(a for a in _texts(case.get("impactedAccounts"))),
        "Impacted regions": ", ".join(r for d in _dicts(case.get("impactedAwsRegions")) if (r := _text(d.get("region")))),
        "Impacted services": ", ".join(_texts(case.get("impactedServices"))),
        "Threat actor IPs": ", ".join(
            f"{ip} ({agent})" if (agent := _text(t.get("userAgent"))) else ip
            for t in _dicts(case.get("threatActorIpAddresses")) if (ip := _text(t.get("ipAddress")))
        ),
        "Watchers": ", ".join(f"{_text(w.get('name')) or ''} <{email}>".strip() for w in _dicts(case.get("watchers")) if (email := _text(w.get("email")))),
    }
    comments = [
        f"[{' '.join(t for t in (_text(c.get('createdDate')), _text(c.get('creator'))) if t) or 'comment'}] {body}"
        for c in _dicts(case.get("comments")) if (body := _text(c.get("body")))
    ]
    parts = [_text(case.get("description")) or "", "\n".join(f"{k}: {v}" for k, v in facts.items() if v)]
    if comments:
        parts.append("Latest comments:\n" + "\n".join(comments))
    return "\n\n".join(part for part in parts if part)


def closed_state(case: dict[str, Any]) -> SourceState:
    """Return the state a closed case reads as: its closure code's, else resolved."""
    return CLOSURE_CODES.get(_closure_code(case) or "", SourceState.resolved)


def _closure_code(case: dict[str, Any]) -> str | None:
    # CloseCase takes no closure code: a hub (or a responder) may keep it in caseMetadata instead.
    recorded = next((_text(e.get("value")) for e in _dicts(case.get("caseMetadata")) if e.get("key") == "closureCode"), None)
    return _text(case.get("closureCode")) or recorded


def _first_time(case: dict[str, Any], *fields: str) -> datetime | None:
    return next((moment for field in fields if (moment := iso_time(case.get(field))) is not None), None)
