"""An app-only access token for XOAUTH2, from the OAuth2 client-credentials grant (RFC 6749 §4.4).

Microsoft 365: register an app, grant it the `IMAP.AccessAsApp` application permission, and give its
service principal access to the one mailbox (https://learn.microsoft.com/en-us/exchange/client-developer/
legacy-protocols/how-to-authenticate-an-imap-pop-smtp-application-by-using-oauth). The token is cached
and renewed a few minutes before it expires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx2

from ...errors import AuthFailed, Permanent
from .._http import send
from .config import OAuth2Login

EXPIRY_MARGIN = 300.0


class ClientCredentials:
    """Fetches and caches one access token."""

    def __init__(self, login: OAuth2Login, timeout: float, *, transport: httpx2.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.login = login
        self._client = httpx2.AsyncClient(timeout=timeout, transport=transport, headers={"Accept": "application/json"})
        self._clock = clock
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
        form = {"grant_type": "client_credentials", "client_id": self.login.client_id,
                "client_secret": self.login.client_secret.get_secret_value(), "scope": self.login.scope}  # fmt: skip
        try:
            response = await send(self._client.post(self.login.token_url, data=form), vendor="imap token")
        except Permanent as exc:
            # A 400 invalid_client or unauthorized_client is a credential to fix, not a request to retry.
            raise AuthFailed(str(exc), status=exc.status) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthFailed("imap token: the token endpoint answered without an access_token")
        try:
            lifetime = min(max(float(body.get("expires_in", 3600)), 60.0), 86400.0)
        except (TypeError, ValueError):
            lifetime = 3600.0
        self._token = token
        self._renew_at = self._clock() + max(lifetime - EXPIRY_MARGIN, lifetime / 2)

    async def aclose(self) -> None:
        """Release connections."""
        await self._client.aclose()
