"""The Qualys API clients: basic auth on the API server, a JWT on the gateway (FIM), and the subscription's limits.

Every Qualys answer carries the subscription's limits
(https://qualysguard.qg2.apps.qualys.com/qwebhelp/fo_portal/api_doc/scans/get_started/http_headers.htm):
``X-RateLimit-Limit``, ``-Window-Sec``, ``-Remaining``, ``-ToWait-Sec`` and
``X-Concurrency-Limit-Limit``, ``-Running``. A blocked call is ``409 Conflict``
with a SIMPLE_RETURN body: code 1960 when too many calls of that API run at once,
1965 when the rate limit is spent. So the clients

- never have more calls in flight than ``max_concurrency``, lowered (never
  raised) to what ``X-Concurrency-Limit-Limit`` last said;
- after an answer with ``X-RateLimit-Remaining: 0`` refuse further calls to that
  API until ``X-RateLimit-ToWait-Sec`` has passed, raising ``RateLimited`` so
  that the core waits rather than a sleep in here;
- turn a 409 into ``RateLimited`` (1965) or ``Retryable`` (1960), with the wait
  the headers give.

Every call to the API server sends ``X-Requested-With`` (Qualys refuses calls
without it). A list page is streamed into a spooled temporary file — memory up
to 1 MiB, disk beyond — so a 200 MB detection list never sits in memory and a
page that fails to parse can still be dead-lettered as it came.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from typing import IO, Any, TypeVar

import httpx2
from pydantic import SecretStr

from ...errors import AuthFailed, BadPage, Permanent, RateLimited, Retryable
from .._http import HttpClient, TokenAuth, Vendor
from .records import UNREADABLE, NotThisDocument, simple_return
from .settings import QualysConfig

REQUESTED_WITH = "alertbridge"
SPOOL_IN_MEMORY = 1 << 20
DEAD_LETTER_LIMIT = 8 << 20  # the start of a bad page kept in the dead-letter list
ERROR_BODY_LIMIT = 64 << 10
CONCURRENCY_WAIT = 5.0  # a 1960 says other calls are running; they usually end within seconds
JWT_LIFETIME = 4 * 3600.0  # the gateway's tokens last four hours
JWT_MARGIN = 1800.0  # renewed half an hour before
QUALYS = Vendor("qualys")  # errors are SIMPLE_RETURN XML: the message is the body's start, CODE and TEXT included
T = TypeVar("T")


class Limits:
    """How many calls may run at once, and until when each API is blocked, as the subscription's headers last said."""

    def __init__(self, max_concurrency: int, clock: Callable[[], float]):
        self.allowed = max_concurrency
        self.running = 0
        self.blocked_until: dict[str, float] = {}
        self.clock = clock
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def slot(self, path: str) -> AsyncIterator[None]:
        """Hold one of the allowed concurrent calls; raise RateLimited while the API's rate limit is spent."""
        wait = self.blocked_until.get(path, 0.0) - self.clock()
        if wait > 0:
            raise RateLimited(f"qualys {path}: rate limit spent, next call allowed in {wait:.0f}s", retry_after=wait, cause="X-RateLimit-Remaining: 0")
        async with self._changed:
            await self._changed.wait_for(lambda: self.running < self.allowed)
            self.running += 1
        try:
            yield
        finally:
            async with self._changed:
                self.running -= 1
                self._changed.notify_all()

    def learn(self, path: str, headers: httpx2.Headers) -> None:
        """Take in the limits an answer reports."""
        concurrency = _number(headers.get("x-concurrency-limit-limit"))
        if concurrency is not None and concurrency >= 1:
            self.allowed = min(self.allowed, int(concurrency))
        to_wait = _number(headers.get("x-ratelimit-towait-sec")) or 0.0
        if _number(headers.get("x-ratelimit-remaining")) == 0 and to_wait > 0:
            self.blocked_until[path] = self.clock() + to_wait


def conflict(response: httpx2.Response, vendor: str) -> Retryable:
    """Turn a 409 (a call the subscription's limits blocked) into the error that says how long to wait."""
    code, text = simple_return(response.content[:ERROR_BODY_LIMIT])
    to_wait = _number(response.headers.get("x-ratelimit-towait-sec"))
    message = f"{vendor} {response.request.method} {response.request.url.path} -> 409 ({code or 'no code'}): {text or 'conflict'}"
    if code == "1965" or (to_wait or 0) > 0:
        return RateLimited(message, retry_after=to_wait, cause=f"qualys {code or 'rate limit'}")
    return Retryable(message, status=409, retry_after=CONCURRENCY_WAIT)


class Page:
    """One answer body, spooled: read it as a file, or take its start for the dead-letter list."""

    def __init__(self, spool: IO[bytes], size: int):
        self.file = spool
        self.size = size

    async def read(self, reader: Callable[[IO[bytes]], T], what: str) -> T:
        """Run a page reader in a worker thread, then drop the page; one that does not parse raises BadPage keeping its start."""
        try:
            return await asyncio.to_thread(reader, self.file)
        except (*UNREADABLE, NotThisDocument) as exc:
            raise BadPage(f"qualys {what}: the page does not parse ({type(exc).__name__}: {exc}); {self.size} bytes received",
                          raw=self.head(DEAD_LETTER_LIMIT)) from None
        finally:
            self.close()

    def head(self, limit: int) -> bytes:
        """Return up to `limit` bytes from the start of the page."""
        self.file.seek(0)
        data = self.file.read(limit)
        self.file.seek(0)
        return data

    def close(self) -> None:
        """Drop the spooled body."""
        self.file.close()


