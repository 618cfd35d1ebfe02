"""What a connector is: a source of alerts, a ticket sink, a notifier or a review writer.

A connector is one module with one class and a pydantic ``Config`` whose fields
carry a description and an example. Parsing is pure; I/O stays in the async
methods; failures are raised as the typed errors of ``alertbridge.errors`` and
the core decides whether to retry or dead-letter.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ..errors import SignatureError
from ..model import Alert, CaseDigest, CaseEvent, HealthEvent, PostIncidentReview, Severity, TicketEvent


class StrictModel(BaseModel):
    """A config model that rejects unknown keys, so typos are reported, not ignored."""

    model_config = ConfigDict(extra="forbid")


class WebhookAuth(StrictModel):
    """How a webhook sender proves who it is."""

    mode: Literal["bearer", "hmac", "query_token", "none"] = Field(
        description="bearer: 'Authorization: Bearer <token>'; hmac: HMAC-SHA256 of the raw body in `header`; "
        "query_token: '?token=<token>' for senders that cannot set headers (Splunk's built-in webhook); "
        "none: no check (only behind a trusted proxy)",
        examples=["hmac"],
    )
    token: SecretStr | None = Field(default=None, description="Shared token for bearer and query_token", examples=["${SPLUNK_HOOK_TOKEN}"])
    secret: SecretStr | None = Field(default=None, description="HMAC key for mode hmac", examples=["${HOOK_SECRET}"])
    header: str = Field(default="X-Signature", description="Header carrying the HMAC", examples=["X-Hub-Signature"])
    prefix: str = Field(default="sha256=", description="Text before the hex digest in the header", examples=["sha256="])

    def check(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> None:
        """Raise SignatureError unless the request carries the right credential."""
        if self.mode == "none":
            return
        if self.mode == "hmac":
            secret = self.secret.get_secret_value() if self.secret else ""
            expected = self.prefix + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            given = headers.get(self.header.lower(), "")
        else:
            expected = self.token.get_secret_value() if self.token else ""
            if self.mode == "bearer":
                given = headers.get("authorization", "").removeprefix("Bearer ").strip()
            else:
                given = query.get("token", "")
        # Compare in constant time so the response time leaks nothing of the secret.
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise SignatureError(f"{self.mode} credential missing or wrong")


class SourceConfig(StrictModel):
    """Fields every source has."""

    type: str = Field(description="Connector type", examples=["splunk"])
    auth: WebhookAuth = Field(
        default_factory=lambda: WebhookAuth(mode="none"),
        description="How webhook requests to /hooks/<name> authenticate",
    )
    tenant: str | None = Field(default=None, description="Tenant or customer this source belongs to", examples=["contoso"])


class Source:
    """A source of alerts: verifies and parses webhook payloads (pollers add ``poll``)."""

    type: ClassVar[str]
    Config: ClassVar[type[SourceConfig]] = SourceConfig

    def __init__(self, name: str, config: SourceConfig):
        self.name = name
        self.config = config

    def verify(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> None:
        """Raise SignatureError unless the request is authentic (headers have lower-case names)."""
        self.config.auth.check(headers, query, body)

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        """Return the sender's unique delivery id, if it sends one, so replays are dropped."""
        return None

    def parse(self, payload: Any) -> Sequence[Alert | TicketEvent]:
        """Turn one decoded payload into alerts; raise PayloadError if it is not this source's."""
        raise NotImplementedError


class PollerConfig(SourceConfig):
    """Fields every polling source has."""

    interval: float = Field(default=60.0, gt=0, description="Seconds between polls once caught up", examples=[60])
    backfill: float = Field(default=86400.0, ge=0, description="On the first run, how many seconds back to start", examples=[86400])
    timeout: float = Field(default=30.0, gt=0, description="Seconds one API call may take", examples=[30])


@dataclass
class PollResult:
    """One page of vendor items and the cursor to store once they are committed with it."""

    items: list[dict[str, Any]]
    cursor: str | None
    more: bool = False  # another page is ready now: poll again without waiting `interval`


class Poller(Source):
    """A source the hub polls: `poll` fetches a page after the cursor; each item becomes one inbox event."""

    Config: ClassVar[type[SourceConfig]] = PollerConfig

    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the next page of items after `cursor` (None on the first run: start `backfill` ago)."""
        raise NotImplementedError

    def item_id(self, item: dict[str, Any]) -> str:
        """Return the vendor's id of one item: the same alert polled twice is stored once."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""


@dataclass
class TicketRef:
    """A ticket in a sink."""

    key: str
    url: str


@dataclass
class TicketStatus:
    """Where a ticket stands."""

    name: str
    category: Literal["new", "indeterminate", "done"]
    resolution: str | None = None


@dataclass
class TicketDraft:
    """A ticket to create: everything already rendered, field values by field *name*."""

    project: str
    issue_type: str
    summary: str
    description: str
    severity: Severity
    labels: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


class SinkConfig(StrictModel):
    """Fields every sink has."""

    type: str = Field(description="Connector type", examples=["jira"])


