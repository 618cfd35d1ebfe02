"""The one HTTP layer: a request never sent is told apart from one whose answer was lost; one deadline; token flows."""

from __future__ import annotations

import asyncio
import socket

import httpx2
import pytest

from alertbridge.connectors._http import HttpClient, OAuth2ClientCredentials, Vendor, check_response, parse_retry_after
from alertbridge.errors import AuthFailed, Permanent, RateLimited, Reason, Retryable, TimedOut

VENDOR = Vendor("example")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_refused_connection_was_never_sent():
    client = HttpClient("c", VENDOR, base_url=f"http://127.0.0.1:{closed_port()}", timeout=5)
    with pytest.raises(Retryable) as caught:
        await client.call("list", "GET", "/things")
    await client.aclose()
    assert caught.value.sent is False and caught.value.reason == Reason.not_sent


async def test_a_server_that_never_answers_got_the_request():
    received = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        received.set()
        await asyncio.sleep(30)  # the answer is lost; the deadline ends the call

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HttpClient("c", VENDOR, base_url=f"http://127.0.0.1:{port}", timeout=0.5)
    try:
        with pytest.raises(TimedOut) as caught:
            await client.call("create", "POST", "/things", json={"a": 1})
    finally:
        await client.aclose()
        server.close()
    assert received.is_set() and caught.value.sent is True and caught.value.reason == Reason.timeout


async def test_one_deadline_covers_the_token_request_and_the_call():
    async def slow(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(0.3)  # each leg fits a per-phase timeout; together they pass the deadline
        if request.url.path == "/token":
            return httpx2.Response(200, json={"access_token": "t", "expires_in": 3600})
        return httpx2.Response(200, json={})

    auth = OAuth2ClientCredentials(VENDOR, "http://api.test/token", {"client_id": "i", "client_secret": "s"}, default_lifetime=3600)
    client = HttpClient("c", VENDOR, base_url="http://api.test", auth=auth, timeout=0.5, transport=httpx2.MockTransport(slow))
    with pytest.raises(TimedOut):
        await client.call("list", "GET", "/things")
    await client.aclose()


async def test_a_401_gets_one_fresh_token_and_one_resend_then_stands():
    issued: list[str] = []
    refuse = {"always": False}

    def api(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/token":
            issued.append(f"token-{len(issued)}")
            return httpx2.Response(200, json={"access_token": issued[-1], "expires_in": 3600})
        bearer = request.headers["authorization"].removeprefix("Bearer ")
        if refuse["always"] or bearer == "token-0":  # the first token was revoked
            return httpx2.Response(401, json={"message": "token revoked"})
        return httpx2.Response(200, json={"ok": bearer})

    auth = OAuth2ClientCredentials(VENDOR, "http://api.test/token", {"client_id": "i", "client_secret": "s"}, default_lifetime=3600)
    client = HttpClient("c", VENDOR, base_url="http://api.test", auth=auth, timeout=5, transport=httpx2.MockTransport(api))
    assert client.json_object(await client.call("list", "GET", "/things")) == {"ok": "token-1"}
    assert client.json_object(await client.call("list", "GET", "/things")) == {"ok": "token-1"} and issued == ["token-0", "token-1"]
    refuse["always"] = True
    with pytest.raises(AuthFailed, match="token revoked"):
        await client.call("list", "GET", "/things")
    assert len(issued) == 3  # one renewal for that call, not a loop
    await client.aclose()


async def test_a_refused_token_request_is_a_credential_to_fix_unless_it_is_weather():
    answers = {"status": 400}

    def api(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(answers["status"], json={"error": "unauthorized_client", "error_description": "AADSTS700016: no such app"})

    auth = OAuth2ClientCredentials(VENDOR, "http://login.test/token", {"client_id": "i", "client_secret": "s"}, default_lifetime=3600)
    client = HttpClient("c", VENDOR, auth=auth, timeout=5, transport=httpx2.MockTransport(api))
    with pytest.raises(AuthFailed, match="AADSTS700016"):
        await client.call("list", "GET", "http://api.test/things")
    answers["status"] = 503
    with pytest.raises(Retryable) as caught:
        await client.call("list", "GET", "http://api.test/things")
    assert not isinstance(caught.value, Permanent) and caught.value.reason == Reason.server_error
    await client.aclose()


@pytest.mark.parametrize(("status", "error", "reason"), [
    (429, RateLimited, Reason.rate_limited), (503, Retryable, Reason.server_error), (408, Retryable, Reason.server_error),
    (401, AuthFailed, Reason.auth), (403, AuthFailed, Reason.auth), (400, Permanent, Reason.client_error), (404, Permanent, Reason.client_error),
])  # fmt: skip
def test_statuses_map_to_one_error_tree_and_one_reason(status, error, reason):
    response = httpx2.Response(status, json={"message": "no"}, headers={"Retry-After": "7"}, request=httpx2.Request("GET", "http://x/y?q=secret"))
    with pytest.raises(error) as caught:
        check_response(response, VENDOR)
    assert caught.value.reason == reason and "q=secret" not in str(caught.value) and "example GET /y -> " in str(caught.value)
    if isinstance(caught.value, Retryable):
        assert caught.value.retry_after == 7 and caught.value.sent


def test_a_vendor_hook_reads_its_own_error_shape():
    class Graph(Vendor):
        def message(self, body):
            return f"{body['error']['code']}: {body['error']['message']}"

    response = httpx2.Response(400, json={"error": {"code": "BadRequest", "message": "Invalid filter"}}, request=httpx2.Request("GET", "http://g/a"))
    with pytest.raises(Permanent, match="BadRequest: Invalid filter"):
        check_response(response, Graph("graph"))


def test_secrets_quoted_back_by_a_gateway_are_redacted():
    secret = "s3cr3t-token-value"
    request = httpx2.Request("GET", "http://x/y", headers={"Authorization": f"Bearer {secret}"})
    response = httpx2.Response(502, text=f"upstream refused Bearer {secret}", request=request)
    with pytest.raises(Retryable) as caught:
        check_response(response, VENDOR)
    assert secret not in str(caught.value) and "[redacted]" in str(caught.value)


def test_retry_after_in_seconds_and_as_a_date():
    assert parse_retry_after("12") == 12 and parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
