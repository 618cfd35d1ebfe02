"""SonarQube source: polls new issues of chosen severities (SonarQube Server and SonarQube Cloud).

    GET /api/issues/search?createdAfter=<time>&s=CREATION_DATE&asc=true&p=<page>&ps=<size>&severities=…&projects=…
    -> {paging: {pageIndex, pageSize, total}, issues: [...], components: [...]}

https://next.sonarqube.com/sonarqube/web_api/api/issues/search
`createdAfter` is inclusive and to the second, and the server refuses to page
past the first 10,000 results, so the cursor (JSON) keeps the newest creation
time seen and starts again at page 1 from it: pages stay short whatever the
backlog, and issues of the cursor's own second are read again and dropped as
repeats. Only a flood of more than 10,000 issues within one second would meet
the cap. SonarQube dates an issue on old code by its SCM commit ("backdating"),
so such an issue can be created before the cursor and is then not polled: see
docs/connectors/sonarqube.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import httpx2
from pydantic import Field, SecretStr

from ..errors import PayloadError
from ..model import Alert, AlertStatus, Observables, Severity, SourceInfo
from ._http import HttpClient, Vendor
from ._values import iso_time as _time
from ._values import json_cursor
from ._values import objects as _objects
from ._values import text as _text
from .roles import Parser, ParserConfig, Poller, PollerConfig, PollResult

SEVERITIES = {"BLOCKER": Severity.critical, "CRITICAL": Severity.high, "MAJOR": Severity.medium, "MINOR": Severity.low, "INFO": Severity.info}
# Software-quality impacts (SonarQube 10.2+; BLOCKER and INFO since 10.7).
IMPACTS = {"BLOCKER": Severity.critical, "HIGH": Severity.high, "MEDIUM": Severity.medium, "LOW": Severity.low, "INFO": Severity.info}
RESOLVED = {"CLOSED", "RESOLVED", "FIXED", "ACCEPTED", "FALSE_POSITIVE"}
WHEN = "%Y-%m-%dT%H:%M:%S+0000"  # the form createdAfter reads: yyyy-MM-dd'T'HH:mm:ssZ


class SonarQubeVendor(Vendor):
    """SonarQube's errors: {"errors": [{"msg": ...}]}."""

    def message(self, body: Any) -> str | None:
        """Join the `msg` of each error."""
        errors = body.get("errors") if isinstance(body, dict) else None
        found = [str(e["msg"]) for e in errors if isinstance(e, dict) and e.get("msg")] if isinstance(errors, list) else []
        return "; ".join(found) or super().message(body)


SONARQUBE = SonarQubeVendor("sonarqube")


class SonarQubeParser(Parser):
    """SonarQube issues: one, or a whole /api/issues/search answer."""

    type: ClassVar[str] = "sonarqube"

    class Config(ParserConfig):
        """The server the issues' links point to."""

        url: str = Field(default="https://sonarcloud.io", pattern=r"^https?://",
                         description="Base URL of the SonarQube server or SonarQube Cloud", examples=["https://sonar.example.com"])

    config: Config

    def parse(self, payload: Any) -> list[Alert]:
        """Turn one issue, or a whole /api/issues/search answer, into alerts."""
        if isinstance(payload, dict) and isinstance(payload.get("issues"), list):
            return [self._alert(issue) for issue in payload["issues"]]
        return [self._alert(payload)]

    def _alert(self, payload: Any) -> Alert:
        if not isinstance(payload, dict):
            raise PayloadError(f"not a SonarQube issue: expected a JSON object, got {type(payload).__name__}")
        key, project = _text(payload.get("key")), _text(payload.get("project"))
        if not key or not project:
            raise PayloadError("not a SonarQube issue: it needs a 'key' and a 'project'")
        severity, vendor_severity = _severity(payload)
        tags = [tag for tag in payload.get("tags") if _text(tag)] if isinstance(payload.get("tags"), list) else []
        statuses = {_text(payload.get("status")), _text(payload.get("issueStatus"))}
        return Alert(
            source=SourceInfo(name=self.name, type=self.type, product="SonarQube", vendor="SonarSource",
                              instance=urlsplit(self.config.url).hostname, tenant=self.config.tenant),
            vendor_id=key,
            title=f"{_text(payload.get('message')) or _text(payload.get('rule')) or 'SonarQube issue'} ({_where(payload, project)})",
            description=_description(payload, project),
            severity=severity,
            vendor_severity=vendor_severity,
            category=_text(payload.get("type")) or _text(payload.get("cleanCodeAttributeCategory")),
            status=AlertStatus.resolved if statuses & RESOLVED else AlertStatus.in_progress if "CONFIRMED" in statuses else AlertStatus.new,
            url=f"{self.config.url.rstrip('/')}/project/issues?id={quote(project, safe='')}&open={quote(key, safe='')}",
            detected_at=_time(payload.get("creationDate")),
            observables=_observables(payload),
            labels=list(dict.fromkeys(["sonarqube", *(tag.strip() for tag in tags)])),
            raw=payload,
        )


