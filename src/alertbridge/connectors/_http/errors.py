"""Turn an HTTP answer into alertbridge's typed errors, the same way for every vendor.

Model: Alertmanager's ``notify/util.go`` ``Retrier.Check`` — 5xx and 429 are
worth retrying, other 4xx are not, and the vendor's message is kept. What a
vendor does its own way (where its message is, what its 429 says) is a
``Vendor`` hook, never a special case in here.

    401, 403 ............ AuthFailed
    429 ................. RateLimited (retry_after from the vendor's headers, cause from its reason header)
    408, 5xx ............ Retryable
    other 4xx ........... Permanent
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2

from ...errors import AuthFailed, Permanent, RateLimited, Retryable

_SECRET_HEADER = re.compile(r"authorization|token|key|secret|auth", re.IGNORECASE)
MESSAGE_LIMIT = 500


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Read Retry-After as delay-seconds or an HTTP-date (RFC 9110 §10.2.3); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Vendor:
    """How one vendor's API explains a failure; the defaults are the common ones, a vendor overrides what differs."""

    def __init__(self, name: str):
        self.name = name

    def message(self, body: Any) -> str | None:
        """Return the vendor's own error text from a decoded JSON body, or None when it holds none."""
        if not isinstance(body, dict):
            return None
        # OAuth servers put the human text in error_description and only a code in error.
        for key in ("message", "error_description", "error", "detail"):
            if isinstance(body.get(key), str | dict):
                return str(body[key])
        return None

    def retry_after(self, response: httpx2.Response) -> float | None:
        """Return how long the vendor asks us to wait (Retry-After)."""
        return parse_retry_after(response.headers.get("retry-after"))

    def rate_limit_cause(self, response: httpx2.Response) -> str:
        """Return the vendor's stated cause of a 429."""
        return "unknown"


def vendor_message(response: httpx2.Response, vendor: Vendor) -> str:
    """Return the vendor's error text: its hook's reading of a JSON body, or the body's start (proxies answer HTML)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return response.text[:MESSAGE_LIMIT].strip() or response.reason_phrase
    return (vendor.message(body) or json.dumps(body))[:MESSAGE_LIMIT]


def credentials(request: httpx2.Request) -> list[str]:
    """Return the secrets a request carries in its credential headers, a basic auth password included, longest first."""
    found = []
    for name, value in request.headers.items():
        if _SECRET_HEADER.search(name):
            scheme, _, rest = value.partition(" ")
            found += [value, rest]
            if scheme.lower() == "basic":
                with contextlib.suppress(ValueError):  # binascii.Error and UnicodeDecodeError are ValueErrors
                    found.append(base64.b64decode(rest).decode().partition(":")[2])
    return sorted({secret for secret in found if len(secret) >= 6}, key=len, reverse=True)


def redact(text: str, request: httpx2.Request) -> str:
    """Remove the request's secrets from a text (a gateway may quote the request back)."""
    for secret in credentials(request):
        text = text.replace(secret, "[redacted]")
    return text


def check_response(response: httpx2.Response, vendor: Vendor) -> httpx2.Response:
    """Return the response if it succeeded; raise the typed error that says what to do otherwise.

    Errors carry the method and path only, never the query (it holds filters and tokens) nor any header.
    """
    status = response.status_code
    if status < 400:
        return response
    request = response.request
    message = redact(f"{vendor.name} {request.method} {request.url.path} -> {status}: {vendor_message(response, vendor)}", request)
    if status == 429:
        raise RateLimited(message, retry_after=vendor.retry_after(response), cause=vendor.rate_limit_cause(response))
    if status in (401, 403):
        raise AuthFailed(message, status=status)
    if status >= 500 or status == 408:
        raise Retryable(message, status=status, retry_after=vendor.retry_after(response))
    raise Permanent(message, status=status)
