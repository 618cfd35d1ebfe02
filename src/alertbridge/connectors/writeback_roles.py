"""Write-back roles: carrying a ticket's fate back to the tool that raised the alert, and telling the SIEM (roles.py holds the others).

    SourceUpdater ... sets an alert's status (and classification, closure code…) in the tool that raised it:
                      AWS Security IR, Defender (Graph alerts_v2), CrowdStrike Alerts, Cortex XDR
        + CommentsBack (ticket comments become comments on the source's record: AWS Security IR)
        + SteppedWrites (reaches some states through others, each a write the source's poll may show: AWS Security IR)
    SiemFeedback .... tells a SIEM what became of its alert on ticket create, transition and close (Splunk HEC, a signed web request)

and what the sync asks of a ticket sink, where it can tell:

    ChangeIds ....... the id of a ticket's latest status change (Jira's changelog id): its webhook echo is known by it
    Resolutions ..... the sink's resolutions, so `check --live` reports those a route's lifecycle leaves unmapped
    CommentIds ...... adds a comment and returns its id: a source's comment mirrored in is known when the webhook shows it

Every write-back names the sources it writes back for (`sources`); a route lists
the write-backs it uses (`writeback`) and its lifecycle (`sync`, lifecycle.py)
maps the ticket's states to the vendor-neutral ``SourceState`` each updater
turns into its own words (`states`). Updaters raise the typed errors of
``alertbridge.errors`` (a 404 on a deleted alert is Permanent); the core
retries or dead-letters the job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from pydantic import Field

from ..model import SourceState
from .roles import StrictModel


class WritebackConfig(StrictModel):
    """Fields every write-back has."""

    type: str = Field(description="Connector type", examples=["defender"])
    sources: list[str] = Field(default=[], description="Names of the sources whose alerts this writes back for; a SIEM "
                               "feedback with none hears of every case of the routes naming it", examples=[["defender-prod"]])
    timeout: float = Field(default=30.0, gt=0, description="Seconds one API call may take, all included", examples=[30])


@dataclass(frozen=True)
class SourceWrite:
    """What an updater writes to one alert: its new state, and what the ticket said."""

    state: SourceState
    ticket_key: str
    ticket_status: str | None = None
    resolution: str | None = None
    actor: str | None = None  # who changed the ticket (Jira account id or name)
    note: str = ""  # one line for the source's own comment or resolve reason ("Closed in SOC-42 as False Positive")
    token: str = ""  # unique per write: an idempotency key where the vendor takes one (Security IR's clientToken)
    reopened: bool = False  # the hub last knew the alert in a done state: the verdict it was closed with no longer holds


@dataclass(frozen=True)
class WriteStep:
    """A write an updater made on the way to the state asked for, as the source's poll reads the record after it."""

    state: SourceState
    revision: str | None = None


@dataclass(frozen=True)
class WriteReceipt:
    """What the vendor said back: the stamp of the version the write made, when it tells (Graph's lastUpdateDateTime),
    the ids of comments the write added (Security IR's closing comment), so the next poll knows them as the hub's, and
    the state the record stays in when the vendor cannot take the one written (a closed Security IR case cannot reopen):
    the hub records that as its write, so the poll showing it is the echo and does not close the reopened ticket again."""

    revision: str | None = None
    comments: tuple[str, ...] = ()
    kept: SourceState | None = None
    steps: tuple[WriteStep, ...] = ()  # the writes made before the last one, in order (a SteppedWrites updater's)


class Writeback(ABC):
    """Anything that writes a ticket's fate outside the ticket system."""

    type: ClassVar[str]
    Config: ClassVar[type[WritebackConfig]] = WritebackConfig

    def __init__(self, name: str, config: WritebackConfig):
        self.name = name
        self.config = config

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""


class SourceUpdater(Writeback):
    """Writes an alert's new state to the tool that raised it, by the alert's vendor id."""

    source_types: ClassVar[tuple[str, ...]]  # the source connector types whose alerts it updates (its `sources` must be of one)

    @abstractmethod
    def states(self) -> dict[SourceState, str]:
        """Return, for each state it can write, what it writes (for `check` and the docs): e.g. 'resolved/falsePositive'."""

    @abstractmethod
    async def write(self, vendor_id: str, change: SourceWrite) -> WriteReceipt:
        """Set the alert's state; raise Permanent (404) if the alert is gone, AuthFailed, RateLimited…"""


class CommentsBack(ABC):
    """An updater whose source keeps comments: ticket comments become comments there."""

    @abstractmethod
    async def add_comment(self, vendor_id: str, text: str, token: str) -> str:
        """Add a comment to the source's record; return the vendor's comment id (its echo is recognised by it)."""


class SteppedWrites(ABC):
    """An updater that may reach a state only through others (Security IR's status transitions): one write per step."""

    @abstractmethod
    def passes(self, state: SourceState) -> tuple[SourceState, ...]:
        """Return the states a write of `state` may pass through first, as the source's poll reads them (recorded before it)."""


FeedbackEvent = Literal["created", "transitioned", "closed"]


@dataclass(frozen=True)
class TicketFeedback:
    """What a SIEM is told about one ticket change."""

    event: FeedbackEvent
    ticket_key: str
    ticket_url: str | None
    status: str | None
    status_category: str | None
    resolution: str | None
    state: SourceState | None  # the lifecycle's reading of the ticket's state, None while it is new
    case_reference: str | None
    route: str
    alert_ids: list[dict[str, str]] = field(default_factory=list)  # [{"source", "vendor_id", "alert_id"}], the first alert first
    at: float = 0.0


class SiemFeedback(Writeback):
    """Tells a SIEM what became of its alert, so it can close its notable and learn from the verdict."""

    @abstractmethod
    async def send(self, feedback: TicketFeedback) -> None:
        """Send one ticket change."""


class ChangeIds(ABC):
    """A sink that tells the id of a ticket's latest status change (Jira's changelog id): its webhook echo is recognised by it."""

    @abstractmethod
    async def last_change(self, key: str) -> tuple[str | None, str | None]:
        """Return the id of the ticket's latest status change and the status it led to (None, None when it cannot tell)."""


class Resolutions(ABC):
    """A sink that lists the resolutions a ticket can be closed with."""

    @abstractmethod
    async def resolutions(self) -> list[str]:
        """Return the resolution names."""


class CommentIds(ABC):
    """A sink that returns the id of a comment it adds (Jira's comment id), which its comment webhook carries."""

    @abstractmethod
    async def add_comment(self, key: str, text: str) -> str:
        """Add a plain-text comment; return its id."""
