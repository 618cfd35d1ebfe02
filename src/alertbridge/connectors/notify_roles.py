"""What notifiers may declare beyond the Notifier role, and the review writer role (roles.py holds the others).

    FindsSent ....... reads back what it sent, so a send cut off by a crash is found, not repeated (Slack's Web API)
    Idempotent ...... sending an event twice is sending it once (PagerDuty's dedup_key)
    Digests ......... tells a storm of new cases in one message (Slack, Teams)
    HealthNotices ... tells about the hub's own health
    ReviewWriter .... writes post-incident reviews (Confluence)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field

from ..model import CaseDigest, CaseEvent, HealthEvent, PostIncidentReview
from .roles import NotifyReceipt, StrictModel


class DigestPolicy(StrictModel):
    """When many cases open at once on one channel, tell them in one message."""

    threshold: int = Field(default=10, ge=1, description="More new cases than this within `window` make a digest (Critical ones still go one by one)",
                           examples=[10])
    window: float = Field(default=60.0, gt=0, description="Seconds over which new cases are counted; one digest per window while the storm lasts",
                          examples=[60])
    listed: int = Field(default=10, ge=1, le=50, description="How many cases a digest names before '…and N more'", examples=[10])


class FindsSent(ABC):
    """A notifier that can read back what it sent, so a send cut off by a crash is looked up, not repeated."""

    @abstractmethod
    async def find_sent(self, event: CaseEvent | CaseDigest, since: float) -> NotifyReceipt | None:
        """Return the receipt of the message carrying `event.event_id` sent after `since` (epoch seconds), or None."""


class Idempotent(ABC):  # noqa: B024 - a declaration, no methods
    """A notifier for which sending the same event twice has the effect of sending it once (PagerDuty's dedup_key)."""


class Digests(ABC):
    """A notifier that tells a storm of new cases in one message, by its `digest_policy`."""

    digest_policy: DigestPolicy

    @abstractmethod
    async def notify_digest(self, digest: CaseDigest) -> NotifyReceipt | None:
        """Tell about many new cases at once."""


class HealthNotices(ABC):
    """A notifier that can tell about the hub's own health (used when its config says `health: true`)."""

    @abstractmethod
    async def notify_health(self, event: HealthEvent) -> None:
        """Tell that a health condition started or cleared."""


# --- review writers ---------------------------------------------------------------------------


class ReviewConfig(StrictModel):
    """Fields every review writer has."""

    type: str = Field(description="Connector type", examples=["confluence"])


@dataclass
class ReviewPage:
    """A post-incident review page."""

    id: str
    url: str
    title: str


class ReviewWriter(ABC):
    """Somewhere post-incident reviews are written: Confluence."""

    type: ClassVar[str]
    Config: ClassVar[type[ReviewConfig]] = ReviewConfig

    def __init__(self, name: str, config: ReviewConfig):
        self.name = name
        self.config = config

    @abstractmethod
    async def find_review(self, review: PostIncidentReview) -> ReviewPage | None:
        """Return the review page already written for this case, if any."""

    @abstractmethod
    async def write_review(self, review: PostIncidentReview) -> ReviewPage:
        """Write the review page (its parents made if missing) and mark it as this case's."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections."""
