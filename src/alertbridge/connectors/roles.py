"""The roles a connector plays, and the optional abilities it declares.

Roles are classes a connector inherits from (a webhook config's `auth` is in webhook_auth.py); the core asks ``isinstance``,
never ``hasattr``. Each role holds only what it needs:

    Parser ............ pure: payload -> alerts; what `alertbridge parse` runs (no credentials)
        + RawPayload (its files are not JSON: an .eml)
    ├── WebhookSource . a parser behind /hooks/<name>, with a required `auth`
    └── Poller ........ a parser the hub polls: a cursor, required credentials, no /hooks endpoint
    TicketSink ........ find by case reference, create, update, comment, transition, status
        + BulkCreate (with the sink's own `bulk_limit`), TransitionCheck, Attachments
        + TicketTimeline (a ticket's history, for post-incident reviews); TicketPreview (operator_roles.py)
        + ChangeIds, Resolutions (writeback_roles.py: what sync needs of a sink)
    SourceUpdater, SiemFeedback (writeback_roles.py): the ticket's fate written back to sources and SIEMs
    Notifier .......... told about case events (opened, updated, severity raised, reopened, resolved)
        + FindsSent, Idempotent, Digests, HealthNotices (notify_roles.py); ReportPoster (operator_roles.py)
    ReviewWriter ...... writes post-incident reviews (Confluence; notify_roles.py)
    Enricher .......... adds facts to alerts before routing; never holds one back

A webhook source and a poller each name their parse-only class in ``parser``:
`alertbridge parse --type defender FILE` builds that one, from a config with
no credentials in it. Connectors raise the typed errors of ``alertbridge.errors``;
the core decides whether to retry or dead-letter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field

from ..config_values import Rate
from ..errors import ConnectorError
from ..model import Alert, CaseEvent, Severity, TicketEvent, TicketHistory
from .webhook_auth import StrictModel, WebhookAuth


# --- sources ---------------------------------------------------------------------------------


class ParserConfig(StrictModel):
    """What every parser reads: its type and the tenant its alerts belong to."""

    type: str = Field(description="Connector type", examples=["splunk"])
    tenant: str | None = Field(default=None, description="Tenant or customer this source belongs to", examples=["contoso"])

    def warnings(self, name: str) -> list[str]:
        """Return what `alertbridge check` should warn about in this source's config, each as 'field: why'."""
        return []


class WebhookConfig(ParserConfig):
    """A webhook source's config: the parser's, plus how requests to /hooks/<name> authenticate (required)."""

    auth: WebhookAuth = Field(
        description="How webhook requests to /hooks/<name> authenticate; an open hook says `{mode: none}`",
        examples=[{"mode": "bearer", "token": "${HOOK_TOKEN}"}],
    )

    def warnings(self, name: str) -> list[str]:
        """Warn about an open hook."""
        if self.auth.mode != "none":
            return []
        return [f"auth.mode: none — anyone who can reach /hooks/{name} can file alerts; use it only behind a proxy that authenticates"]


class PollerConfig(ParserConfig):
    """A poller's config: the parser's, plus its pace. Each poller adds its credentials as required fields."""

    interval: float = Field(default=60.0, gt=0, description="Seconds between polls once caught up", examples=[60])
    backfill: float = Field(default=86400.0, ge=0, description="On the first run, how many seconds back to start", examples=[86400])
    timeout: float = Field(default=30.0, gt=0, description="Seconds one API call may take, all included", examples=[30])


class Parser(ABC):
    """Turns a vendor payload into alerts (or ticket events), purely: no I/O, no credentials."""

    type: ClassVar[str]
    Config: ClassVar[type[ParserConfig]] = ParserConfig

    def __init__(self, name: str, config: ParserConfig):
        self.name = name
        self.config = config

    @abstractmethod
    def parse(self, payload: Any) -> Sequence[Alert | TicketEvent]:
        """Turn one decoded payload into alerts; raise PayloadError if it is not this source's."""


