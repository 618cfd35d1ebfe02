"""Jira-style webhooks from the emulator: an issue's status change is POSTed to a URL, signed.

Real Jira sends `jira:issue_updated` with the issue, the user and a changelog,
signs the body with HMAC-SHA256 in `X-Hub-Signature` when the webhook has a
secret, and names each delivery in `X-Atlassian-Webhook-Identifier`
(https://developer.atlassian.com/cloud/jira/platform/webhooks/). Delivery is
retried a few times, as Jira does, and never blocks the API call that caused it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid

import httpx2

from .fields import Api
from .render import issue_json
from .seed import USERS
from .issue import Issue


class WebhookSender:
    """Deliver issue_updated events for status changes to one URL."""

    def __init__(self, url: str, secret: str | None, root: str):
        self.url = url
        self.secret = secret
        self.api = Api(version=2, root=root)
        self.delivered = 0
        self._tasks: set[asyncio.Task] = set()

    def issue_moved(self, issue: Issue, change: dict) -> None:
        """Queue the webhook for a status change (called by the state on every transition)."""
        body = json.dumps(self.payload(issue, change)).encode()
        task = asyncio.get_running_loop().create_task(self._deliver(body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def payload(self, issue: Issue, change: dict) -> dict:
        """Return the jira:issue_updated body for a status change."""
        actor = next((u for u in USERS if u.account_id == change["author"]), USERS[0])
        return {
            "timestamp": int(time.time() * 1000),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "user": {"accountId": actor.account_id, "name": actor.name, "displayName": actor.display_name},
            "issue": issue_json(issue, self.api),
            "changelog": {
                "id": str(10000 + issue.history.index(change)),  # the id GET /issue?expand=changelog shows it under
                "items": [{"field": "status", "fieldtype": "jira", "fromString": change["from"], "toString": change["to"]}]
                + ([{"field": "resolution", "fieldtype": "jira", "fromString": None, "toString": change["resolution"]}]
                   if change["resolution"] else []),
            },
        }

    async def _deliver(self, body: bytes) -> None:
        headers = {"Content-Type": "application/json", "X-Atlassian-Webhook-Identifier": str(uuid.uuid4())}
        if self.secret:
            headers["X-Hub-Signature"] = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        async with httpx2.AsyncClient(timeout=10) as client:
            for attempt in range(5):
                try:
                    response = await client.post(self.url, content=body, headers=headers)
                    if response.status_code < 500:
                        self.delivered += 1
                        return
                except httpx2.TransportError:
                    pass
                await asyncio.sleep(0.5 * 2**attempt)
