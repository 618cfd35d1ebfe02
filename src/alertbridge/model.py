"""The normalized alert, shaped after OCSF Detection Finding (class 2004).

Every source parses its vendor payload into ``Alert``; everything downstream
(routing, templates, tickets) sees only this model. ``TicketEvent`` is what a
ticket system's own webhook parses into: a change to a ticket, not an alert.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field, computed_field


class Severity(str, Enum):
    """Normalized severity, ordered from info to critical."""

    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        """Return 0 for info up to 4 for critical."""
        return _SEVERITY_RANK[self]

    @property
    def ocsf_id(self) -> int:
        """Return the OCSF severity_id (1 informational … 5 critical)."""
        return self.rank + 1


_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(Severity)}  # a look-up: ranked twice per repeat alert


class AlertStatus(str, Enum):
    """Where the vendor says the alert stands."""

    new = "new"
    in_progress = "in_progress"
    resolved = "resolved"


class SourceState(str, Enum):
    """Where the alert stands in the tool that raised it, in the words a route's lifecycle maps (config `sync`)."""

    firing = "firing"
    in_progress = "in_progress"
    resolved = "resolved"
    suppressed = "suppressed"  # a duplicate, or muted by a suppression rule
    false_positive = "false_positive"
    benign = "benign"  # a true detection of expected activity (a test, an admin)

    @property
    def done(self) -> bool:
        """Tell whether the alert is over in this state."""
        return self not in (SourceState.firing, SourceState.in_progress)


class SourceInfo(BaseModel):
    """Which product sent the alert, and from which instance or tenant."""

    name: str = Field(description="The source's name in the config", examples=["splunk-prod"])
    type: str = Field(description="The connector type", examples=["splunk"])
    product: str = Field(examples=["Splunk Enterprise"])
    vendor: str = Field(examples=["Splunk"])
    instance: str | None = Field(default=None, examples=["splunk.example.com"])
    tenant: str | None = Field(default=None, examples=["contoso"])


class Observables(BaseModel):
    """Things an analyst pivots on."""

    ips: list[str] = []
    users: list[str] = []
    hosts: list[str] = []
    domains: list[str] = []
    urls: list[str] = []
    hashes: list[str] = []
    emails: list[str] = []

    def merge(self, other: Observables) -> Observables:
        """Return the union of both, keeping first-seen order."""
        merged = {
            name: list(dict.fromkeys(getattr(self, name) + getattr(other, name)))
            for name in OBSERVABLE_KINDS
        }
        # Both sides were validated already (lists of str): constructed, not validated again, once per repeat alert.
        return Observables.model_construct(**merged)


OBSERVABLE_KINDS = tuple(Observables.model_fields)


class Evidence(BaseModel):
    """A file a source hands over with an alert (the reported .eml), attached to the ticket once it exists."""

    filename: str = Field(examples=["original.eml"])
    content_type: str = Field(default="application/octet-stream", examples=["message/rfc822"])
    size: int
    sha256: str
    content: bytes = Field(default=b"", exclude=True, repr=False, description="The bytes; never stored with the alert")


class SourceComment(BaseModel):
    """A comment on the alert's record at its source (an AWS Security IR case comment)."""

    id: str = Field(description="The vendor's comment id", examples=["000001"])
    author: str | None = None
    text: str
    at: datetime | None = None


