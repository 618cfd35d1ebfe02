"""A thin async Microsoft Graph client: an app-only token from Microsoft Entra ID, and authenticated GETs.

The token comes from the client-credentials grant of the v2 endpoint (`_oauth.ClientCredentials`,
over this client). Errors carry the URL path only, never the query string (skiptokens) nor any header.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2
from pydantic import SecretStr

from ..errors import AuthFailed, Retryable
from ._http import send
from ._oauth import ClientCredentials

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


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
        self._client = httpx2.AsyncClient(timeout=timeout, transport=transport, headers={"Accept": "application/json"})
        self._credentials = ClientCredentials(
            token_url=f"{login_url.rstrip('/')}/{tenant_id}/oauth2/v2.0/token", client_id=client_id,
            client_secret=client_secret, scope=GRAPH_SCOPE, vendor="defender", client=self._client, clock=clock,
        )

    async def get(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET a Graph URL and return its JSON object; on a 401 renew the token once and retry once."""
        for attempt in (1, 2):
            token = await self._credentials.token(renew=attempt == 2)
            try:
                response = await send(self._client.get(url, params=params, headers={"Authorization": f"Bearer {token}"}), vendor="defender")
            except AuthFailed as exc:
                # Graph answers 401 InvalidAuthenticationToken for an expired or revoked token; a 403 is a missing permission.
                if exc.status == 401 and attempt == 1:
                    continue
                raise
            return _json_object(response)
        raise AssertionError("unreachable: the second attempt returns or raises")

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
