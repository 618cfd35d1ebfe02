"""One vendor API's HTTP client: a connection pool, an auth flow, one deadline per call, typed errors, metrics.

httpx timeouts bound each phase (connect, read, write, pool), not the whole
call, and an in-process transport has none: ``asyncio.timeout`` gives each call
one deadline that covers everything, the auth flow's token request and its one
re-send after a 401 included. Whether a failed request ever reached the vendor
is read off the transport's trace (``send_request_headers``): a request that
never left is ``Retryable(sent=False)``, one whose answer was lost is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import structlog

from ...errors import ConnectorError, RateLimited, Retryable, TimedOut
from ...metrics import RATE_LIMITED, SINK_CALLS
from .errors import Vendor, check_response, redact
from .gate import wait_turn

log = structlog.get_logger(__name__)


@functools.cache
def shared_tls() -> ssl.SSLContext:
    """Return the process's one TLS client context (the system's CAs, or SSL_CERT_FILE/SSL_CERT_DIR as httpx reads them)."""
    # Each default context loads the whole CA bundle: ~20 ms of CPU per client, a tenth of a hub's start with a dozen
    # connectors (more under load). The context holds no per-connection state, so every client can share it.
    return httpx2.create_ssl_context()


# The transport failed before the request was written: nothing reached the vendor.
NEVER_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)


class _Progress:
    """Follows a request through the transport's trace events: did its headers start to leave?"""

    def __init__(self) -> None:
        self.traced = False
        self.sent = False

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        self.traced = True
        if event.endswith("send_request_headers.started"):
            self.sent = True

    @property
    def maybe_sent(self) -> bool:
        """Tell whether the vendor may have the request; a transport that traces nothing (in-process) is taken to have sent it."""
        return self.sent or not self.traced


class HttpClient:
    """Calls one vendor API for one connector; `operation` names the endpoint in metrics."""

    def __init__(
        self,
        connector: str,
        vendor: Vendor,
        *,
        timeout: float,
        base_url: str = "",
        auth: httpx2.Auth | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        observe: Callable[[str, httpx2.Response], None] | None = None,
        max_concurrency: int | None = None,
    ):
        self.connector = connector
        self.vendor = vendor
        self.timeout = timeout
        self._observe = observe  # sees every answer before it is checked (Jira paces itself by them)
        # At most `max_concurrency` calls in flight (streams aside), counting those waiting for the hub's gate.
        self._slots = asyncio.Semaphore(max_concurrency) if max_concurrency else contextlib.nullcontext()
        self._client = httpx2.AsyncClient(
            base_url=base_url, auth=auth, headers={"Accept": "application/json", **(headers or {})},
            timeout=timeout, transport=transport, verify=shared_tls() if transport is None else True,
        )  # fmt: skip

    async def call(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        accept: tuple[int, ...] = (),
    ) -> httpx2.Response:
        """Send one request and return the answer; raise the typed error otherwise (statuses in `accept` return)."""
        outcome = "ok"
        try:
            response = await self._exchange(method, url, params, json, data, files, headers, content)
            if self._observe is not None:
                self._observe(operation, response)
            return response if response.status_code in accept else check_response(response, self.vendor)
        except ConnectorError as exc:
            outcome = exc.reason.value
            if isinstance(exc, RateLimited):
                RATE_LIMITED.labels(self.connector, exc.cause).inc()
                log.warning("rate limited", connector=self.connector, operation=operation, cause=exc.cause, retry_after=exc.retry_after)
            raise
        finally:
            SINK_CALLS.labels(self.connector, operation, outcome).inc()

    def json_object(self, response: httpx2.Response) -> dict[str, Any]:
        """Return an answer's JSON object; a 2xx that is not one (a proxy's page, a hiccup) is worth retrying later."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            where = f"{self.vendor.name} {response.request.method} {response.request.url.path}"
            raise Retryable(f"{where}: the answer is not a JSON object")
        return body

    async def _exchange(
        self, method: str, url: str, params: Any, json: Any, data: Any, files: Any, headers: Any, content: bytes | None = None
    ) -> httpx2.Response:
        progress = _Progress()
        request = self._client.build_request(
            method, url, params=params, json=json, content=content, data=data, files=files, headers=headers, extensions={"trace": progress}
        )
        async with self._slots:
            # The slot first, then the budget: a call sent the moment its send time comes, never queued after it (a burst).
            await wait_turn(self.connector)
            with self._typed(request, progress):
                async with asyncio.timeout(self.timeout):
                    return await self._client.send(request)

    @contextlib.asynccontextmanager
    async def stream(self, operation: str, method: str, url: str, *, params: dict[str, Any] | None = None,
                     accept: tuple[int, ...] = ()) -> AsyncIterator[httpx2.Response]:
        """Send one request and hand over its answer unread, to be read in chunks; the deadline covers the reading too."""
        outcome = "ok"
        await wait_turn(self.connector)
        progress = _Progress()
        request = self._client.build_request(method, url, params=params, extensions={"trace": progress})
        try:
            with self._typed(request, progress):
                async with asyncio.timeout(self.timeout):
                    response = await self._client.send(request, stream=True)
                    try:
                        if response.status_code >= 400 and response.status_code not in accept:
                            await response.aread()
                            check_response(response, self.vendor)
                        yield response
                    finally:
                        await response.aclose()
        except ConnectorError as exc:
            outcome = exc.reason.value
            raise
        finally:
            SINK_CALLS.labels(self.connector, operation, outcome).inc()

    @contextlib.contextmanager
    def _typed(self, request: httpx2.Request, progress: _Progress) -> Iterator[None]:
        """Turn what the transport raises (and the deadline) into typed errors, saying whether the request left."""
        where = f"{self.vendor.name} {request.method} {request.url.path}"
        try:
            yield
        except TimeoutError:
            raise TimedOut(f"{where}: no answer within {self.timeout:g}s", sent=progress.maybe_sent) from None
        except NEVER_SENT as exc:
            raise Retryable(f"{where}: not sent: {type(exc).__name__}", sent=False) from None
        except httpx2.TimeoutException as exc:
            raise TimedOut(f"{where}: {type(exc).__name__}", sent=progress.maybe_sent) from None
        except httpx2.TransportError as exc:
            # The text of a transport error may quote the request: keep its secrets out.
            raise Retryable(redact(f"{where}: {type(exc).__name__}: {exc}", request), sent=progress.maybe_sent) from None

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()
