"""The access token XOAUTH2 logs in with: the shared client-credentials auth flow, run for its token alone.

Microsoft 365: grant the app registration `IMAP.AccessAsApp` and let its service principal into the one
mailbox (docs/connectors/imap.md). IMAP is no HTTP call the flow could authorize, so the flow is handed
a request that is never sent and its token requests go out through the shared HttpClient (one deadline,
typed errors, call metrics); the flow keeps the token and renews it before it expires.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx2

from .._http import HttpClient, OAuth2ClientCredentials, Vendor
from .config import OAuth2Login

TOKEN = Vendor("imap token")
EXPIRY_MARGIN = 300.0


class XOAuth2Token:
    """Fetches, caches and renews one app-only token for the mailbox."""

    def __init__(self, login: OAuth2Login, timeout: float, transport: httpx2.AsyncBaseTransport | None = None):
        form = {"grant_type": "client_credentials", "client_id": login.client_id,
                "client_secret": login.client_secret.get_secret_value(), "scope": login.scope}  # fmt: skip
        self._flow = OAuth2ClientCredentials(TOKEN, login.token_url, form, default_lifetime=3599.0, margin=EXPIRY_MARGIN)
        self._http = HttpClient("imap", TOKEN, timeout=timeout, transport=transport)

    async def token(self, renew: bool = False) -> str:
        """Return a valid access token (a fresh one when `renew`, e.g. after the server refused the cached one)."""
        if renew:
            self._flow.token = None
        probe = httpx2.Request("GET", "https://xoauth2.invalid/")  # never sent: the flow only puts the token on it
        flow = self._flow.auth_flow(probe)
        request = next(flow)
        while request is not probe:  # a token request: the flow checks the answer itself (a refusal is AuthFailed)
            answer = await self._http.call("token", request.method, str(request.url), data=dict(parse_qsl(request.content.decode())),
                                           accept=tuple(range(400, 600)))  # fmt: skip
            request = flow.send(answer)
        flow.close()
        assert self._flow.token is not None
        return self._flow.token

    async def aclose(self) -> None:
        """Release connections."""
        await self._http.aclose()
