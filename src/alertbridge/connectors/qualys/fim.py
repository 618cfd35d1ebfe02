"""Qualys FIM source: only the file-integrity incidents that need escalation, from the gateway's incident search.

    POST {gateway}/auth                      form username, password, token=true -> a JWT (text)
    POST {gateway}/fim/v3/incidents/search   {"filter": "lastUpdatedBy.date: ['<ms>'..'<ms>']", "sort": "[{\\"lastUpdatedBy.date\\":\\"asc\\"}]",
                                              "pageNumber": n, "pageSize": size}  -> [{"sortValues": [...], "data": {incident}}]
    POST {gateway}/fim/v2/incidents/{id}/events/search   (only with min_severity: the incident's most severe event)

An incident escalates when it matches every configured criterion: its status,
its approval status (by default a reviewer marked it POLICY_VIOLATION or
UNAPPROVED), its disposition category, and the severity of its most severe
event. The rest — approved changes, patching, pre-approved change control —
never leave Qualys. Incidents are read by last update, because a review is what
makes one worth escalating. The cursor (JSON) is a keyset over that time: each
page starts at the newest update of the page before (re-read, dropped as
repeats), and moves to the next page number only when a whole page shares one
millisecond; a round ends at the time it began (``upto``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx2
from pydantic import Field

from ...errors import PayloadError, Retryable
from ...model import Alert, AlertStatus, Severity, SourceInfo
from .._values import field_texts, json_cursor
from ..roles import Parser, Poller, PollResult, SampleItem
from .api import GatewayApi, connect
from .settings import SEVERITY, QualysConfig, assignment, level

SEARCH_PATH = "/fim/v3/incidents/search"
EVENTS_PATH = "/fim/v2/incidents/{id}/events/search"
BY_UPDATE = '[{"lastUpdatedBy.date":"asc"}]'
DISPOSITION_SEVERITY = {"MALWARE": Severity.high, "GENERAL_HACKING": Severity.high, "CHANGE_CONTROL_VIOLATION": Severity.medium}


def value(node: Any, *path: str) -> Any:
    """Follow keys into nested objects; None where one is missing, and for XSOAR's 'None' strings in the samples."""
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return None if node in (None, "", "None") else node


class QualysFimParser(Parser, SampleItem):
    """Qualys FIM incidents: a stored item, one search result ({"data": ...}) or a whole search answer."""

    type: ClassVar[str] = "qualys_fim"

    @classmethod
    def sample_item(cls) -> dict[str, Any]:
        """Return a typical item: an incident a reviewer marked as a policy violation."""
        who = {"date": 1705284000000, "user": {"name": "SOC Reviewer", "id": "00000000-0000-0000-0000-00000000000a"}}
        return {
            "incident": {"id": "4710aa44-8d69-4c00-8013-737768cb54be", "name": "Web root changed outside the change window",
                         "status": "OPEN", "approvalStatus": "POLICY_VIOLATION", "dispositionCategory": "CHANGE_CONTROL_VIOLATION",
                         "changeType": "MANUAL", "type": "DEFAULT", "reviewers": ["soc_reviewer"], "createdBy": who, "lastUpdatedBy": who},
            "max_event_severity": 4, "group": "incident:4710aa44-8d69-4c00-8013-737768cb54be", "assign": {"assignee": None, "component": None},
        }

    def parse(self, payload: Any) -> list[Alert]:
        """Turn one stored incident item, a search result ({"data": …}) or a whole search answer into alerts."""
        if isinstance(payload, list):
            return [alert for entry in payload for alert in self.parse(entry)]
        incident = payload.get("incident", payload.get("data", payload)) if isinstance(payload, dict) else None
        incident_id = value(incident, "id")
        if not isinstance(incident_id, str):
            raise PayloadError("not a Qualys FIM incident: no 'id'")
        name = value(incident, "name")
        disposition, approval = value(incident, "dispositionCategory"), value(incident, "approvalStatus")
        severity = level(payload.get("max_event_severity")) if payload is not incident else None
        created = value(incident, "createdBy", "date")
        facts = [f"{label}: {text}" for label, text in (
            ("Status", value(incident, "status")), ("Approval", approval), ("Disposition", disposition),
            ("Change type", value(incident, "changeType")), ("Rule", value(incident, "ruleName")),
            ("Reviewers", ", ".join(field_texts(incident, "reviewers"))),
            ("Reviewed by", value(incident, "lastUpdatedBy", "user", "name")), ("Comment", value(incident, "comment")),
        ) if isinstance(text, str) and text]
        return [
            Alert(
                source=SourceInfo(name=self.name, type=self.type, product="Qualys FIM", vendor="Qualys",
                                  tenant=self.config.tenant),
                vendor_id=incident_id, title=f"FIM incident: {name}" if isinstance(name, str) else f"FIM incident {incident_id}",
                description="\n".join(facts),
                severity=SEVERITY[severity] if severity else DISPOSITION_SEVERITY.get(str(disposition), Severity.medium),
                vendor_severity=str(severity) if severity else None, category="File Integrity",
                status=AlertStatus.resolved if value(incident, "status") == "CLOSED" else AlertStatus.new,
                detected_at=datetime.fromtimestamp(created / 1000, UTC) if isinstance(created, int) and 0 < created < 1 << 45 else None,
                labels=[label for label in (disposition, approval) if isinstance(label, str)], raw=payload,
            )
        ]


