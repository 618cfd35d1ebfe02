"""A thin async client for the CrowdStrike Falcon API: OAuth2 client credentials, one bearer token, rate limits.

Falcon tokens live 30 minutes (`expires_in` in the token answer); one is fetched
lazily, kept until shortly before it expires, and refreshed once when a call
meets a 401 (a token revoked early, or a clock that drifted). Falcon answers a
429 with `X-RateLimit-RetryAfter`, the *epoch second* from which calls are let
through again, besides `Retry-After`; the later of the two is handed to the core:
https://www.falconpy.io/Usage/Rate-Limits.html
Errors carry the path only, never the query (it holds the FQL filter) or headers.
"""

from __future__ import annotations

import time
from typing import Any

import httpx2

from ...errors import AuthFailed, Permanent, RateLimited
from .._http import send

VENDOR = "crowdstrike"
TOKEN_MARGIN = 60.0  # refresh this many seconds before the token's stated expiry


class FalconApi:
    """Calls one Falcon cloud with a client id and secret."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        member_cid: str | None,
        timeout: float,
        transport: httpx2.AsyncBaseTransport | None = None,
    ):
        self._client_id = client_id
        self._client_secret = client_secret
        self._member_cid = member_cid
        self._client = httpx2.AsyncClient(
            base_url=base_url, headers={"Accept": "application/json"}, timeout=timeout, transport=transport
        )
        self._token: str | None = None
        self._token_until = 0.0

    async def call(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> dict[str, Any]:
        """Send one authorized request and return its JSON body; on a 401 refresh the token and retry once."""
        for attempt in (1, 2):
            token = await self._bearer(renew=attempt == 2)
            try:
                response = await self._send(method, path, params=params, json=json, headers={"Authorization": f"Bearer {token}"})
            except AuthFailed as exc:
                if exc.status == 401 and attempt == 1:
                    continue
                raise
            return response.json()
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def _bearer(self, renew: bool) -> str:
        if self._token is None or renew or time.monotonic() >= self._token_until:
            if not self._client_id or not self._client_secret:
                raise AuthFailed("crowdstrike: client_id and client_secret are required to poll the Alerts API")
            form = {"client_id": self._client_id, "client_secret": self._client_secret}
            if self._member_cid:
                form["member_cid"] = self._member_cid
            body = (await self._send("POST", "/oauth2/token", data=form)).json()
            if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
                raise Permanent("crowdstrike POST /oauth2/token: the answer has no access_token")
            lifetime = body.get("expires_in")
            self._token = body["access_token"]
            self._token_until = time.monotonic() + (lifetime if isinstance(lifetime, int) else 1799) - TOKEN_MARGIN
        return self._token

    async def _send(self, method: str, path: str, **request: Any) -> httpx2.Response:
        seen: list[httpx2.Response] = []

        async def exchange() -> httpx2.Response:
            seen.append(await self._client.request(method, path, **request))
            return seen[-1]

        try:
            return await send(exchange(), vendor=VENDOR)
        except RateLimited as exc:
            exc.retry_after = max(exc.retry_after or 0.0, _epoch_wait(seen[-1].headers)) or None
            raise

    async def aclose(self) -> None:
        """Release connections."""
        await self._client.aclose()


def _epoch_wait(headers: httpx2.Headers) -> float:
    """Return the seconds until X-RateLimit-RetryAfter (an epoch second), 0 when absent or unreadable."""
    try:
        return max(0.0, float(headers.get("x-ratelimit-retryafter", "")) - time.time())
    except ValueError:
        return 0.0
