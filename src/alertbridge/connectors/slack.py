"""Slack: an incoming webhook (Block Kit), or the Web API with a bot token and one thread per case.

    webhook_url            POST the message to the webhook; nothing to read back, no threads
    bot_token + channel    chat.postMessage opens a thread per case (its ts is kept with the case), later
                           events reply in it, a close also edits the first message (chat.update);
                           conversations.history/replies find a message whose send a crash cut off

Every message carries its event id as the first block's ``block_id``: that is
how a message already sent is recognised. Text from alerts is escaped for
mrkdwn (``&``, ``<``, ``>`` as entities, so ``<!channel>`` and ``<@U…>`` stay
text; https://api.slack.com/reference/surfaces/formatting#escaping) and the
``@here``/``@channel``/``@everyone`` words are broken with a word joiner.
Slack allows about one message a second per channel
(https://api.slack.com/methods/chat.postMessage#rate_limiting): calls are paced
per channel and a 429's Retry-After is waited out.
"""

from __future__ import annotations

import re
from typing import Any

import httpx2
from pydantic import Field, SecretStr, model_validator

from ..errors import AuthFailed, Permanent, RateLimited, Retryable
from ..model import CaseDigest, CaseEvent, CaseEventKind, HealthEvent
from . import _notice as notice
from ._http import Clock, HttpClient, Vendor
from ._outbound import Pacer, post_paced, post_webhook
from .notify_roles import DigestPolicy, Digests, FindsSent, HealthNotices
from .operator_roles import ReportPoster
from .roles import Notifier, NotifierConfig, NotifyReceipt

HEADER_LIMIT, SECTION_LIMIT, BUTTON_LIMIT = 150, 3000, 75
AUTH_ERRORS = {"not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired", "missing_scope", "no_permission"}
TRANSIENT_ERRORS = {"internal_error", "fatal_error", "request_timeout", "service_unavailable"}
PACE = 1.1  # seconds between messages to one channel: Slack's one a second, and a margin for the clocks' skew
HISTORY_PAGES = 10  # at most this many pages of 200 messages are read to find a message
SLACK = Vendor("slack")  # its error bodies say {"ok": false, "error": "..."}: the common reading


class SlackConfig(NotifierConfig):
    """A Slack channel: an incoming webhook, or a bot token and a channel id."""

    webhook_url: SecretStr | None = Field(default=None, description="Incoming webhook URL (a secret: anyone with it can post)",
                                          examples=["${SLACK_WEBHOOK_URL}"])
    bot_token: SecretStr | None = Field(default=None, description="Bot token (xoxb-…) with chat:write and channels:history",
                                        examples=["${SLACK_BOT_TOKEN}"])
    channel: str | None = Field(default=None, description="Channel id for the Web API (a route may name another)", examples=["C0123456789"])
    api_url: str = Field(default="https://slack.com/api", description="Web API base URL", examples=["https://slack.com/api"])
    critical_mention: str | None = Field(default=None, description="Slack markup put before new Critical cases (operator-owned, not escaped)",
                                         examples=["<!subteam^S0123ABCD>"])
    timeout: float = Field(default=10.0, gt=0, description="Seconds one call may take", examples=[10])
    digest: DigestPolicy = DigestPolicy()

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackConfig:
        if bool(self.webhook_url) == bool(self.bot_token):
            raise ValueError("give either `webhook_url` or `bot_token` (with `channel`)")
        if self.bot_token and not self.channel:
            raise ValueError("the Web API needs `channel` (the channel id, e.g. C0123456789)")
        return self


_MENTION_WORD = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)