class WebhookSource(Parser):
    """A source that pushes to /hooks/<name>: verifies each request, then parses its body."""

    parser: ClassVar[type[Parser]]  # the parse-only class, built by `alertbridge parse`
    Config: ClassVar[type[ParserConfig]] = WebhookConfig
    config: WebhookConfig

    def verify(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> None:
        """Raise SignatureError unless the request is authentic (headers have lower-case names)."""
        self.config.auth.check(headers, query, body)

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        """Return the sender's unique delivery id, if it sends one, so replays are dropped."""
        return None


@dataclass
class PollResult:
    """One page of vendor items and the cursor to store once they are committed with it."""

    items: list[dict[str, Any]]
    cursor: str | None
    more: bool = False  # another page is ready now: poll again without waiting `interval`


class Poller(Parser):
    """A source the hub polls: `poll` fetches a page after the cursor; each item becomes one inbox event. No /hooks endpoint."""

    parser: ClassVar[type[Parser]]  # the parse-only class, built by `alertbridge parse`
    Config: ClassVar[type[ParserConfig]] = PollerConfig
    config: PollerConfig

    @abstractmethod
    async def poll(self, cursor: str | None) -> PollResult:
        """Fetch the next page of items after `cursor` (None on the first run: start `backfill` ago)."""

    @abstractmethod
    def item_id(self, item: dict[str, Any]) -> str:
        """Return the vendor's id of one item: the same alert polled twice is stored once."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""


class RawPayload(ABC):
    """A parser whose payloads are files that are not JSON (a mailbox's .eml): `alertbridge parse` wraps them first."""

    @abstractmethod
    def payload_from_file(self, body: bytes) -> Any:
        """Wrap a file's bytes as the payload `parse` takes."""


def parser_class(source: type[Parser]) -> type[Parser]:
    """Return the parse-only class of a registered source type: what `alertbridge parse` builds."""
    return source.parser if issubclass(source, WebhookSource | Poller) else source


class SampleItem(ABC):
    """A parser that gives one typical item of its own, so `alertbridge check --live` can render routes that read `alert.raw`."""

    @classmethod
    @abstractmethod
    def sample_item(cls) -> dict[str, Any]:
        """Return one item in the shape the source stores it."""


# --- ticket sinks ----------------------------------------------------------------------------


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
    """A ticket to create: everything already rendered, field values by field *name*.

    `reference` is the case's unique reference; the sink stores it where it can
    search for it (a Jira label, a ServiceNow correlation_id, an XSOAR label).
    """

    project: str
    issue_type: str
    summary: str
    description: str
    severity: Severity
    reference: str
    labels: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


class SinkConfig(StrictModel):
    """Fields every sink has."""

    type: str = Field(description="Connector type", examples=["jira"])
    rate_limit: Rate | None = Field(
        default=None, gt=0, description="Most calls per second the hub sends this sink, all its processes together (on PostgreSQL, "
        "shared through the database); new Critical/High tickets go first, repeat comments last. Unset: no budget",
        examples=["10/s", "600/min"],
    )
    # Every sink's calls have one deadline (connectors/_http/client.py); declared here so the config check can read it.
    timeout: float = Field(default=10.0, gt=0, description="Seconds one call may take, all included; keep it at most a "
                           "quarter of `lease`, so a hung call ends long before its job could be taken over", examples=[10])


class TicketTarget(StrictModel):
    """Where in the sink a route's tickets go; a sink's own model says what it needs (Jira: a project and an issue type)."""

    project: str = Field(default="", description="Project, queue or board in the sink, if it has them", examples=["SOC"])
    issue_type: str = Field(default="", description="Kind of ticket, if the sink has kinds", examples=["Incident"])


class TicketSink(ABC):
    """A ticket system: find by case reference, create, update, comment, transition and read status."""

    type: ClassVar[str]
    Config: ClassVar[type[SinkConfig]] = SinkConfig
    Target: ClassVar[type[TicketTarget]] = TicketTarget  # validates each route's `project` and `issue_type` for this sink

    def __init__(self, name: str, config: SinkConfig):
        self.name = name
        self.config = config

    @abstractmethod
    async def find_by_reference(self, reference: str) -> list[TicketRef]:
        """Return every ticket carrying the case reference, oldest first (more than one is a duplicate)."""

    @abstractmethod
    async def create(self, draft: TicketDraft) -> TicketRef:
        """Create one ticket carrying the draft's reference."""

    @abstractmethod
    async def update(self, key: str, fields: dict[str, str]) -> None:
        """Set fields (by name) on a ticket."""

    @abstractmethod
    async def comment(self, key: str, text: str) -> None:
        """Add a plain-text comment; the sink renders it in its own markup."""

    @abstractmethod
    async def transition(self, key: str, to: str, resolution: str | None = None) -> None:
        """Move a ticket to the status or through the transition named `to`."""

    @abstractmethod
    async def status(self, key: str) -> TicketStatus:
        """Read a ticket's status."""

    async def check(self, targets: list[TicketDraft]) -> list[str]:
        """Return every problem creating these drafts would meet (unknown project, field, option…); none by default."""
        return []

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""


class BulkCreate(ABC):
    """A sink that creates many tickets in one call, up to its own `bulk_limit`."""

    bulk_limit: ClassVar[int]

    @abstractmethod
    async def create_many(self, drafts: list[TicketDraft]) -> list[TicketRef | ConnectorError]:
        """Create tickets; return, per draft and in order, its ticket or the error that stopped it."""


class TransitionCheck(ABC):
    """A sink that can tell, before any case needs it, whether a transition exists."""

    @abstractmethod
    async def check_transition(self, project: str, issue_type: str, name: str) -> list[str]:
        """Return a problem if no transition or status called `name` exists; raise Unchecked if it cannot tell."""


class ReferenceScan(ABC):
    """A sink that lists the case references on a target's recent tickets: `check --live` finds other hubs by them."""

    @abstractmethod
    async def recent_references(self, project: str) -> list[str]:
        """Return the `alertbridge-…` references on the project's most recent tickets, whichever hub filed them."""


class Attachments(ABC):
    """A sink that takes files and links on a ticket."""

    @abstractmethod
    async def attachment_names(self, key: str) -> list[str]:
        """Return the file names already attached to the ticket (so a retried upload is not made twice)."""

    @abstractmethod
    async def attach(self, key: str, filename: str, content: bytes) -> None:
        """Attach a file to the ticket."""

    @abstractmethod
    async def add_remote_link(self, key: str, url: str, title: str) -> None:
        """Link the ticket to a URL (the alert in its console); the same URL twice is one link."""


class TicketTimeline(ABC):
    """A sink that can tell a ticket's history (what a post-incident review is written from)."""

    @abstractmethod
    async def history(self, key: str) -> TicketHistory:
        """Return the ticket's creation time, status changes and comments."""


# --- notifiers and enrichers -----------------------------------------------------------------


class NotifierConfig(StrictModel):
    """Fields every notifier has."""

    type: str = Field(description="Connector type", examples=["slack"])
    health: bool = Field(default=False, description="Also tell this notifier about the hub's own health (dead letters, failing pollers, "
                         "authentication failures, rate limits)")
    resend_after_crash: bool = Field(default=False, description="For notifiers that cannot read back what they sent (webhooks): after a "
                                     "crash mid-send, send again (a possible duplicate) rather than skip (a possible loss)")


@dataclass
class NotifyReceipt:
    """What a notifier keeps of a message, to follow it up (a Slack thread ts, a PagerDuty dedup key), and any state besides."""

    id: str
    url: str | None = None
    state: dict[str, str] = field(default_factory=dict)  # e.g. the Slack channel, whether PagerDuty's alert is open

    def kept(self) -> dict[str, str]:
        """Return what the core stores and hands back in later events' `CaseEvent.thread`."""
        return {"id": self.id, **({"url": self.url} if self.url else {}), **self.state}


class Notifier(ABC):
    """Somewhere people are told about cases: Slack, Teams, PagerDuty."""

    type: ClassVar[str]
    Config: ClassVar[type[NotifierConfig]] = NotifierConfig

    def __init__(self, name: str, config: NotifierConfig):
        self.name = name
        self.config = config

    @abstractmethod
    async def notify(self, event: CaseEvent) -> NotifyReceipt | None:
        """Tell people about one case event; return what identifies the message, if anything follows it up."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""


class EnricherConfig(StrictModel):
    """Fields every enricher has."""

    type: str = Field(description="Connector type", examples=["abuseipdb"])


class EnrichmentCache(ABC):
    """What the core gives enrichers: a shared TTL cache and a daily call budget (see pipeline/enrich.py)."""

    @abstractmethod
    async def get(self, key: str) -> Any | None:
        """Return a cached value, or None when absent or expired."""

    @abstractmethod
    async def put(self, key: str, value: Any, ttl: float) -> None:
        """Cache a value for `ttl` seconds."""

    @abstractmethod
    async def spend(self, budget: str, limit: int) -> bool:
        """Take one call from today's budget; False once `limit` calls were spent today (UTC)."""


class Enricher(ABC):
    """Adds facts to alerts before routing (reputation, extracted entities); never blocks an alert."""

    type: ClassVar[str]
    Config: ClassVar[type[EnricherConfig]] = EnricherConfig

    def __init__(self, name: str, config: EnricherConfig):
        self.name = name
        self.config = config

    @abstractmethod
    async def enrich(self, alerts: list[Alert], cache: EnrichmentCache) -> None:
        """Add to each alert's `enrichment[self.name]`; swallow vendor failures (count them), never raise."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""
