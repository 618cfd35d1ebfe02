"""Turn HTTP outcomes into alertbridge's typed errors, the same way for every vendor.

Model: Alertmanager's ``notify/util.go`` ``Retrier.Check`` — 5xx and 429 are
worth retrying, other 4xx are not, and the vendor's message is kept.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Awaitable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx2

from ..errors import AuthFailed, Permanent, RateLimited, Retryable

_SECRET_HEADER = re.compile(r"authorization|token|key|secret", re.IGNORECASE)


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


def vendor_message(response: httpx2.Response, limit: int = 500) -> str:
    """Return the vendor's own error text: Jira's errorMessages/errors, a JSON message, or the body's start."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        # Proxies and rate limiters often answer with HTML, not JSON.
        return response.text[:limit].strip() or response.reason_phrase
    if isinstance(body, dict):
        parts = [str(m) for m in body.get("errorMessages") or []]
        errors = body.get("errors")
        if isinstance(errors, dict):
            parts += [f"{k}: {v}" for k, v in errors.items()]
        elif isinstance(errors, list):
            parts += [json.dumps(e)[:200] for e in errors]
        # OAuth servers put the human text in error_description and only a code in error.
        for key in ("message", "error_description", "error", "detail"):
            if isinstance(body.get(key), str | dict) and not parts:
                parts.append(str(body[key]))
        if parts:
            return "; ".join(parts)[:limit]
    return json.dumps(body)[:limit]


def _credentials(request: httpx2.Request) -> list[str]:
    """The secrets a request carries in its credential headers, a basic auth password included."""
    found = []
    for name, value in request.headers.items():
        if _SECRET_HEADER.search(name):
            scheme, _, rest = value.partition(" ")
            found += [value, rest]
            if scheme.lower() == "basic":
                with contextlib.suppress(ValueError):  # binascii.Error and UnicodeDecodeError are ValueErrors
                    found.append(base64.b64decode(rest).decode().partition(":")[2])
    return sorted({secret for secret in found if len(secret) >= 6}, key=len, reverse=True)


def check_response(response: httpx2.Response, *, vendor: str) -> httpx2.Response:
    """Return the response if it succeeded; raise the typed error that says what to do otherwise."""
    status = response.status_code
    if status < 400:
        return response
    message = f"{vendor} {response.request.method} {response.request.url.path} -> {status}: {vendor_message(response)}"
    for secret in _credentials(response.request):  # a gateway may quote the request back: keep its secrets out
        message = message.replace(secret, "[redacted]")
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    if status == 429:
        # Atlassian's points-based quotas send the reason under a beta name.
        reason = response.headers.get("ratelimit-reason") or response.headers.get("x-beta-ratelimit-reason") or "unknown"
        raise RateLimited(message, retry_after=retry_after, reason=reason)
    if status in (401, 403):
        raise AuthFailed(message, status=status)
    if status >= 500 or status == 408:
        raise Retryable(message, status=status, retry_after=retry_after)
    raise Permanent(message, status=status)


async def send(call: Awaitable[httpx2.Response], *, vendor: str) -> httpx2.Response:
    """Await an httpx2 call; map transport failures and bad statuses to typed errors."""
    try:
        response = await call
    except httpx2.TimeoutException as exc:
        raise Retryable(f"{vendor}: timed out ({type(exc).__name__})") from exc
    except httpx2.TransportError as exc:
        raise Retryable(f"{vendor}: {type(exc).__name__}: {exc}") from exc
    return check_response(response, vendor=vendor)