class SonarQubeSource(SonarQubeParser, Poller):
    """SonarQube issues: one alert per new issue of the chosen severities."""

    parser = SonarQubeParser

    class Config(SonarQubeParser.Config, PollerConfig):
        """Which server, the token, and which issues."""

        token: SecretStr = Field(description="A user token of an account that may browse the projects", examples=["${SONAR_TOKEN}"])
        auth_scheme: Literal["bearer", "basic"] = Field(
            default="bearer", description="bearer: 'Authorization: Bearer <token>' (SonarQube 10+, Cloud); "
            "basic: the token as basic-auth user name with an empty password (older servers)", examples=["basic"])
        organization: str | None = Field(default=None, description="SonarQube Cloud organization key (Cloud only)", examples=["acme"])
        projects: list[str] = Field(default=[], description="Project keys to watch; empty: every project the token can browse",
                                    examples=[["com.acme:payments", "com.acme:web"]])
        severities: list[Literal["BLOCKER", "CRITICAL", "MAJOR", "MINOR", "INFO"]] = Field(
            default=["BLOCKER", "CRITICAL"], description="Issue severities to poll; empty: any", examples=[["BLOCKER", "CRITICAL", "MAJOR"]])
        impact_severities: list[Literal["BLOCKER", "HIGH", "MEDIUM", "LOW", "INFO"]] = Field(
            default=[], description="Software-quality impact severities to poll (SonarQube 10.2+); the server ANDs them "
            "with `severities`, so empty that one when you use this", examples=[["BLOCKER", "HIGH"]])
        page_size: int = Field(default=100, ge=1, le=500, description="Issues per request (the server allows 500)", examples=[500])

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None,
                 clock: Callable[[], datetime] | None = None):
        super().__init__(name, config)
        self._clock = clock or (lambda: datetime.now(UTC))
        secret = config.token.get_secret_value()
        auth = httpx2.BasicAuth(secret, "") if config.auth_scheme == "basic" else None
        headers = {"Authorization": f"Bearer {secret}"} if auth is None else {}
        self._client = HttpClient(name, SONARQUBE, base_url=config.url.rstrip("/"), auth=auth, headers=headers,
                                  timeout=config.timeout, transport=transport)

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the issues created since the cursor's time, oldest first."""
        state = _read_cursor(cursor)
        since = state.get("since") or (self._clock() - timedelta(seconds=self.config.backfill)).astimezone(UTC).strftime(WHEN)
        page = state.get("page", 1)
        params: dict[str, Any] = {"createdAfter": since, "s": "CREATION_DATE", "asc": "true", "p": page, "ps": self.config.page_size}
        chosen = {"severities": self.config.severities, "impactSeverities": self.config.impact_severities, "projects": self.config.projects}
        params |= {name: ",".join(values) for name, values in chosen.items() if values}
        if self.config.organization:
            params["organization"] = self.config.organization
        body = self._client.json_object(await self._client.call("search", "GET", "/api/issues/search", params=params))
        issues = _objects(body.get("issues"))
        total = body.get("paging", {}).get("total", 0) if isinstance(body.get("paging"), dict) else 0
        newest = max((t for t in (_time(i.get("creationDate")) for i in issues) if t), default=None)
        if newest and newest > _time(since):
            after = {"since": newest.astimezone(UTC).strftime(WHEN), "page": 1}
        elif len(issues) == self.config.page_size:
            after = {"since": since, "page": page + 1}  # a full page of one second: read on past it
        else:
            after = {"since": since, "page": 1}
        return PollResult(issues, json.dumps(after), more=isinstance(total, int) and page * self.config.page_size < total)

    def item_id(self, item: dict[str, Any]) -> str:
        """Return the issue key."""
        return str(item.get("key"))

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def _read_cursor(cursor: str | None) -> dict[str, Any]:
    """Return {since, page} from our cursor; {} on the first run."""
    return json_cursor(
        cursor, "sonarqube", lambda state: _time(state.get("since")) is not None and isinstance(state.get("page"), int)
    ) or {}


def _impacts(issue: dict[str, Any]) -> list[tuple[str, str]]:
    found = [(_text(i.get("softwareQuality")) or "?", _text(i.get("severity"))) for i in _objects(issue.get("impacts"))]
    return [(quality, level) for quality, level in found if level]


def _severity(issue: dict[str, Any]) -> tuple[Severity, str | None]:
    """Take the worse of the legacy severity and the impacts' severities."""
    legacy = _text(issue.get("severity"))
    candidates = [SEVERITIES[legacy.upper()]] if legacy and legacy.upper() in SEVERITIES else []
    candidates += [IMPACTS[level.upper()] for _, level in _impacts(issue) if level.upper() in IMPACTS]
    words = ([legacy] if legacy else []) + [f"{quality}:{level}" for quality, level in _impacts(issue)]
    return max(candidates, key=lambda s: s.rank, default=Severity.medium), ", ".join(words) or None


def _where(issue: dict[str, Any], project: str) -> str:
    """Return the component without its project prefix, with the line: 'src/Foo.java:81'."""
    component = _text(issue.get("component")) or project
    path = component.removeprefix(f"{project}:") or component
    line = issue.get("line")
    return f"{path}:{line}" if isinstance(line, int) and not isinstance(line, bool) else path


def _description(issue: dict[str, Any], project: str) -> str:
    impacts = ", ".join(f"{quality} {level}" for quality, level in _impacts(issue))
    facts = (("Rule", issue.get("rule")), ("Type", issue.get("type")), ("Project", project), ("Component", issue.get("component")),
             ("Line", str(issue["line"]) if isinstance(issue.get("line"), int) else None), ("Severity", issue.get("severity")),
             ("Impacts", impacts), ("Status", issue.get("status")), ("Resolution", issue.get("resolution")),
             ("Effort", issue.get("effort")), ("Author", issue.get("author")), ("Assignee", issue.get("assignee")))
    lines = [f"{label}: {value.strip()}" for label, value in facts if _text(value)]
    return "\n".join([_text(issue.get("message")) or "", "", *lines]).strip()


def _observables(issue: dict[str, Any]) -> Observables:
    people = [person for person in (_text(issue.get("author")), _text(issue.get("assignee"))) if person]
    return Observables(emails=[p for p in dict.fromkeys(people) if "@" in p], users=[p for p in dict.fromkeys(people) if "@" not in p])
