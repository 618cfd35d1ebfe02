"""Request plumbing shared by the emulator's routes: state, flavour, authentication, bodies, paging, refusals."""

import base64
import binascii
import json
import math
from collections.abc import Mapping
from email import policy
from email.parser import BytesHeaderParser

from fastapi import Request

from .fields import Api
from .seed import USERS
from ..faults import Faults, Refusals, TokenBucket
from .state import JiraError, JiraSandboxSettings, JiraState

NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."
SEARCH_PAGE_LIMIT = 100  # Jira caps maxResults silently rather than failing
NEAR_LIMIT_SHARE = 0.2  # Jira adds X-RateLimit-NearLimit when less than 20% of the budget remains


def state_of(request: Request) -> JiraState:
    """Return the site's in-memory state."""
    return request.app.state.jira


def api_of(request: Request) -> Api:
    """Return the flavour (2 or 3) the request came in on, with the root for `self` links."""
    version = int(request.url.path.split("/")[3])
    return Api(version=version, root=str(request.base_url).rstrip("/"))


def authenticate(request: Request) -> str:
    """Accept basic `email:api_token` or `Bearer pat`; return the caller's accountId, or raise 401."""
    settings = state_of(request).faults
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials == settings.pat:
        return USERS[0].account_id
    if scheme.lower() == "basic":
        try:
            login, _, secret = base64.b64decode(credentials).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            login, secret = "", ""
        if login in (settings.email, USERS[0].name) and secret == settings.api_token:
            return USERS[0].account_id
        # The other seeded people (the analyst) log in with the site's token too, so `currentUser()` can be tried.
        other = next((user for user in USERS[1:] if login in (user.email, user.name)), None)
        if other is not None and secret == settings.api_token:
            return other.account_id
    # Jira tells a failed login from a missing one in this header: https://confluence.atlassian.com/jirakb/-1047552767.html
    headers = {"X-Seraph-LoginReason": "AUTHENTICATED_FAILED"} if scheme else {}
    raise JiraError(401, [NOT_AUTHENTICATED], headers=headers)


async def json_body(request: Request) -> dict:
    """Return the request's JSON object, or raise Jira's 400 for a body it cannot read."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as error:
        raise JiraError(400, [f"Unexpected character in the request body: {error}"]) from None
    if not isinstance(body, dict):
        raise JiraError(400, ["Can not deserialize the request body: a JSON object is expected."])
    return body


def page(arguments: Mapping, default_size: int = 50, limit: int = SEARCH_PAGE_LIMIT) -> tuple[int, int]:
    """Return (startAt, maxResults) from query or body arguments, with Jira's silent cap on the size."""
    try:
        start = max(0, int(arguments.get("startAt", 0)))
        size = int(arguments.get("maxResults", default_size))
    except (TypeError, ValueError):
        raise JiraError(400, ["startAt and maxResults must be integers."]) from None
    return start, max(0, min(size, limit))


class JiraRefusals(Refusals):
    """Jira's error body, and the RateLimit-Reason and X-RateLimit-NearLimit headers of its rate limits."""

    def __init__(self, settings: JiraSandboxSettings):
        self.settings = settings

    def error(self, status: int, message: str) -> tuple[bytes, dict[str, str]]:
        """Answer in Jira's shape: {"errorMessages": [...], "errors": {}}."""
        return json.dumps({"errorMessages": [message], "errors": {}}).encode(), {"Content-Type": "application/json;charset=UTF-8"}

    def throttled(self, faults: Faults, wait: float, bucket: TokenBucket | None) -> dict[str, str]:
        """Add the reason Jira gives for a 429."""
        return super().throttled(faults, wait, bucket) | {"RateLimit-Reason": self.settings.rate_limit_reason}

    def budget(self, bucket: TokenBucket) -> dict[str, str]:
        """Add X-RateLimit-NearLimit once less than a fifth of the budget remains."""
        headers = super().budget(bucket)
        return headers | ({"X-RateLimit-NearLimit": "true"} if math.floor(bucket.tokens) < NEAR_LIMIT_SHARE * bucket.capacity else {})


def form_files(content_type: str, body: bytes, field: str) -> list[tuple[str, str, bytes]]:
    """Return (filename, content type, exact bytes) of each multipart/form-data part named `field`."""
    boundary = BytesHeaderParser(policy=policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode()).get_boundary()
    if not content_type.lower().startswith("multipart/form-data") or not boundary:
        return []
    files = []
    # Cut the parts by hand: a parser would read a message/rfc822 upload (an .eml) as a message, not as its bytes.
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        head, separator, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = BytesHeaderParser(policy=policy.HTTP).parsebytes(head + b"\r\n\r\n")
        if separator and headers.get_param("name", header="content-disposition") == field:
            files.append((headers.get_filename() or "unnamed", headers.get_content_type(), content.removesuffix(b"\r\n")))
    return files
