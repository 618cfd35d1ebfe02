"""What a connector is: a source of alerts, a ticket sink, or a notifier.

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
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ..errors import SignatureError
from ..model import Alert, Severity, TicketEvent


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
class PreviewedTicket:
    """The create request a draft would become, as the sink would send it, without sending it."""

    body: dict[str, Any]
    field_ids: dict[str, str]  # the route's field name -> the sink's field id
    problems: list[str]


class TicketPreview:
    """Capability: show the exact create request for a draft (reading the sink's metadata only; `alertbridge plan`)."""

    async def preview(self, draft: TicketDraft) -> PreviewedTicket:
        """Return the create request for `draft` and every problem it would meet; create nothing."""
        raise NotImplementedError


class Notifier:
    """Somewhere people are told: Slack, Teams, PagerDuty."""

    type: ClassVar[str]
    Config: ClassVar[type[SinkConfig]] = SinkConfig

    def __init__(self, name: str, config: SinkConfig):
        self.name = name
        self.config = config

    async def notify(self, title: str, text: str, severity: Severity, link: str | None) -> None:
        """Send one message."""
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