class TicketSink:
    """A ticket system: find, create, update, comment, transition and read status."""

    type: ClassVar[str]
    Config: ClassVar[type[SinkConfig]] = SinkConfig

    def __init__(self, name: str, config: SinkConfig):
        self.name = name
        self.config = config

    async def find_by_label(self, label: str) -> list[TicketRef]:
        """Return every ticket carrying the label, oldest first."""
        raise NotImplementedError

    async def create(self, draft: TicketDraft) -> TicketRef:
        """Create one ticket."""
        raise NotImplementedError

    async def update(self, key: str, fields: dict[str, str]) -> None:
        """Set fields (by name) on a ticket."""
        raise NotImplementedError

    async def comment(self, key: str, text: str) -> None:
        """Add a plain-text comment; the sink renders it in its own markup."""
        raise NotImplementedError

    async def transition(self, key: str, to: str, resolution: str | None = None) -> None:
        """Move a ticket to the status or through the transition named `to`."""
        raise NotImplementedError

    async def status(self, key: str) -> TicketStatus:
        """Read a ticket's status."""
        raise NotImplementedError

    async def check(self, targets: list[TicketDraft]) -> list[str]:
        """Return every problem creating these drafts would meet (unknown project, field, option…)."""
        return []

    async def aclose(self) -> None:
        """Release connections."""


@dataclass
class TicketComment:
    """A comment on a ticket, as the ticket system shows it."""

    at: datetime
    author: str | None
    text: str


@dataclass
class TicketHistory:
    """When a ticket was created, its status changes and its comments, oldest first."""

    created: datetime | None
    transitions: list[tuple[datetime, str | None, str]] = field(default_factory=list)  # (when, who, "To Do → In Progress")
    comments: list[TicketComment] = field(default_factory=list)


class TicketTimeline:
    """Capability of a sink: read a ticket's history and link it to other pages (what a post-incident review needs)."""

    async def history(self, key: str) -> TicketHistory:
        """Return the ticket's creation time, status changes and comments."""
        raise NotImplementedError

    async def add_remote_link(self, key: str, url: str, title: str) -> None:
        """Link the ticket to a URL; linking the same URL twice keeps one link."""
        raise NotImplementedError


class DigestPolicy(StrictModel):
    """When many cases open at once on one channel, tell them in one message."""

    threshold: int = Field(default=10, ge=1, description="More new cases than this within `window` become one digest (Critical ones still go one by one)", examples=[10])
    window: float = Field(default=60.0, gt=0, description="Seconds over which new cases are counted; one digest per window while the storm lasts", examples=[60])
    listed: int = Field(default=10, ge=1, le=50, description="How many cases a digest names before '…and N more'", examples=[10])


class NotifierConfig(SinkConfig):
    """Fields every notifier has."""

    health: bool = Field(default=False, description="Also tell this notifier about the hub's own health (dead letters, failing pollers, auth failures, rate limits)")


@dataclass
class NotifyReceipt:
    """What a notifier keeps from a message for the case's later events (Slack's channel and ts, PagerDuty's state)."""

    thread: dict[str, str] = field(default_factory=dict)


class Notifier:
    """Somewhere people are told about cases: Slack, Teams, PagerDuty."""

    type: ClassVar[str]
    Config: ClassVar[type[NotifierConfig]] = NotifierConfig
    config: NotifierConfig

    def __init__(self, name: str, config: NotifierConfig):
        self.name = name
        self.config = config

    async def notify(self, event: CaseEvent) -> NotifyReceipt | None:
        """Tell about one case event; return what to keep for the case's later events (None: keep what was kept)."""
        raise NotImplementedError

    async def notify_health(self, event: HealthEvent) -> None:
        """Tell about the hub's own health (only called when the notifier's config says `health: true`)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""


class FindsSent:
    """Capability: tell whether a message went out, so a send cut off by a crash is looked up, not repeated."""

    async def find_sent(self, event: CaseEvent | CaseDigest, since: float) -> NotifyReceipt | None:
        """Return the receipt of the message carrying `event.event_id` sent after `since` (epoch seconds), or None."""
        raise NotImplementedError


class Idempotent:
    """Capability: sending the same event twice has the effect of sending it once (PagerDuty's dedup_key)."""


class Digests:
    """Capability: tell a storm of new cases in one message."""

    digest_policy: DigestPolicy

    async def notify_digest(self, digest: CaseDigest) -> NotifyReceipt | None:
        """Tell about many new cases at once."""
        raise NotImplementedError


@dataclass
class ReviewPage:
    """A post-incident review page."""

    id: str
    url: str
    title: str


class ReviewWriter:
    """Somewhere post-incident reviews are written: Confluence."""

    type: ClassVar[str]
    Config: ClassVar[type[SinkConfig]] = SinkConfig

    def __init__(self, name: str, config: SinkConfig):
        self.name = name
        self.config = config

    async def find_review(self, review: PostIncidentReview) -> ReviewPage | None:
        """Return the review page already written for this case, if any."""
        raise NotImplementedError

    async def write_review(self, review: PostIncidentReview) -> ReviewPage:
        """Write the review page (its parent created if missing) and mark it as this case's."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""


class EnrichmentCache:
    """What the core gives enrichers: a shared TTL cache and a daily call budget (see pipeline/enrich.py)."""

    async def get(self, key: str) -> Any | None:
        """Return a cached value, or None when absent or expired."""
        raise NotImplementedError

    async def put(self, key: str, value: Any, ttl: float) -> None:
        """Cache a value for `ttl` seconds."""
        raise NotImplementedError

    async def spend(self, budget: str, limit: int) -> bool:
        """Take one call from today's budget; False once `limit` calls were spent today (UTC)."""
        raise NotImplementedError


class Enricher:
    """Adds facts to alerts before routing (reputation, extracted entities); never blocks an alert."""

    type: ClassVar[str]
    Config: ClassVar[type[SinkConfig]] = SinkConfig

    def __init__(self, name: str, config: SinkConfig):
        self.name = name
        self.config = config

    async def enrich(self, alerts: list[Alert], cache: EnrichmentCache) -> None:
        """Add to each alert's `enrichment[self.name]`; swallow vendor failures (count them), never raise."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections."""
