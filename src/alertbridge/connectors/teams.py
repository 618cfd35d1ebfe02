"""Microsoft Teams: a Workflows webhook with an Adaptive Card, or a legacy Office 365 connector with a MessageCard.

    adaptive_card   Workflows "When a Teams webhook request is received" → "Post card in a chat or channel":
                    POST {"type": "message", "attachments": [{contentType: …adaptive, content: card}]}, 202
    message_card    the retired-but-running Office 365 incoming webhook: POST a MessageCard, 200 with body "1"

A legacy connector reports some failures, throttling among them, as HTTP 200
with the error in the body instead of "1"; those are read as failures. Teams
throttles a webhook above 4 requests a second
(https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using#rate-limiting-for-connectors):
posts are paced to that and a 429's Retry-After is waited out.

Escaping: Adaptive Card TextBlocks and facts take a Markdown subset and the
``{{DATE(…)}}``/``{{TIME(…)}}`` functions, MessageCard text fields take
Markdown and some HTML; alert text is escaped so it shows as written
(https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/cards-format).
Webhooks cannot be read back: after a crash mid-send the core cannot tell
whether the card arrived (see docs/connectors/teams.md).
"""

from __future__ import annotations

import html
import re
from typing import Any, Literal

import httpx2
from pydantic import Field, SecretStr

from ..errors import Permanent, RateLimited
from ..model import CaseDigest, CaseEvent, HealthEvent, Severity
from . import _notice as notice
from ._http import Clock, HttpClient, Vendor
from ._outbound import Pacer, post_webhook
from .notify_roles import DigestPolicy, Digests, HealthNotices
from .operator_roles import ReportPoster
from .roles import Notifier, NotifierConfig, NotifyReceipt

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
THEME = {Severity.critical: "C4314B", Severity.high: "E8590C", Severity.medium: "F2C94C", Severity.low: "2F80ED", Severity.info: "9B9B9B"}
LEGACY_OK = "1"


class _Teams(Vendor):
    def message(self, body: Any) -> str | None:
        """Read Workflows' {"error": {"code", "message"}}."""
        error = body.get("error") if isinstance(body, dict) else None
        return str(error.get("message") or error.get("code")) if isinstance(error, dict) else super().message(body)


TEAMS = _Teams("teams")
PACE = 0.3  # seconds between posts to one webhook: Teams takes 4 a second, with a margin for the clocks' skew


class TeamsConfig(NotifierConfig):
    """A Teams channel's webhook."""

    webhook_url: SecretStr = Field(description="Workflows webhook URL (or a legacy connector's); it is a secret, it carries a signature",
                                   examples=["${TEAMS_WEBHOOK_URL}"])
    format: Literal["adaptive_card", "message_card"] = Field(
        default="adaptive_card", description="adaptive_card for Workflows; message_card for a legacy Office 365 connector", examples=["adaptive_card"])
    timeout: float = Field(default=10.0, gt=0, description="Seconds one call may take", examples=[10])
    digest: DigestPolicy = DigestPolicy()


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def card_text(text: str) -> str:
    """Escape text for an Adaptive Card TextBlock or fact: Markdown punctuation and the {{DATE()}} functions stay literal."""
    return _MARKDOWN.sub(r"\\\1", text).replace("\\{\\{", "\\{\u200b\\{")


def connector_text(text: str) -> str:
    """Escape text for a MessageCard text field: HTML and Markdown both stay literal."""
    return _MARKDOWN.sub(r"\\\1", html.escape(text, quote=False))


def _block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": card_text(text), "wrap": True, **style}


def adaptive_card(title: str, headline: str, text: str, facts: list[tuple[str, str]], links: list[tuple[str, str]],
                  footer: str, urgent: bool) -> dict[str, Any]:
    """Build a Workflows message holding one Adaptive Card."""
    body = [_block(title, weight="Bolder", size="Medium", style="heading", color="Attention" if urgent else "Default"),
            _block(headline, isSubtle=True, spacing="None")]
    if text:
        body.append(_block(text))
    if facts:
        body.append({"type": "FactSet", "facts": [{"title": name, "value": card_text(value)} for name, value in facts]})
    body.append(_block(footer, isSubtle=True, size="Small"))
    card = {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "version": "1.5",
            "msteams": {"width": "Full"}, "body": body,
            "actions": [{"type": "Action.OpenUrl", "title": label, "url": url} for label, url in links]}
    return {"type": "message", "attachments": [{"contentType": CARD_TYPE, "contentUrl": None, "content": card}]}


