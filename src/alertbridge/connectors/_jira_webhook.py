"""Jira's own webhooks, parsed into TicketEvents: how the hub learns a ticket moved, closed or got a comment.

Payload shapes: https://developer.atlassian.com/cloud/jira/platform/webhooks/
Signature: a webhook registered with a secret carries `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, SecretStr

from ..errors import PayloadError, SignatureError
from ..model import TicketEvent
from .base import Source, SourceConfig

_KINDS = {
    "jira:issue_created": "created",
    "jira:issue_updated": "updated",
    "jira:issue_deleted": "deleted",
    "comment_created": "commented",
}
_CATEGORIES = {"new", "indeterminate", "done"}


class JiraWebhookConfig(SourceConfig):
    """A Jira webhook pointed at https://<hub>/hooks/<source name>."""

    type: Literal["jira"] = Field(default="jira", description="Connector type", examples=["jira"])
    secret: SecretStr | None = Field(
        default=None,
        description="The secret set on the Jira webhook; requests must carry its X-Hub-Signature. "
        "Without it, the `auth` check applies",
        examples=["${JIRA_WEBHOOK_SECRET}"],
    )
    sink: str = Field(default="jira", description="Name of the sink whose tickets this webhook reports on", examples=["jira-soc"])


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    # Webhook bodies are input: a field of an unexpected type reads as absent, never as a crash.
    return value if isinstance(value, str) and value else None


def _actor(user: Any) -> str | None:
    # Cloud identifies people by accountId only; Data Center by name.
    return _text(_dict(user).get("accountId")) or _text(_dict(user).get("name"))


def _changed_to(changelog: Any, field: str) -> str | None:
    items = _dict(changelog).get("items")
    for item in items if isinstance(items, list) else []:
        if str(_dict(item).get("field", "")).lower() == field:
            return _text(item.get("toString"))
    return None


def _when(timestamp: Any) -> datetime:
    if isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        try:
            return datetime.fromtimestamp(timestamp / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    return datetime.now(UTC)


class JiraWebhookSource(Source):
    """Receives Jira webhooks and reports ticket changes."""

    type = "jira"
    Config = JiraWebhookConfig
    config: JiraWebhookConfig

    def verify(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> None:
        """Check X-Hub-Signature against the secret, or the `auth` settings when there is no secret."""
        if self.config.secret is None:
            super().verify(headers, query, body)
            return
        digest = hmac.new(self.config.secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        given = headers.get("x-hub-signature", "")
        # Constant-time comparison, so response timing leaks nothing about the expected digest.
        if not hmac.compare_digest(given.encode(), f"sha256={digest}".encode()):
            raise SignatureError("X-Hub-Signature missing or wrong")

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        """Return Jira's delivery id; a retried delivery carries the same one."""
        return headers.get("x-atlassian-webhook-identifier")

    def parse(self, payload: Any) -> list[TicketEvent]:
        """Turn one Jira webhook body into ticket events (none for events the hub does not follow)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("webhookEvent"), str):
            raise PayloadError("not a Jira webhook body: no webhookEvent")
        issue = payload.get("issue")
        if not isinstance(issue, dict) or not _text(issue.get("key")):
            raise PayloadError(f"Jira webhook {payload['webhookEvent']!r} without an issue key")
        kind = _KINDS.get(payload["webhookEvent"])
        if kind is None:
            return []
        fields = _dict(issue.get("fields"))
        status = _dict(fields.get("status"))
        category = _text(_dict(status.get("statusCategory")).get("key"))
        changelog = payload.get("changelog")
        labels = fields.get("labels") if isinstance(fields.get("labels"), list) else []
        return [
            TicketEvent(
                sink=self.config.sink,
                ticket_key=issue["key"],
                kind=kind,
                status=_text(status.get("name")) or _changed_to(changelog, "status"),
                status_category=category if category in _CATEGORIES else None,
                resolution=_text(_dict(fields.get("resolution")).get("name")) or _changed_to(changelog, "resolution"),
                actor=_actor(payload.get("user")) or _actor(_dict(payload.get("comment")).get("author")),
                labels=[label for label in labels if isinstance(label, str)],
                at=_when(payload.get("timestamp")),
            )
        ]