class QualysApi:
    """Calls the Qualys API server (VM, PC, KnowledgeBase) as one API user, within the subscription's limits."""

    def __init__(self, *, connector: str, url: str, username: str, password: SecretStr, timeout: float, max_concurrency: int,
                 transport: httpx2.AsyncBaseTransport | None = None, clock: Callable[[], float] = time.monotonic):
        self.base_url = url.rstrip("/")
        self.limits = Limits(max_concurrency, clock)
        self._http = HttpClient(connector, QUALYS, timeout=timeout, auth=httpx2.BasicAuth(username, password.get_secret_value()),
                                headers={"X-Requested-With": REQUESTED_WITH, "Accept": "text/xml"}, transport=transport)

    async def fetch(self, operation: str, target: str, params: dict[str, str] | None = None) -> Page:
        """GET an API path (or a WARNING/URL the API gave) and spool the answer; raise the typed error of a failure."""
        url = target if target.startswith(("http://", "https://")) else self.base_url + target
        if not url.startswith(self.base_url + "/"):
            # The basic-auth credentials go wherever the URL points: only ever to the configured platform.
            raise Permanent(f"qualys: refusing to follow {url.split('?')[0]!r}, which is outside {self.base_url}")
        path = httpx2.URL(url).path
        async with self.limits.slot(path), self._http.stream(operation, "GET", url, params=params, accept=(409,)) as response:
            self.limits.learn(path, response.headers)
            if response.status_code == 409:
                await response.aread()
                raise conflict(response, "qualys")
            if response.status_code >= 300:
                raise Permanent(f"qualys GET {path} -> {response.status_code}")  # a redirect: the API never sends one
            return await _spool(response)

    async def aclose(self) -> None:
        """Release connections."""
        await self._http.aclose()


class GatewayToken(TokenAuth):
    """The gateway's JWT: ``POST /auth`` with the user name and password, answered with the token as text; it lasts four hours."""

    def __init__(self, url: str, username: str, password: SecretStr, clock: Callable[[], float]):
        super().__init__(QUALYS, margin=JWT_MARGIN, clock=clock)
        self._url = url + "/auth"
        self._form = {"username": username, "password": password.get_secret_value(), "token": "true"}

    def token_request(self) -> httpx2.Request:
        """Return the form POST of the user's credentials."""
        return httpx2.Request("POST", self._url, data=self._form)

    def read_token(self, body: Any) -> tuple[str, float]:
        """Return the JWT the gateway answered as text."""
        token = body.strip() if isinstance(body, str) else ""
        if not token or " " in token or "<" in token:
            raise AuthFailed("qualys POST /auth: the gateway answered without a token")
        return token, JWT_LIFETIME


class GatewayApi:
    """Calls the Qualys gateway (FIM) with its JWT, within the subscription's limits."""

    def __init__(self, *, connector: str, url: str, username: str, password: SecretStr, timeout: float, max_concurrency: int,
                 transport: httpx2.AsyncBaseTransport | None = None, clock: Callable[[], float] = time.monotonic):
        self.base_url = url.rstrip("/")
        self.limits = Limits(max_concurrency, clock)
        self._http = HttpClient(connector, QUALYS, timeout=timeout, auth=GatewayToken(self.base_url, username, password, clock),
                                transport=transport)

    async def post_json(self, operation: str, path: str, body: dict[str, Any]) -> Any:
        """POST a JSON body to a gateway path and return the decoded answer."""
        async with self.limits.slot(path):
            response = await self._http.call(operation, "POST", self.base_url + path, json=body, accept=(409,))
        self.limits.learn(path, response.headers)
        if response.status_code == 409:
            raise conflict(response, "qualys")
        try:
            return response.json()
        except ValueError:
            raise Retryable(f"qualys POST {path}: the answer is not JSON") from None

    async def aclose(self) -> None:
        """Release connections."""
        await self._http.aclose()


Client = TypeVar("Client", "QualysApi", "GatewayApi")


def connect(api: type[Client], name: str, config: QualysConfig, transport: httpx2.AsyncBaseTransport | None = None) -> Client:
    """Build a client for a source's platform and user (`name` labels its call metrics)."""
    return api(connector=name, url=config.base_url(), username=config.username, password=config.password, timeout=config.timeout,
               max_concurrency=config.max_concurrency, transport=transport)


async def _spool(response: httpx2.Response) -> Page:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - the Page owns and closes it
    size = 0
    try:
        async for chunk in response.aiter_bytes():
            spool.write(chunk)
            size += len(chunk)
    except BaseException:
        spool.close()  # the stream's own handler turns a broken or late answer into a typed error
        raise
    spool.seek(0)
    return Page(spool, size)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