class Alert(BaseModel):
    """One security alert, normalized."""

    source: SourceInfo
    vendor_id: str = Field(description="The vendor's own id for the alert", examples=["rt_scheduler__admin__search__sudo_at_1483557185_2.2"])
    title: str
    description: str = ""
    severity: Severity = Severity.medium
    vendor_severity: str | None = Field(default=None, description="The severity as the vendor wrote it")
    category: str | None = None
    status: AlertStatus = AlertStatus.new
    disposition: SourceState | None = Field(default=None, description="What the vendor concluded about a resolved alert "
                                            "(false_positive, benign, suppressed), where it says", examples=["false_positive"])
    revision: str | None = Field(default=None, description="The vendor's stamp of this version of the alert (its last update "
                                 "time), by which the hub recognises the changes it made itself", examples=["2026-01-02T10:00:00Z"])
    url: str | None = Field(default=None, description="Deep link to the alert in the vendor console")
    detected_at: datetime | None = None
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    observables: Observables = Observables()
    tactics: list[str] = []
    techniques: list[str] = []
    labels: list[str] = []
    enrichment: dict[str, Any] = Field(default_factory=dict, description="Facts added by enrichers, by enricher name")
    evidence: list[Evidence] = Field(default_factory=list, description="Files to attach to the ticket")
    comments: list[SourceComment] = Field(default_factory=list, description="The latest comments on the record at its source")
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def id(self) -> str:
        """Return a stable id: the same vendor alert from the same source always has the same id."""
        digest = hashlib.sha256(f"{self.source.name}\x00{self.vendor_id}".encode()).hexdigest()
        return digest[:24]

    @property
    def state(self) -> SourceState:
        """Return where the alert stands as a lifecycle names it: its disposition once resolved, else its status."""
        if self.status == AlertStatus.resolved:
            return self.disposition if self.disposition is not None and self.disposition.done else SourceState.resolved
        return SourceState.in_progress if self.status == AlertStatus.in_progress else SourceState.firing

    # Shortcuts templates use: {{ alert.hosts|join(', ') }}
    @property
    def hosts(self) -> list[str]:
        """Return the affected hosts."""
        return self.observables.hosts

    @property
    def ips(self) -> list[str]:
        """Return the IP addresses seen."""
        return self.observables.ips

    @property
    def users(self) -> list[str]:
        """Return the users involved."""
        return self.observables.users

    def to_ocsf(self) -> dict[str, Any]:
        """Export as an OCSF 1.x Detection Finding (class_uid 2004)."""
        observables = [
            {"name": kind, "type": _OCSF_OBSERVABLE_TYPE[kind][1], "type_id": _OCSF_OBSERVABLE_TYPE[kind][0], "value": value}
            for kind in Observables.model_fields
            for value in getattr(self.observables, kind)
        ]
        attacks = [{"tactic": {"name": t}} for t in self.tactics] + [
            {"technique": {"uid": t}} for t in self.techniques
        ]
        event_time = self.detected_at or self.received_at
        return {
            "class_uid": 2004,
            "class_name": "Detection Finding",
            "category_uid": 2,
            "activity_id": 1,
            "type_uid": 200401,
            "severity_id": self.severity.ocsf_id,
            "severity": self.severity.value.title() if self.severity != Severity.info else "Informational",
            "status": {"new": "New", "in_progress": "In Progress", "resolved": "Resolved"}[self.status.value],
            "time": int(event_time.timestamp() * 1000),
            "message": self.title,
            "finding_info": {
                "uid": self.vendor_id,
                "title": self.title,
                "desc": self.description,
                "src_url": self.url,
                "types": [self.category] if self.category else [],
                "attacks": attacks,
            },
            "metadata": {
                "product": {"name": self.source.product, "vendor_name": self.source.vendor},
                "tenant_uid": self.source.tenant,
                "uid": self.id,
                "version": "1.3.0",
            },
            "observables": observables,
            "unmapped": {"vendor_severity": self.vendor_severity, "enrichment": self.enrichment},
            "raw_data": self.raw,
        }


# OCSF observable type ids: https://schema.ocsf.io/1.3.0/objects/observable
_OCSF_OBSERVABLE_TYPE = {
    "hosts": (1, "Hostname"),
    "ips": (2, "IP Address"),
    "users": (4, "User Name"),
    "emails": (5, "Email Address"),
    "urls": (6, "URL String"),
    "hashes": (8, "Hash"),
    "domains": (1, "Hostname"),
}


class TicketEvent(BaseModel):
    """A change to a ticket, reported by the ticket system (e.g. a Jira webhook)."""

    sink: str = Field(description="The sink's name in the config that owns the ticket")
    ticket_key: str = Field(examples=["SOC-42"])
    event_id: str | None = Field(default=None, description="The webhook delivery id, for replay protection")
    kind: str = Field(description="created, updated, deleted or commented", examples=["updated"])
    status: str | None = Field(default=None, examples=["Done"])
    status_category: str | None = Field(default=None, description="new, indeterminate or done")
    resolution: str | None = None
    actor: str | None = Field(default=None, description="Account id or name of who made the change")
    change_id: str | None = Field(default=None, description="The ticket system's id of this change (Jira's changelog id, "
                                  "ServiceNow's sys_mod_count): how the hub recognises its own changes coming back")
    comment: str | None = Field(default=None, description="A new comment's text (kind commented), plain")
    comment_id: str | None = Field(default=None, description="A new comment's id in the ticket system")
    labels: list[str] = []
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def case_reference(instance: str, case_id: int) -> str:
    """Return the unique reference of a new case, which the sink stores on its ticket (a Jira label).

    Case ids start at 1 in every database; the instance id (made with the database, store/instance.py)
    keeps two hubs on one project apart. Cases from before it keep the `alertbridge-<case id>` they were
    filed with: the reference is stored on the case (`cases.reference`), never recomputed.
    """
    return f"alertbridge-{instance}-{case_id}"


