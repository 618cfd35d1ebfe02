"""Microsoft Graph on the shared HTTP layer: an app-only token from Microsoft Entra ID, and Graph's error shape.

The token comes from the client-credentials grant of the v2 endpoint
(https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow),
posted by the auth flow rather than through msal: msal's ConfidentialClientApplication
is synchronous and fetches the authority's OpenID metadata before the first
token, so it would add a second HTTP stack and a discovery call the sandbox
would have to emulate, for one form POST.
"""

from __future__ import annotations

from typing import Any

import httpx2
from pydantic import SecretStr

from .._http import HttpClient, OAuth2ClientCredentials, Vendor

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
TOKEN_LIFETIME = 3599.0  # what Entra ID gives app tokens by default
# Renew a token this long before Entra ID says it expires, so no call carries a token that dies in flight.
EXPIRY_MARGIN = 300.0


class GraphVendor(Vendor):
    """Graph's `{"error": {"code", "message"}}`; Entra ID's `{"error", "error_description"}` (AADSTS codes)."""

    def message(self, body: Any) -> str | None:
        """Return 'code: message' of a Graph error, else the OAuth error description."""
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return f"{error.get('code')}: {error.get('message')}"
        return super().message(body)


GRAPH = GraphVendor("defender")


def graph_client(connector: str, *, login_url: str, tenant_id: str, client_id: str, client_secret: SecretStr, timeout: float,
                 transport: httpx2.AsyncBaseTransport | None = None) -> HttpClient:
    """Return a Graph client authorized as one app registration (client id and secret)."""
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret.get_secret_value(), "scope": GRAPH_SCOPE}
    token_url = f"{login_url.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
    auth = OAuth2ClientCredentials(GRAPH, token_url, form, default_lifetime=TOKEN_LIFETIME, margin=EXPIRY_MARGIN)
    return HttpClient(connector, GRAPH, auth=auth, timeout=timeout, transport=transport)