def mrkdwn(text: str) -> str:
    """Escape text for Slack so that it shows as written: no mentions, no links, no special commands."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MENTION_WORD.sub("@\u2060\\1", escaped)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _url(url: str) -> str:
    # Inside <url|label> a '|' or '>' in the URL would end it early.
    return url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C").replace(" ", "%20")


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _clip(mrkdwn(text), limit), "emoji": True}


def _section(text: str) -> dict[str, Any]:
    # verbatim: Slack does not auto-link channel names or parse mentions in it.
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SECTION_LIMIT), "verbatim": True}}


def _buttons(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "actions", "elements": [
        {"type": "button", "text": _plain(label, BUTTON_LIMIT), "url": url, "action_id": f"link-{n}"} for n, (label, url) in enumerate(pairs)
    ]}


def event_blocks(event: CaseEvent, *, mention: str | None = None, compact: bool = False) -> list[dict[str, Any]]:
    """Lay a case event out as Block Kit blocks; the first carries the event id."""
    body = f"*{mrkdwn(notice.headline(event))}*"
    if event.text:
        body += "\n" + mrkdwn(event.text)
    if mention and event.kind == CaseEventKind.opened:
        body = f"{mention} {body}"
    blocks: list[dict[str, Any]] = [] if compact else [{"type": "header", "text": _plain(notice.title_line(event), HEADER_LIMIT)}]
    blocks.append(_section(body))
    if not compact:
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*{name}*\n{mrkdwn(value)}", "verbatim": True} for name, value in notice.facts(event)
        ]})
    if links := notice.links(event):
        blocks.append(_buttons(links))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn(f"case {event.case_id} · {event.route} · {event.reference}")}]})
    blocks[0]["block_id"] = event.event_id
    return blocks


def digest_blocks(digest: CaseDigest) -> list[dict[str, Any]]:
    """Lay a storm digest out as Block Kit blocks; the first carries the digest's id."""
    lines = []
    for case in digest.first:
        name = f"{notice.SEVERITY_MARK[case.severity]} {mrkdwn(case.title)}"
        ticket = f"<{_url(case.ticket_url)}|{mrkdwn(case.ticket_key or 'ticket')}>" if case.ticket_url else mrkdwn(case.ticket_key or "no ticket yet")
        lines.append(f"• {name} — {ticket}")
    if more := notice.digest_more(digest):
        lines.append(more)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(notice.digest_headline(digest), HEADER_LIMIT), "block_id": digest.event_id},
        _section("\n".join(lines)),
    ]
    if digest.list_url:
        blocks.append(_buttons([("All cases", digest.list_url)]))
    return blocks


def health_blocks(event: HealthEvent) -> list[dict[str, Any]]:
    """Lay a hub health event out as Block Kit blocks."""
    mark = "🚨" if event.firing else notice.DONE_MARK
    details = "\n".join(f"*{mrkdwn(str(k))}*: {mrkdwn(str(v))}" for k, v in event.details.items())
    return [{"type": "header", "text": _plain(f"{mark} alertbridge: {event.summary}", HEADER_LIMIT)}] + ([_section(details)] if details else [])


def report_blocks(title: str, text: str, link: str | None) -> list[dict[str, Any]]:
    """Lay a report's summary out as Block Kit blocks: its title, its lines, and a button to the whole report."""
    blocks = [{"type": "header", "text": _plain(title, HEADER_LIMIT)}, _section(mrkdwn(text))]
    return blocks + ([_buttons([("Open the report", link)])] if link else [])