def message_card(title: str, headline: str, text: str, facts: list[tuple[str, str]], links: list[tuple[str, str]],
                 footer: str, color: str) -> dict[str, Any]:
    """Build a legacy connector MessageCard (title and summary are never formatted by Teams; text fields are)."""
    section: dict[str, Any] = {"activityTitle": connector_text(headline), "markdown": True,
                               "facts": [{"name": name, "value": connector_text(value)} for name, value in facts]}
    if text:
        section["text"] = connector_text(text)
    return {"@type": "MessageCard", "@context": "https://schema.org/extensions", "summary": title[:200], "title": title,
            "themeColor": color, "text": connector_text(footer), "sections": [section],
            "potentialAction": [{"@type": "OpenUri", "name": label, "targets": [{"os": "default", "uri": url}]} for label, url in links]}


class TeamsNotifier(Notifier, Digests, HealthNotices, ReportPoster):
    """Posts case events to one Teams channel as cards."""

    type = "teams"
    Config = TeamsConfig
    config: TeamsConfig

    def __init__(self, name: str, config: TeamsConfig, *, transport: httpx2.AsyncBaseTransport | None = None, clock: Clock | None = None):
        super().__init__(name, config)
        self.digest_policy = config.digest
        self.client = HttpClient(name, TEAMS, timeout=config.timeout, transport=transport)
        self.pacer = Pacer("teams", PACE, clock)

    async def notify(self, event: CaseEvent) -> NotifyReceipt | None:
        """Post one card about the event."""
        footer = f"case {event.case_id} · {event.route} · {event.reference}"
        await self._card(notice.title_line(event), notice.headline(event), event.text, notice.facts(event), notice.links(event),
                         footer, event.severity)
        return None

    async def notify_digest(self, digest: CaseDigest) -> NotifyReceipt | None:
        """Post one card listing a storm of new cases."""
        lines = [f"{notice.SEVERITY_MARK[case.severity]} {case.title} ({case.ticket_key or 'no ticket yet'})" for case in digest.first]
        if more := notice.digest_more(digest):
            lines.append(more)
        top = max(digest.by_severity, key=lambda s: s.rank if digest.by_severity[s] else -1)
        links = [("All cases", digest.list_url)] if digest.list_url else []
        await self._card(notice.digest_headline(digest), "Storm digest: one card instead of one per case", "\n\n".join(lines),
                         [], links, "alertbridge", top)
        return None

    async def notify_health(self, event: HealthEvent) -> None:
        """Post one card about the hub's own health."""
        mark = "🚨" if event.firing else notice.DONE_MARK
        facts = [(str(name), str(value)) for name, value in event.details.items()]
        await self._card(f"{mark} alertbridge: {event.summary}", "Hub health", "", facts, [], event.condition,
                         Severity.high if event.firing else Severity.info)

    async def post_report(self, title: str, text: str, link: str | None) -> NotifyReceipt | None:
        """Post a report's summary as one card, with an action opening the whole report."""
        lines = "\n\n".join(text.splitlines())  # a card's text keeps a line break only as an empty line between paragraphs
        await self._card(title, "Scheduled report", lines, [], [("Open the report", link)] if link else [], "alertbridge", Severity.info)
        return None

    async def _card(self, title: str, headline: str, text: str, facts: list[tuple[str, str]], links: list[tuple[str, str]],
                    footer: str, severity: Severity) -> None:
        if self.config.format == "adaptive_card":
            body = adaptive_card(title, headline, text, facts, links, footer, severity.rank >= Severity.high.rank)
        else:
            body = message_card(title, headline, text, facts, links, footer, THEME[severity])
        response = await post_webhook(self.client, self.pacer, self.config.webhook_url.get_secret_value(), body)
        if self.config.format == "message_card" and response.text.strip() != LEGACY_OK:
            # A legacy connector answers 200 with the failure in the body, throttling included.
            reason = response.text.strip()[:300]
            if "429" in reason:
                self.pacer.back_off(self.config.webhook_url.get_secret_value(), None)
                raise RateLimited(f"teams: throttled: {reason}", cause="teams-connector")
            raise Permanent(f"teams: the connector refused the card: {reason}", status=response.status_code)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
