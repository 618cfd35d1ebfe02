"""How a webhook sender proves who it is: the `auth` every webhook source's config requires.

There is no default and no open hook by accident: `mode: none` is written out
in the config, and `alertbridge check` and `serve` warn about it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ..errors import SignatureError


class StrictModel(BaseModel):
    """A config model that rejects unknown keys, so typos are reported, not ignored."""

    model_config = ConfigDict(extra="forbid")


class WebhookAuth(StrictModel):
    """How a webhook sender proves who it is; `mode: none` must be written out, and `alertbridge check` warns about it."""

    mode: Literal["bearer", "hmac", "query_token", "none"] = Field(
        description="bearer: 'Authorization: Bearer <token>'; hmac: HMAC-SHA256 of the raw body in `header`; "
        "query_token: '?token=<token>' for senders that cannot set headers (Splunk's built-in webhook); "
        "none: no check at all (only behind a proxy that authenticates)",
        examples=["hmac"],
    )
    token: SecretStr | None = Field(default=None, description="Shared token for bearer and query_token", examples=["${SPLUNK_HOOK_TOKEN}"])
    secret: SecretStr | None = Field(default=None, description="HMAC key for mode hmac", examples=["${HOOK_SECRET}"])
    header: str = Field(default="X-Signature", description="Header carrying the HMAC", examples=["X-Hub-Signature"])
    prefix: str = Field(default="sha256=", description="Text before the hex digest in the header", examples=["sha256="])

    @model_validator(mode="after")
    def _credential_given(self) -> WebhookAuth:
        needed = {"bearer": ("token", self.token), "query_token": ("token", self.token), "hmac": ("secret", self.secret)}
        name, value = needed.get(self.mode, ("", True))
        if not value:
            raise ValueError(f"mode {self.mode} needs `{name}`")
        return self

    def check(self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes) -> None:
        """Raise SignatureError unless the request carries the right credential."""
        if self.mode == "none":
            return
        where = self.mode
        if self.mode == "hmac":
            where = f"hmac signature in {self.header}"
            secret = self.secret.get_secret_value() if self.secret else ""
            expected = self.prefix + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            given = headers.get(self.header.lower(), "")
        else:
            expected = self.token.get_secret_value() if self.token else ""
            if self.mode == "bearer":
                given = headers.get("authorization", "").removeprefix("Bearer ").strip()
            else:
                given = query.get("token", "")
        # Compare in constant time so the response time leaks nothing of the secret.
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise SignatureError(f"{where} credential missing or wrong")
