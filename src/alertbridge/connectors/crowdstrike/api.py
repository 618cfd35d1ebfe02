"""The CrowdStrike Falcon API on the shared HTTP layer: OAuth2 client credentials, Falcon's error envelope and rate limits.

Falcon tokens live 30 minutes (`expires_in` in the token answer); the auth flow
fetches one lazily, renews it a minute before it expires, and once more when a
call meets a 401 (a token revoked early, or a clock that drifted). Falcon
answers a 429 with `X-RateLimit-RetryAfter`, the *epoch second* from which calls
are let through again, besides `Retry-After`; the later of the two is handed to
the core: https://www.falconpy.io/Usage/Rate-Limits.html
"""

from __future__ import annotations

import time
from typing import Any

import httpx2
from pydantic import SecretStr

from .._http import HttpClient, OAuth2ClientCredentials, Vendor

TOKEN_LIFETIME = 1799.0  # when the token answer has no expires_in


class FalconVendor(Vendor):
    """Falcon's envelope `{"meta", "errors": [{"code", "message"}], "resources"}` and its epoch Retry-After."""

    def message(self, body: Any) -> str | None:
        """Join the messages of `errors`."""
        errors = body.get("errors") if isinstance(body, dict) else None
        messages = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")] if isinstance(errors, list) else []
        return "; ".join(messages) or super().message(body)

    def retry_after(self, response: httpx2.Response) -> float | None:
        """Return the later of Retry-After and X-RateLimit-RetryAfter (an epoch second)."""
        try:
            epoch = max(0.0, float(response.headers.get("x-ratelimit-retryafter", "")) - time.time())
        except ValueError:
            epoch = 0.0
        return max(super().retry_after(response) or 0.0, epoch) or None


FALCON = FalconVendor("crowdstrike")


def falcon_client(connector: str, base_url: str, client_id: str, client_secret: SecretStr, *, member_cid: str | None,
                  timeout: float, transport: httpx2.AsyncBaseTransport | None = None) -> HttpClient:
    """Return a client of one Falcon cloud, authorized by the API client's id and secret (and child CID, for MSSPs)."""
    form = {"client_id": client_id, "client_secret": client_secret.get_secret_value(), **({"member_cid": member_cid} if member_cid else {})}
    auth = OAuth2ClientCredentials(FALCON, f"{base_url.rstrip('/')}/oauth2/token", form, default_lifetime=TOKEN_LIFETIME)
    return HttpClient(connector, FALCON, base_url=base_url, auth=auth, timeout=timeout, transport=transport)
