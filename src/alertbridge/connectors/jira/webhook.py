"""Jira's own webhooks, parsed into TicketEvents: how the hub learns a ticket moved, closed or got a comment.

Payload shapes: https://developer.atlassian.com/cloud/jira/platform/webhooks/
Signature: a webhook registered with a secret carries `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator

from ...errors import PayloadError
from ...model import TicketEvent
from .._values import text as _text
from ..roles import Parser, ParserConfig, WebhookConfig, WebhookSource
from .markup import plain

_KINDS = {
    "jira:issue_created": "created",
    "jira:issue_updated": "updated",
    "jira:issue_deleted": "deleted",
    "comment_created": "commented",
}
_CATEGORIES = {"new", "indeterminate", "done"}


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


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


class JiraWebhookParser(Parser):
    """Jira webhook bodies, as ticket events."""

    type = "jira"

    class Config(ParserConfig):
        """Which sink's tickets the events are about."""

        type: Literal["jira"] = Field(default="jira", description="Connector type", examples=["jira"])
        sink: str = Field(default="jira", description="Name of the sink whose tickets this webhook reports on", examples=["jira-soc"])

    config: Config

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
        comment = _dict(payload.get("comment"))
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
                # changelog.id is the id of the change in the issue's changelog: how the hub knows its own transitions.
                change_id=_text(_dict(changelog).get("id")),
                comment=plain(comment.get("body"), cloud=isinstance(comment.get("body"), dict)) if kind == "commented" else None,
                comment_id=_text(comment.get("id")) if kind == "commented" else None,
            )
        ]


class JiraWebhookConfig(JiraWebhookParser.Config, WebhookConfig):
    """A Jira webhook pointed at https://<hub>/hooks/<source name>: `secret`, or another `auth`, is required."""

    secret: SecretStr | None = Field(
        default=None,
        description="The secret set on the Jira webhook: requests must carry its X-Hub-Signature "
        "(short for `auth: {mode: hmac, header: X-Hub-Signature, secret: ...}`)",
        examples=["${JIRA_WEBHOOK_SECRET}"],
    )

    @model_validator(mode="before")
    @classmethod
    def _secret_is_hmac(cls, data: Any) -> Any:
        # https://developer.atlassian.com/cloud/jira/platform/webhooks/#secure-admin-webhooks
        if isinstance(data, dict) and data.get("secret") is not None:
            if data.get("auth") is not None:
                raise ValueError("give `secret` or `auth`, not both")
            data = {**data, "auth": {"mode": "hmac", "secret": data["secret"], "header": "X-Hub-Signature", "prefix": "sha256="}}
        return data


class JiraWebhookSource(JiraWebhookParser, WebhookSource):
    """Receives Jira webhooks and reports ticket changes."""

    parser = JiraWebhookParser
    Config = JiraWebhookConfig
    config: JiraWebhookConfig

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        """Return Jira's delivery id; a retried delivery carries the same one."""
        return headers.get("x-atlassian-webhook-identifier")
