"""What a sink or a notifier may declare for the operator's tools (roles.py holds the roles themselves).

    TicketPreview ... a sink shows the exact create request a draft would become (`alertbridge plan`)
    ReportPoster .... a notifier posts a scheduled report's summary (`reports:` in the config)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from .roles import NotifyReceipt, TicketDraft


@dataclass
class PreviewedTicket:
    """The create request a draft would become, as the sink would send it, without sending it."""

    body: dict[str, Any]
    field_ids: dict[str, str]  # the route's field name -> the sink's field id
    problems: list[str]


class TicketPreview(ABC):
    """A sink that can show the exact create request for a draft, reading its metadata only."""

    @abstractmethod
    async def preview(self, draft: TicketDraft) -> PreviewedTicket:
        """Return the create request for `draft` and every problem it would meet; create nothing."""


class ReportPoster(ABC):
    """A notifier that can post a scheduled report's summary: a chat message with a title, plain lines and a link."""

    @abstractmethod
    async def post_report(self, title: str, text: str, link: str | None) -> NotifyReceipt | None:
        """Post one report's summary (plain text, one figure a line), with a link to the whole report when there is one."""
