"""A signed web request per ticket change, for SIEMs without an event collector of their own (or a SOAR's inbound hook).

The body is the ticket change as JSON; ``X-Alertbridge-Timestamp`` carries the
epoch seconds and ``X-Alertbridge-Signature`` is ``sha256=`` + the hex
HMAC-SHA256 of ``<timestamp>.<body>`` with the shared secret — the scheme of
Stripe's and Slack's signed requests, so the receiver can refuse replays older
than a few minutes. Any 2xx is taken; 4xx other than 408/429 is permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import asdict
from typing import Literal

import httpx2
from pydantic import Field, SecretStr

from ._http import HttpClient, Vendor
from .writeback_roles import SiemFeedback, TicketFeedback, WritebackConfig

VENDOR = Vendor("signed_webhook")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return the signature header value of one request."""
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class SignedWebhook(SiemFeedback):
    """POSTs each ticket change, signed with a shared secret."""

    type = "signed_webhook"

    class Config(WritebackConfig):
        """Where to send, and the secret both sides hold."""

        type: Literal["signed_webhook"] = Field(description="Connector type", examples=["signed_webhook"])
        url: str = Field(pattern=r"^https?://", description="The receiver's URL", examples=["https://siem.example.com/hooks/alertbridge"])
        secret: SecretStr = Field(min_length=16, description="Shared HMAC secret (16 characters at least)", examples=["${SIEM_HOOK_SECRET}"])

    config: Config

    def __init__(self, name: str, config: Config, *, transport: httpx2.AsyncBaseTransport | None = None):
        super().__init__(name, config)
        self._client = HttpClient(name, VENDOR, timeout=config.timeout, transport=transport)

    async def send(self, feedback: TicketFeedback) -> None:
        """Post the change, signed."""
        change = asdict(feedback)
        change["state"] = feedback.state.value if feedback.state else None
        body = json.dumps(change, separators=(",", ":")).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Alertbridge-Timestamp": stamp,
                   "X-Alertbridge-Signature": signature(self.config.secret.get_secret_value(), stamp, body)}
        await self._client.call("feedback", "POST", self.config.url, content=body, headers=headers)

    async def aclose(self) -> None:
        """Release connections."""
        await self._client.aclose()
