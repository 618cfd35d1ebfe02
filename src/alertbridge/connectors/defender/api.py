"""A thin async Microsoft Graph client: an app-only token from Microsoft Entra ID, and authenticated GETs.

The token comes from the client-credentials grant of the v2 endpoint
(https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow),
posted with this client rather than through msal: msal's ConfidentialClientApplication
is synchronous and fetches the authority's OpenID metadata before the first
token, so it would add a second HTTP stack and a discovery call the sandbox
would have to emulate, for one form POST. Errors carry the URL path only,
never the query string (skiptokens) nor any header.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx2
from pydantic import SecretStr

from ...errors import AuthFailed, Permanent, Retryable
from .._http import send

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# Renew a token this long before Entra ID says it expires, so no call carries a token that dies in flight.
EXPIRY_MARGIN = 300.0


class GraphApi:
    """Calls Microsoft Graph as one app registration; fetches the token lazily and renews it before it expires."""

    def __init__(
        self,
        *,
        login_url: str,
        tenant_id: str,
        client_id: str,
        client_secret: SecretStr,
        timeout: float,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._token_url = f"{login_url.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._client = httpx2.AsyncClient(timeout=timeout, transport=transport, headers={"Accept": "application/json"})
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET a Graph URL and return its JSON object; on a 401 renew the token once and retry once."""
        for attempt in (1, 2):
            token = await self._access_token(renew=attempt == 2)
            try:
                response = await send(self._client.get(url, params=params, headers={"Authorization": f"Bearer {token}"}), vendor="defender")
            except AuthFailed as exc:
                # Graph answers 401 InvalidAuthenticationToken for an expired or revoked token; a 403 is a missing permission.
                if exc.status == 401 and attempt == 1:
                    continue
                raise
            return _json_object(response)
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _access_token(self, renew: bool) -> str:
        async with self._lock:
            if renew or self._token is None or self._clock() >= self._renew_at:
                await self._fetch_token()
            assert self._token is not None
            return self._token

    async def _fetch_token(self) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "scope": GRAPH_SCOPE,
        }
        try:
            response = await send(self._client.post(self._token_url, data=form), vendor="defender token")
        except Permanent as exc:
            # Entra ID answers 400 for an unknown tenant or client (AADSTS90002, AADSTS700016) and 401 for a
            # wrong secret (AADSTS7000215): every one is a credential to fix, not a request to retry.
            raise AuthFailed(str(exc), status=exc.status) from None
        body = _json_object(response)
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not token:
            raise AuthFailed("defender token: the token endpoint answered without an access_token")
        try:
            seconds = min(max(float(lifetime), 60.0), 86400.0)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            seconds = 3599.0  # the lifetime Entra ID gives app tokens by default
        self._token = token
        self._renew_at = self._clock() + max(seconds - EXPIRY_MARGIN, seconds / 2)

    async def aclose(self) -> None:
        """Release connections."""
        await self._client.aclose()


def _json_object(response: httpx2.Response) -> dict[str, Any]:
    """Return the response's JSON object; a 2xx that is not one (a proxy's HTML page) is worth retrying later."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise Retryable(f"defender {response.request.method} {response.request.url.path}: the answer is not a JSON object")
    return body
