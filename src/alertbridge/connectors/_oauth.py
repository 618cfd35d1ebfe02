"""An app-only access token from the OAuth2 client-credentials grant (RFC 6749 §4.4), cached and renewed early.

Posted with the connector's own httpx2 client rather than through msal: msal's
ConfidentialClientApplication is synchronous and fetches the authority's OpenID
metadata before the first token, a second HTTP stack and a discovery call for
one form POST. Microsoft Entra ID's flavour:
https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx2
from pydantic import SecretStr

from ..errors import AuthFailed, Permanent, Retryable
from ._http import send

# Renew a token this long before the identity provider says it expires, so no call carries a token that dies in flight.
EXPIRY_MARGIN = 300.0


class ClientCredentials:
    """Fetches one app's token lazily over `client`, and again when asked or shortly before it expires."""

    def __init__(self, *, token_url: str, client_id: str, client_secret: SecretStr, scope: str, vendor: str,
                 client: httpx2.AsyncClient, clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self._form = {"grant_type": "client_credentials", "client_id": client_id, "scope": scope}
        self._token_url, self._secret, self._vendor = token_url, client_secret, vendor
        self._client, self._clock = client, clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self, renew: bool = False) -> str:
        """Return a valid access token, fetching a new one when asked, absent or about to expire."""
        async with self._lock:
            if renew or self._token is None or self._clock() >= self._renew_at:
                await self._fetch()
            assert self._token is not None
            return self._token

    async def _fetch(self) -> None:
        form = self._form | {"client_secret": self._secret.get_secret_value()}
        try:
            response = await send(self._client.post(self._token_url, data=form), vendor=f"{self._vendor} token")
        except Permanent as exc:
            # Entra ID answers 400 for an unknown tenant or client (AADSTS90002, AADSTS700016) and 401 for a
            # wrong secret (AADSTS7000215): every one is a credential to fix, not a request to retry.
            raise AuthFailed(str(exc), status=exc.status) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):  # a proxy's HTML page: worth another try later
            raise Retryable(f"{self._vendor} token: the token endpoint's answer is not a JSON object")
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not token:
            raise AuthFailed(f"{self._vendor} token: the token endpoint answered without an access_token")
        try:
            seconds = min(max(float(lifetime), 60.0), 86400.0)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            seconds = 3599.0  # the lifetime Entra ID gives app tokens by default
        self._token = token
        self._renew_at = self._clock() + max(seconds - EXPIRY_MARGIN, seconds / 2)
