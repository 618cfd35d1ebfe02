"""ServiceNow → hub: the outbound REST message a Business Rule sends on every insert and update, as ticket events.

The Business Rule (docs/connectors/servicenow.md has its script) posts the record to
https://<hub>/hooks/<source name>, authenticated in one of two ways:

    hmac   `X-Hmac-Signature: base64(HMAC-SHA256(secret, body))`: what GlideCertificateEncryption.generateMac
           computes in the script (https://www.servicenow.com/community/servicenow-ai-platform-forum/how-to-use-glidecertificateencryption-generatemac-method-to/td-p/1119034)
    basic  the user and password of a Basic auth profile on the REST message, for instances whose
           administrators will not script a signature

It names each delivery `X-Delivery-Id: <sys_id>:<sys_mod_count>`: the same change delivered twice is one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from ...errors import SignatureError
from ..roles import WebhookConfig, WebhookSource
from ..webhook_auth import WebhookAuth
from .events import ServiceNowEventParser


class ServiceNowHookAuth(WebhookAuth):
    """The shared webhook modes, with ServiceNow's base64 HMAC by default and basic auth besides."""

    mode: Literal["hmac", "basic", "bearer", "query_token", "none"] = Field(
        description="hmac: HMAC-SHA256 of the raw body in `header`; basic: the REST message's Basic auth profile; bearer, "
        "query_token, none: as for every webhook", examples=["hmac"])  # fmt: skip
    header: str = Field(default="X-Hmac-Signature", description="Header carrying the HMAC", examples=["X-Hmac-Signature"])
    prefix: str = Field(default="", description="Text before the digest in the header", examples=[""])
    encoding: Literal["base64", "hex"] = Field(default="base64", description="How the digest is written (generateMac gives base64)",
                                               examples=["base64"])
    username: str | None = Field(default=None, description="Basic auth: the user the REST message sends", examples=["servicenow-outbound"])
    password: SecretStr | None = Field(default=None, description="Basic auth: its password", examples=["${SNOW_OUTBOUND_PASSWORD}"])

    @model_validator(mode="after")
    def _basic_given(self) -> ServiceNowHookAuth:
        if self.mode == "basic" and not (self.username and self.password):
            raise ValueError("mode basic needs `username` and `password`")
        return self

    def check(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> None:
        """Raise SignatureError unless the request carries the right signature or basic credentials."""
        if self.mode == "basic":
            self._check_basic(headers.get("authorization", ""))
        elif self.mode == "hmac" and self.encoding == "base64":
            secret = self.secret.get_secret_value() if self.secret else ""
            expected = self.prefix + base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
            # Compare in constant time so the response time leaks nothing of the secret.
            if not secret or not hmac.compare_digest(headers.get(self.header.lower(), "").strip().encode(), expected.encode()):
                raise SignatureError(f"hmac signature in {self.header} missing or wrong")
        else:
            super().check(headers, query, body)

    def _check_basic(self, authorization: str) -> None:
        scheme, _, encoded = authorization.partition(" ")
        try:
            given = base64.b64decode(encoded, validate=True) if scheme.lower() == "basic" else b""
        except (binascii.Error, ValueError):
            given = b""
        expected = f"{self.username}:{self.password.get_secret_value() if self.password else ''}".encode()
        if not hmac.compare_digest(given, expected):
            raise SignatureError("basic credential missing or wrong")


class ServiceNowWebhookConfig(ServiceNowEventParser.Config, WebhookConfig):
    """A Business Rule's outbound REST message pointed at https://<hub>/hooks/<source name>; `auth` is required."""

    type: Literal["servicenow"] = Field(default="servicenow", description="Connector type", examples=["servicenow"])
    auth: ServiceNowHookAuth = Field(
        description="How the outbound REST message authenticates: `{mode: hmac, secret: …}` (base64 in X-Hmac-Signature) or "
        "`{mode: basic, username: …, password: …}`; an open hook says `{mode: none}`",
        examples=[{"mode": "hmac", "secret": "${SNOW_HOOK_SECRET}"}],
    )


class ServiceNowWebhookSource(ServiceNowEventParser, WebhookSource):
    """Receives the Business Rule's calls and reports record changes."""

    parser = ServiceNowEventParser
    Config = ServiceNowWebhookConfig
    config: ServiceNowWebhookConfig

    def delivery_id(self, headers: Mapping[str, str]) -> str | None:
        """Return the delivery's `<sys_id>:<sys_mod_count>`: one change delivered twice is stored once."""
        return headers.get("x-delivery-id")
