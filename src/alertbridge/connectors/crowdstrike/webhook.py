"""CrowdStrike Falcon alerts pushed by a Falcon Fusion workflow's "Call webhook" action, signed by Falcon."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from ...errors import SignatureError
from ..roles import WebhookConfig, WebhookSource
from .parser import CrowdStrikeParser

SIGNATURE_HEADER = "x-cs-primary-signature"
TIMESTAMP_HEADER = "x-cs-delivery-timestamp"


class CrowdStrikeSource(CrowdStrikeParser, WebhookSource):
    """A Falcon Fusion workflow's "Call webhook" action carrying Alerts API v2 alert objects."""

    parser = CrowdStrikeParser

    class Config(WebhookConfig):
        """Set `auth: {mode: hmac, secret: ...}` to check the signature of Falcon's Webhook integration."""

    config: Config

    def verify(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> None:
        """Check Falcon's HMAC signature in hmac mode; the other modes work as for every source."""
        auth = self.config.auth
        if auth.mode != "hmac":
            super().verify(headers, query, body)
            return
        secret = auth.secret.get_secret_value().encode() if auth.secret else b""
        given = (headers.get(auth.header.lower()) or headers.get(SIGNATURE_HEADER, "")).strip().removeprefix(auth.prefix)
        stamp = headers.get(TIMESTAMP_HEADER, "").encode()
        # Falcon signs the body and the X-Cs-Delivery-Timestamp value; public receivers disagree on the order and on
        # base64 vs hex (m-mizutani/alertchain: base64 of body+timestamp; PagerTree: hex of timestamp+body), and
        # every variant needs the secret, so each is accepted.
        digests = [hmac.new(secret, message, hashlib.sha256).digest() for message in (body + stamp, stamp + body)]
        candidates = [encode(d) for d in digests for encode in (lambda d: base64.b64encode(d).decode(), bytes.hex)]
        if not secret or not stamp or not any(hmac.compare_digest(given.encode(), c.encode()) for c in candidates):
            raise SignatureError("hmac credential missing or wrong")

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        """Return the signature: a replayed request repeats it, a new delivery has a new timestamp and so a new one."""
        signature = headers.get(SIGNATURE_HEADER, "").strip()
        return f"sig:{signature[:180]}" if signature and self.config.auth.mode == "hmac" else None
