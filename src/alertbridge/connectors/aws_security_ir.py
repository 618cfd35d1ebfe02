"""AWS Security Incident Response source: polls cases through boto3 (``pip install 'alertbridge[aws]'``).

ListCases takes no filter and documents no order (service-2.json: only
``nextToken``/``maxResults``), so a high-water mark on ``lastUpdatedDate`` cannot
resume a listing halfway. Instead each *sweep* walks every page once; cases
updated after the watermark ``since`` are read in full (GetCase + ListComments)
and emitted. The cursor (JSON) keeps the sweep's ``token``, its start time, and
``done``: the items already emitted whose update is newer than ``since``. At the
end of a sweep ``since`` moves to the sweep's start minus ``CLOCK_SKEW`` (never
to the newest case seen: a case updated behind our back mid-sweep would be
skipped), and ``done`` keeps the sweep from emitting an update twice.

One item is one case *update*: its id is ``caseId@lastUpdatedDate``, so each
update reaches the inbox, while the alert's ``vendor_id`` is the ``caseId``:
route with ``group_by: "aws-sir|{{ alert.vendor_id }}"`` and every update of a
case lands on the same ticket.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from ..errors import PayloadError, Retryable
from ..model import Alert, AlertStatus, Observables, Severity, SourceInfo
from ._aws_security_ir_api import MAX_PAGE, SecurityIrApi, StaleToken
from .roles import Parser, ParserConfig, Poller, PollerConfig, PollResult

CLOCK_SKEW = timedelta(minutes=5)  # AWS's clock against ours, and a case written while we list
COMMENT_PAGES = 20  # ListComments pages read per case (25 each) before picking the latest
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
            url=self.config.console_url.format(region=region, case_id=case_id),
            detected_at=_first_time(payload, "actualIncidentStartDate", "reportedIncidentStartDate", "createdDate"),
            observables=Observables(ips=list(dict.fromkeys(ip for ip in ips if ip))),
            raw=payload,
        )]

    def _severity(self, case: dict[str, Any]) -> tuple[Severity, str | None]:
        for entry in _dicts(case.get("caseMetadata")):
            if str(entry.get("key", "")).lower() == self.config.severity_key.lower() and (word := _text(entry.get("value"))):
                return SEVERITY_WORDS.get(word.lower(), self.config.default_severity), word
        engagement = _text(case.get("engagementType"))
        return self.config.engagement_severity.get(engagement or "", self.config.default_severity), None


class AwsSecurityIrSource(AwsSecurityIrParser, Poller):
    """Polls AWS Security Incident Response cases; each case update becomes one alert."""

    parser = AwsSecurityIrParser

    class Config(AwsSecurityIrParser.Config, PollerConfig):
        """Where the cases are and how they read as alerts."""

        profile: str | None = Field(default=None, description="Named profile in ~/.aws/config (SSO, role chains); unset: the default credential chain", examples=["security-audit"])
        access_key_id: str | None = Field(default=None, description="Static access key id, only where no role or profile can be used", examples=["AKIAIOSFODNN7EXAMPLE"])
        secret_access_key: SecretStr | None = Field(default=None, description="Secret of `access_key_id`", examples=["${AWS_SECRET_ACCESS_KEY}"])
        session_token: SecretStr | None = Field(default=None, description="Session token of temporary static credentials", examples=["${AWS_SESSION_TOKEN}"])
        role_arn: str | None = Field(default=None, description="Role to assume (sts:AssumeRole) with the credentials above; refreshed before expiry", examples=["arn:aws:iam::123456789012:role/alertbridge-security-ir-read"])
        endpoint_url: str | None = Field(default=None, description="Another endpoint than AWS's, e.g. the sandbox emulator", examples=["http://127.0.0.1:8081/aws_security_ir"])
        page_size: int = Field(default=MAX_PAGE, ge=1, le=MAX_PAGE, description="Cases per ListCases call (AWS allows at most 25)", examples=[25])
        comments: int = Field(default=5, ge=0, le=50, description="How many of the latest case comments go into the description; 0 skips ListComments", examples=[5])

        @model_validator(mode="after")
        def _key_pair(self) -> AwsSecurityIrSource.Config:
            if bool(self.access_key_id) != bool(self.secret_access_key):
                raise ValueError("give both `access_key_id` and `secret_access_key`, or neither")
            return self

    config: Config

    def __init__(self, name: str, config: Config, client: Any = None):
        super().__init__(name, config)
        keys = None
        if config.access_key_id and config.secret_access_key:
            token = config.session_token.get_secret_value() if config.session_token else None
            keys = (config.access_key_id, config.secret_access_key.get_secret_value(), token)
        self.api = SecurityIrApi(
            region=config.region, profile=config.profile, keys=keys, role_arn=config.role_arn,
            endpoint_url=config.endpoint_url, timeout=config.timeout, client=client,
        )  # fmt: skip

    async def poll(self, cursor: str | None) -> PollResult:
        """Read the next ListCases page of the current sweep and return the cases updated since the watermark."""
        now = datetime.now(UTC)
        state = json.loads(cursor) if cursor else {"since": _iso(now - timedelta(seconds=self.config.backfill)), "done": []}
        if not state.get("token"):
            state["started"] = _iso(now)
        try:
            page = await self._list_cases(state.get("token"))
        except StaleToken:
            # The stored nextToken expired (a long stop mid-sweep): list again from the top; `done` skips what we have.
            state.update(token=None, started=_iso(now))
            page = await self._list_cases(None)
        since, done = _time(state["since"]), set(state["done"])
        fresh = [case for case in page.get("items", []) if _updated(case) > since and self.item_id(case) not in done]
        items = []
        for case in sorted(fresh, key=lambda c: (_updated(c), c["caseId"])):
            try:
                items.append(await self._read_case(case))
            except Retryable:
                if not items:
                    raise
                # Keep what this page already read (a page is up to 51 calls): the same page is
                # listed again next, `done` skips these, and a throttle then makes the core wait.
                state["done"] = sorted(done | {self.item_id(item) for item in items})
                return PollResult(items, json.dumps(state), more=True)
        done |= {self.item_id(case) for case in fresh}
        if page.get("nextToken"):
            state.update(token=page["nextToken"], done=sorted(done))
            return PollResult(items, json.dumps(state), more=True)
        since = max(since, _time(state["started"]) - CLOCK_SKEW)
        kept = sorted(item for item in done if _time(item.partition("@")[2] or state["since"]) > since)
        return PollResult(items, json.dumps({"since": _iso(since), "done": kept}), more=False)

    def item_id(self, item: dict[str, Any]) -> str:
        """Return `caseId@lastUpdatedDate`: one inbox item per case update."""
        stamp = item.get("lastUpdatedDate")
        return f"{item['caseId']}@{_iso(_time(stamp)) if isinstance(stamp, str) else ''}"

    async def _list_cases(self, token: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"maxResults": self.config.page_size}
        if token:
            params["nextToken"] = token
        return await self.api.call("list_cases", params)

    async def _read_case(self, listed: dict[str, Any]) -> dict[str, Any]:
        case_id = listed["caseId"]
        case = await self.api.call("get_case", {"caseId": case_id})
        comments: list[dict[str, Any]] = []
        token = None
        for _ in range(COMMENT_PAGES if self.config.comments else 0):
            params = {"caseId": case_id, "maxResults": MAX_PAGE, **({"nextToken": token} if token else {})}
            page = await self.api.call("list_comments", params)
            comments += page.get("items", [])
            if not (token := page.get("nextToken")):
                break
        latest = sorted(comments, key=lambda c: str(c.get("createdDate") or ""))[-self.config.comments:] if comments else []
        # The listing's lastUpdatedDate stays the item's: it is what `done` and item_id were computed from.
        return {**case, **listed, "comments": latest}

    async def aclose(self) -> None:
        """Close the boto3 client."""
        await self.api.aclose()


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


def _text(value: Any) -> str | None:
    """Return a non-empty string, else None."""
    return value if isinstance(value, str) and value.strip() else None


def _texts(value: Any) -> list[str]:
    return [v for v in value if _text(v)] if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _updated(case: dict[str, Any]) -> datetime:
    """Return when a listed case last changed; a case without dates is always new to a first sweep."""
    stamp = case.get("lastUpdatedDate") or case.get("createdDate")
    return _time(stamp) if isinstance(stamp, str) else datetime.max.replace(tzinfo=UTC)


def _first_time(case: dict[str, Any], *fields: str) -> datetime | None:
    for field in fields:
        try:
            return _time(case[field])
        except (KeyError, TypeError, ValueError):
            continue
    return None