class SlackNotifier(Notifier, FindsSent, Digests, HealthNotices, ReportPoster):
    """Posts case events to one Slack channel (or the channel a route names)."""

    type = "slack"
    Config = SlackConfig
    config: SlackConfig

    def __init__(self, name: str, config: SlackConfig, *, transport: httpx2.AsyncBaseTransport | None = None, clock: Clock | None = None):
        super().__init__(name, config)
        self.digest_policy = config.digest
        headers = {"Authorization": f"Bearer {config.bot_token.get_secret_value()}"} if config.bot_token else {}
        self.client = HttpClient(name, SLACK, timeout=config.timeout, base_url=config.api_url.rstrip("/"), headers=headers, transport=transport)
        self.pacer = Pacer("slack", PACE, clock)

    @property
    def threads(self) -> bool:
        """Tell whether messages go through the Web API (threads, edits, read-back) rather than a webhook."""
        return self.config.bot_token is not None

    async def notify(self, event: CaseEvent) -> NotifyReceipt | None:
        """Post the event: a webhook message, or the case's thread (opened by its first message)."""
        text = mrkdwn(f"{notice.title_line(event)} — {notice.headline(event)}")
        if not self.threads:
            await self._webhook({"text": text, "blocks": event_blocks(event, mention=self.config.critical_mention)})
            return None
        channel = event.target or self.config.channel or ""
        ts = event.thread.get("id")  # the ts of the case's first message: its thread
        if ts is None:
            posted = await self._post(channel, text, event_blocks(event, mention=self.config.critical_mention))
            return NotifyReceipt(posted["ts"], state={"channel": posted["channel"]})
        channel = event.thread.get("channel", channel)
        if event.kind.closes:
            # Edit the case's first message before replying: the reply is what a retry looks for, so the edit is done by then.
            await self._call("chat.update", channel, {"channel": channel, "ts": ts, "text": text, "blocks": event_blocks(event)})
        broadcast = event.kind in (CaseEventKind.severity_raised, CaseEventKind.reopened)
        await self._post(channel, text, event_blocks(event, compact=True), thread_ts=ts, reply_broadcast=broadcast)
        return None

    async def notify_digest(self, digest: CaseDigest) -> NotifyReceipt | None:
        """Post one message listing a storm of new cases."""
        text = mrkdwn(notice.digest_headline(digest))
        if self.threads:
            posted = await self._post(digest.target or self.config.channel or "", text, digest_blocks(digest))
            return NotifyReceipt(posted["ts"], state={"channel": posted["channel"]})
        await self._webhook({"text": text, "blocks": digest_blocks(digest)})
        return None

    async def notify_health(self, event: HealthEvent) -> None:
        """Post a hub health message."""
        text = mrkdwn(f"alertbridge: {event.summary}")
        if self.threads:
            await self._post(self.config.channel or "", text, health_blocks(event))
        else:
            await self._webhook({"text": text, "blocks": health_blocks(event)})

    async def post_report(self, title: str, text: str, link: str | None) -> NotifyReceipt | None:
        """Post a report's summary as one message in the channel."""
        if self.threads:
            posted = await self._post(self.config.channel or "", mrkdwn(title), report_blocks(title, text, link))
            return NotifyReceipt(posted["ts"], state={"channel": posted["channel"]})
        await self._webhook({"text": mrkdwn(title), "blocks": report_blocks(title, text, link)})
        return None

    async def find_sent(self, event: CaseEvent | CaseDigest, since: float) -> NotifyReceipt | None:
        """Look for the message carrying the event id: in the case's thread, or in the channel since `since`."""
        if not self.threads:
            return None
        thread = event.thread if isinstance(event, CaseEvent) else {}
        channel = thread.get("channel") or event.target or self.config.channel or ""
        params: dict[str, Any] = {"channel": channel, "limit": 200, "oldest": f"{since - 5:.6f}"}
        method = "conversations.history"
        if "id" in thread:
            method, params["ts"] = "conversations.replies", thread["id"]
        for _ in range(HISTORY_PAGES):
            page = await self._call(method, None, params=params)
            for message in page.get("messages", []):
                if any(block.get("block_id") == event.event_id for block in message.get("blocks", [])):
                    # A reply keeps the case's thread; a first message starts it.
                    return NotifyReceipt(thread.get("id") or message["ts"], state={"channel": channel})
            params["cursor"] = (page.get("response_metadata") or {}).get("next_cursor")
            if not params["cursor"]:
                return None
        return None

    async def _post(self, channel: str, text: str, blocks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        body = {"channel": channel, "text": text, "blocks": blocks, "unfurl_links": False, "unfurl_media": False, "link_names": False}
        body |= {key: value for key, value in extra.items() if value}
        return await self._call("chat.postMessage", channel, body)

    async def _call(self, method: str, channel: str | None, body: dict[str, Any] | None = None, *, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call one Web API method (a post in the channel's turn); Slack answers HTTP 200 with ok=false for most errors."""
        if channel is not None:
            response = await post_paced(self.client, self.pacer, channel, method, f"/{method}", body or {})
        else:
            response = await self.client.call(method, "GET", f"/{method}", params=params)
        data = self.client.json_object(response)
        if data.get("ok"):
            return data
        error = str(data.get("error", "unknown_error"))
        message = f"slack {method} -> {error}" + (f" (needed: {data['needed']})" if data.get("needed") else "")
        if error in ("ratelimited", "rate_limited"):
            raise RateLimited(message, cause=error)
        if error in AUTH_ERRORS:
            raise AuthFailed(message, status=response.status_code)
        if error in TRANSIENT_ERRORS:
            raise Retryable(message, status=response.status_code)
        raise Permanent(message, status=response.status_code)

    async def _webhook(self, body: dict[str, Any]) -> None:
        await post_webhook(self.client, self.pacer, self.config.webhook_url.get_secret_value() if self.config.webhook_url else "", body)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