class QualysFimPoller(QualysFimParser, Poller):
    """Qualys FIM incidents that match the escalation criteria: one item, and one case, per incident."""

    parser = QualysFimParser

    class Config(QualysConfig):
        """The gateway, and what makes an incident worth a ticket."""

        url: str = Field(pattern=r"^https?://", description="Gateway URL of the subscription's platform",
                         examples=["https://gateway.qg2.apps.qualys.com", "http://127.0.0.1:8081/qualys"])
        interval: float = Field(default=300.0, gt=0, description="Seconds between polls once caught up", examples=[300])
        statuses: list[str] = Field(default=[], description="Incident statuses that escalate (OPEN, CLOSED); empty: any", examples=[["OPEN"]])
        approval_statuses: list[str] = Field(default=["POLICY_VIOLATION", "UNAPPROVED"], description="Approval statuses that "
                                             "escalate (APPROVED, PENDING, POLICY_VIOLATION, UNAPPROVED); empty: any",
                                             examples=[["POLICY_VIOLATION", "UNAPPROVED"]])
        dispositions: list[str] = Field(default=[], description="Disposition categories that escalate (MALWARE, GENERAL_HACKING, "
                                        "CHANGE_CONTROL_VIOLATION, …); empty: any", examples=[["MALWARE", "GENERAL_HACKING"]])
        min_severity: int | None = Field(default=None, ge=1, le=5, description="Lowest severity (1-5) of the incident's most "
                                         "severe event; costs one call per candidate incident; null: not checked", examples=[4])
        filter: str | None = Field(default=None, description="More Qualys FIM search terms, joined with 'and'", examples=["type:DEFAULT"])
        page_size: int = Field(default=100, ge=1, le=200, description="Incidents per page (the API takes at most 200)", examples=[100])

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self._api = connect(GatewayApi, name, config, transport)

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the next page of incidents updated since the cursor; keep those that escalate."""
        now = int(datetime.now(UTC).timestamp() * 1000)
        state = json_cursor(cursor, "qualys fim", lambda s: isinstance(s.get("since"), int)) or {
            "since": now - int(self.config.backfill * 1000)}
        since, upto, number = state["since"], state.get("upto") or now, state.get("page", 0)
        query = f"lastUpdatedBy.date: ['{since}'..'{upto}']" + (f" and {self.config.filter}" if self.config.filter else "")
        answer = await self._api.post_json("incidents", SEARCH_PATH, {"filter": query, "sort": BY_UPDATE, "pageNumber": number,
                                                         "pageSize": self.config.page_size})
        if not isinstance(answer, list):
            raise Retryable("qualys fim incident search: the answer is not a list")
        incidents = [entry["data"] for entry in answer if isinstance(entry, dict) and isinstance(entry.get("data"), dict)]
        items = [item for incident in incidents if (item := await self._escalated(incident)) is not None]
        if len(answer) < self.config.page_size:
            return PollResult(items, json.dumps({"since": upto}))
        newest = max([stamp for i in incidents if isinstance(stamp := value(i, "lastUpdatedBy", "date"), int)], default=since)
        following = {"since": newest, "upto": upto, "page": 0} if newest > since else {"since": since, "upto": upto, "page": number + 1}
        return PollResult(items, json.dumps(following), more=True)

    async def _escalated(self, incident: dict[str, Any]) -> dict[str, Any] | None:
        """Return the item of an incident that matches every criterion, else None."""
        config = self.config
        checks = ((config.statuses, "status"), (config.approval_statuses, "approvalStatus"), (config.dispositions, "dispositionCategory"))
        if any(wanted and value(incident, key) not in wanted for wanted, key in checks):
            return None
        severity = None
        if config.min_severity is not None:
            severity = await self._worst_event(str(value(incident, "id")))
            if severity is None or severity < config.min_severity:
                return None
        assign = assignment(config.assign, tags=[], owner=None, os=None)
        return {"incident": incident, "max_event_severity": severity, "group": f"incident:{value(incident, 'id')}", "assign": assign}

    async def _worst_event(self, incident_id: str) -> int | None:
        body = {"pageNumber": 0, "pageSize": 1, "sort": '[{"severity":"desc"}]'}
        answer = await self._api.post_json("incident_events", EVENTS_PATH.format(id=incident_id), body)
        events = [entry.get("data") for entry in answer if isinstance(entry, dict)] if isinstance(answer, list) else []
        return max([s for event in events if (s := level(value(event, "severity"))) is not None], default=None)

    def item_id(self, item: dict[str, Any]) -> str:
        """Return the incident id, with #closed once Qualys closed it: escalated once, and resolved once."""
        incident_id = value(item, "incident", "id")
        return f"{incident_id}#closed" if value(item, "incident", "status") == "CLOSED" else str(incident_id)

    async def aclose(self) -> None:
        """Release connections."""
        await self._api.aclose()

