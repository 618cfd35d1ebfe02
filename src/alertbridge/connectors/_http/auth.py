"""Token refresh as httpx2 auth flows: fetch a token when none is fresh, renew it before it expires, re-send once on a 401.

https://www.python-httpx.org/advanced/authentication/#custom-authentication-schemes —
a flow yields the requests it needs (the token request, then the call) and gets
their answers back, all inside the one call and its one deadline. A 401 on the
call means the token was revoked or expired early: one fresh token and one
re-send, then the 401 stands (AuthFailed). A failed token request is a
credential to fix (AuthFailed), unless it was a 429 or 5xx (retried later).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from typing import Any

import httpx2

from ...errors import AuthFailed, Permanent
from .errors import Vendor, check_response


class TokenAuth(httpx2.Auth, ABC):
    """A token the flow fetches itself and keeps until `margin` seconds before it expires."""

    requires_response_body = True  # the token answer is read inside the flow

    def __init__(self, vendor: Vendor, *, margin: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.vendor = vendor
        self.margin = margin  # renew this long before the stated expiry, so no call carries a token that dies in flight
        self.clock = clock
        self.token: str | None = None
        self._renew_at = 0.0

    @abstractmethod
    def token_request(self) -> httpx2.Request:
        """Return the request that gets a token (or renews `self.token`, for vendors that can)."""

    @abstractmethod
    def read_token(self, body: Any) -> tuple[str, float]:
        """Return the token in a token answer (decoded JSON, else its text) and its lifetime in seconds; raise AuthFailed if it holds none."""

    def authorize(self, request: httpx2.Request, token: str) -> None:
        """Put the token on a request (a bearer token by default)."""
        request.headers["Authorization"] = f"Bearer {token}"

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        """Authorize the call with a fresh token; on a 401, renew the token once and send the call again."""
        if self.token is None or self.clock() >= self._renew_at:
            yield from self._renew()
        assert self.token is not None
        self.authorize(request, self.token)
        response = yield request
        if response.status_code == 401:
            self.token = None
            yield from self._renew()
            self.authorize(request, self.token)
            yield request

    def _renew(self) -> Generator[httpx2.Request, httpx2.Response, None]:
        response = yield self.token_request()
        if response.status_code == 401 and self.token is not None:
            self.token = None  # a renewal of a dead token is refused: get a new one
            response = yield self.token_request()
        try:
            check_response(response, self.vendor)
        except Permanent as exc:
            # An unknown tenant or client is a 400 at most token endpoints: a credential to fix all the same.
            raise AuthFailed(str(exc), status=exc.status) from None
        try:
            body = response.json()
        except ValueError:
            body = response.text  # some gateways answer the bare token as text (Qualys's /auth)
        token, lifetime = self.read_token(body)
        self.token = token
        self._renew_at = self.clock() + max(lifetime - self.margin, lifetime / 2)


class OAuth2ClientCredentials(TokenAuth):
    """OAuth2's client-credentials grant (RFC 6749 §4.4): a form POST to the token URL, a bearer token back."""

    def __init__(self, vendor: Vendor, token_url: str, form: dict[str, str], *, default_lifetime: float, margin: float = 60.0):
        super().__init__(vendor, margin=margin)
        self._token_url = token_url
        self._form = form  # client_id, client_secret and the grant's other fields
        self._default_lifetime = default_lifetime

    def token_request(self) -> httpx2.Request:
        """Return the form POST of the client credentials."""
        return httpx2.Request("POST", self._token_url, data=self._form, headers={"Accept": "application/json"})

    def read_token(self, body: Any) -> tuple[str, float]:
        """Return `access_token` and `expires_in` (bounded to one minute … one day)."""
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthFailed(f"{self.vendor.name} token: the token endpoint answered without an access_token")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool):
            lifetime = self._default_lifetime
        return token, min(max(float(lifetime), 60.0), 86400.0)