class CaseEventKind(str, Enum):
    """What happened to a case, as notifiers are told."""

    opened = "opened"
    updated = "updated"  # more alerts on an open case
    severity_raised = "severity_raised"
    reopened = "reopened"
    acknowledged = "acknowledged"  # the ticket moved to in progress (status category 'indeterminate')
    resolved = "resolved"  # the source said the alert is resolved and the hub closed the ticket
    ticket_closed = "ticket_closed"  # an analyst closed the ticket

    @property
    def closes(self) -> bool:
        """Tell whether the case is closed after this event."""
        return self in (CaseEventKind.resolved, CaseEventKind.ticket_closed)


class CaseEvent(BaseModel):
    """One thing that happened to a case, for one notifier: everything it needs to say it, already rendered."""

    case_id: int
    reference: str = Field(description="The case's unique reference, as the sink stores it (and PagerDuty's dedup_key)",
                           examples=["alertbridge-k3f9qz2a-7"])
    case_key: str = Field(description="The rendered grouping key", examples=["splunk|sudo|web-01"])
    route: str
    kind: CaseEventKind
    title: str
    severity: Severity
    previous_severity: Severity | None = None
    category: str | None = None
    source: str = ""
    alert_count: int = 1
    hosts: list[str] = []
    ticket_key: str | None = None
    ticket_url: str | None = None
    ticket_status: str | None = None
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    event_id: str = Field(default="", description="Unique per event and notifier: how a notifier recognises a message it already sent")
    text: str = Field(default="", description="The message body rendered from the route's template (plain text; the notifier escapes it)")
    console_url: str | None = None
    playbook_url: str | None = None
    target: str | None = Field(default=None, description="Where inside the notifier: a Slack channel, a PagerDuty service; None for its default")
    thread: dict[str, str] = Field(default={}, description="What this notifier kept from its earlier messages about the case (Slack's ts)")


class DigestCase(BaseModel):
    """One case listed in a storm digest."""

    case_id: int
    title: str
    severity: Severity
    ticket_key: str | None = None
    ticket_url: str | None = None


class CaseDigest(BaseModel):
    """Many cases opened at once on one channel, told in one message instead of one each."""

    event_id: str
    target: str | None = None
    total: int
    by_severity: dict[Severity, int]
    first: list[DigestCase]
    since: datetime
    until: datetime
    list_url: str | None = Field(default=None, description="The console's case list")


class HealthEvent(BaseModel):
    """The hub's own health: a condition an operator must see (dead letters, a failing poller, auth failures, rate limits)."""

    condition: str = Field(examples=["dead_letters"])
    firing: bool = Field(description="True when the condition starts, False when it clears")
    summary: str
    details: dict[str, Any] = {}
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class TicketComment(BaseModel):
    """A comment on a ticket, as the ticket system shows it."""

    at: datetime
    author: str | None = None
    text: str


class TicketHistory(BaseModel):
    """When a ticket was created, its status changes (when, who, 'To Do → In Progress') and its comments, oldest first."""

    created: datetime | None = None
    transitions: list[tuple[datetime, str | None, str]] = []
    comments: list[TicketComment] = []


class TimelineEntry(BaseModel):
    """One moment in a case's life, for the post-incident review."""

    at: datetime
    what: str
    who: str | None = None


class PostIncidentReview(BaseModel):
    """What a post-incident review page is written from; the writer renders it with the operator's template."""

    reference: str
    case_id: int
    ticket_key: str
    ticket_url: str | None = None
    summary: str
    severity: Severity
    category: str | None = None
    sources: list[str] = []
    opened_at: datetime
    closed_at: datetime
    first_alert_at: datetime
    last_alert_at: datetime
    alert_count: int
    timeline: list[TimelineEntry] = []
    comments: list[TimelineEntry] = []
    observables: Observables = Observables()
    time_to_acknowledge: float | None = Field(default=None, description="Seconds from the first alert to the ticket moving to in progress")
    time_to_resolve: float = Field(description="Seconds from the first alert to the close")
    resolution: str | None = None
    playbook_url: str | None = None
    console_url: str | None = None
