"""The HTTP app: every refusal writes nothing; a 202 means the event is committed."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import socket
import sqlite3
import threading

import httpx2
import pytest
from sqlalchemy import func, select

from alertbridge.api import create_app
from alertbridge.config import validate_config
from alertbridge.connectors import SOURCES, load
from alertbridge.connectors.roles import Poller
from alertbridge.service import Hub
from alertbridge.store import upgrade
from alertbridge.store.tables import cases, inbox, jobs
from support.examples import example_config
from support.procs import free_port, procs, wait_healthy  # noqa: F401 - procs is a fixture

SECRET = "hmac-key"


@pytest.fixture
async def hub(tmp_path):
    url = f"sqlite:///{tmp_path / 'api.db'}"
    upgrade(url)
    config = validate_config({
        "database": url,
        "admin_token": "admin-token",
        "max_body_bytes": 2048,
        "sources": {
            "bearer": {"type": "generic", "auth": {"mode": "bearer", "token": "tok"}},
            "signed": {"type": "generic", "auth": {"mode": "hmac", "secret": SECRET, "header": "X-Signature"}},
            "splunk": {"type": "splunk", "auth": {"mode": "query_token", "token": "qtok"}},
        },
        "sinks": {"cases": {"type": "http", "url": "http://127.0.0.1:9"}},
        "routes": [{"name": "all", "sink": "cases"}],
    })
    hub = Hub(config)
    yield hub
    await hub.aclose()


@pytest.fixture
async def client(hub):
    app = create_app(hub, run_loops=False)
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as c:
        yield c


async def counts(hub) -> tuple[int, int, int]:
    async with hub.store.read() as conn:
        return tuple([(await conn.execute(select(func.count()).select_from(t))).scalar() for t in (inbox, cases, jobs)])


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "reason"),
    [
        ("/hooks/nope", {"Authorization": "Bearer tok"}, b'{"title": "x"}', 404, "unknown source 'nope'"),
        ("/hooks/bearer", {"Authorization": "Bearer tok"}, b'{"title": "' + b"x" * 4000 + b'"}', 413, "larger than 2048"),
        ("/hooks/bearer", {}, b'{"title": "x"}', 401, "bearer credential missing or wrong"),
        ("/hooks/bearer", {"Authorization": "Bearer wrong"}, b'{"title": "x"}', 401, "wrong"),
        ("/hooks/signed", {"X-Signature": "sha256=00"}, b'{"title": "x"}', 401, "hmac"),
        ("/hooks/splunk?token=nope", {}, b'{"title": "x"}', 401, "query_token"),
        ("/hooks/bearer", {"Authorization": "Bearer tok"}, b'{"title": ', 400, "body is not JSON"),
        ("/hooks/bearer", {"Authorization": "Bearer tok"}, b'{"title": "\xff\xfe"}', 400, "not UTF-8"),
    ],
)
async def test_bad_requests_get_their_code_and_change_nothing(hub, client, path, headers, body, status, reason):
    before = await counts(hub)
    response = await client.post(path, content=body, headers=headers)
    assert response.status_code == status
    assert reason in response.json()["detail"]
    assert await counts(hub) == before


async def test_good_requests_are_committed_before_202(hub, client):
    body = json.dumps({"id": "1", "title": "Brute force"}).encode()
    bearer = await client.post("/hooks/bearer", content=body, headers={"Authorization": "Bearer tok"})
    signed = await client.post("/hooks/signed", content=body, headers={"X-Signature": sign(body)})
    query = await client.post("/hooks/splunk?token=qtok", content=body)
    assert [r.status_code for r in (bearer, signed, query)] == [202, 202, 202]
    async with hub.store.read() as conn:
        rows = (await conn.execute(select(inbox.c.id, inbox.c.source, inbox.c.body))).all()
    assert [(r.id, r.source, r.body) for r in rows] == [
        (bearer.json()["id"], "bearer", body), (signed.json()["id"], "signed", body), (query.json()["id"], "splunk", body)
    ]


async def test_a_delivery_under_a_root_path_takes_the_route_and_the_same_answers(hub):
    """Behind a proxy that mounts the hub under a prefix the hook is routed by FastAPI, to the same endpoint."""
    app = create_app(hub, run_loops=False)
    transport = httpx2.ASGITransport(app=app, root_path="/soc")
    async with httpx2.AsyncClient(transport=transport, base_url="http://hub") as c:
        refused = await c.post("/soc/hooks/bearer", content=b'{"title": "x"}', headers={"Authorization": "Bearer wrong"})
        assert (refused.status_code, await counts(hub)) == (401, (0, 0, 0))
        accepted = await c.post("/soc/hooks/bearer", content=b'{"title": "x"}', headers={"Authorization": "Bearer tok"})
    assert accepted.status_code == 202
    async with hub.store.read() as conn:
        assert (await conn.execute(select(inbox.c.id, inbox.c.source))).all() == [(accepted.json()["id"], "bearer")]


async def test_a_sender_gone_before_its_whole_body_gets_nothing_stored(hub):
    app = create_app(hub, run_loops=False)
    messages = iter([{"type": "http.request", "body": b'{"title": ', "more_body": True}, {"type": "http.disconnect"}])
    sent: list[dict] = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/hooks/bearer", "raw_path": b"/hooks/bearer", "root_path": "", "query_string": b"",
             "headers": [(b"authorization", b"Bearer tok"), (b"transfer-encoding", b"chunked")], "client": ("127.0.0.1", 9),
             "server": ("hub", 80)}  # fmt: skip
    await app(scope, receive, send)
    assert sent == []  # no one is left to answer
    assert await counts(hub) == (0, 0, 0)


async def test_the_hook_takes_posts_only(client):
    response = await client.get("/hooks/bearer", headers={"Authorization": "Bearer tok"})
    assert (response.status_code, response.headers["allow"]) == (405, "POST")


async def test_admin_api_needs_its_token(client):
    assert (await client.get("/api/stats")).status_code == 401
    assert (await client.get("/api/cases", headers={"Authorization": "Bearer nope"})).status_code == 401
    response = await client.get("/api/stats", headers={"Authorization": "Bearer admin-token"})
    assert response.status_code == 200 and response.json()["inbox_pending"] == 0


async def test_unparsable_payload_is_dead_lettered_with_its_body_and_replayable(hub, client):
    admin = {"Authorization": "Bearer admin-token"}
    body = b'{"no_title_here": true}'
    assert (await client.post("/hooks/bearer", content=body, headers={"Authorization": "Bearer tok"})).status_code == 202
    await hub.pipeline.process_batch()
    (dead,) = (await client.get("/api/dlq", headers=admin)).json()
    assert dead["kind"] == "ingest" and "title" in dead["last_error"]
    shown = (await client.get(f"/api/dlq/{dead['id']}", headers=admin)).json()
    assert shown["raw_body"] == body.decode()
    assert (await client.post(f"/api/dlq/{dead['id']}/replay", headers=admin)).json() == {"replayed": 1}
    assert (await client.post(f"/api/dlq/{dead['id']}/replay", headers=admin)).status_code == 404
    job = await hub.queue.claim()
    assert (await hub.runner.run(job)) == "dead"  # the payload is still unparsable: back in the list, body kept
    assert (await client.delete(f"/api/dlq/{dead['id']}", headers=admin)).json() == {"discarded": 1}
    assert (await client.get("/api/dlq", headers=admin)).json() == []


async def test_cases_health_and_metrics(hub, client):
    body = json.dumps({"id": "1", "title": "Impossible travel", "severity": "high"}).encode()
    await client.post("/hooks/bearer", content=body, headers={"Authorization": "Bearer tok"})
    await hub.pipeline.process_batch()
    (case,) = (await client.get("/api/cases", headers={"Authorization": "Bearer admin-token"})).json()
    assert case["key"] == "bearer|Impossible travel" and case["alert_count"] == 1 and case["ticket"] is None
    health = (await client.get("/healthz")).json()
    assert health["status"] == "ok" and health["jobs_pending"] == 1
    metrics = (await client.get("/metrics")).text
    assert 'alertbridge_jobs{state="pending"} 1.0' in metrics
    assert "alertbridge_alerts_received_total" in metrics
    status = await client.get("/")
    assert status.status_code == 200 and "Impossible travel" not in status.text  # titles only for signed-in console users


# --- the size cap over a real socket ------------------------------------------------------------------
# The in-process transport always sends Content-Length, so only a real server shows what a chunked body
# (no length at all) or a Content-Length that lies does: `alertbridge serve` on 127.0.0.1, raw bytes.

CAP = 2048
HEAD = b"POST /hooks/gen HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\n"
CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def exchange(port: int, *parts: bytes) -> tuple[int, bytes]:
    """Send raw request bytes over a new connection while reading the answer; return the status and body of the first response.

    A server that refuses a body (413, 400) answers and closes before it has taken all of it, as it should; the
    client's later writes then fail with a broken pipe or a reset. So the bytes are sent from a thread that stops
    at such a failure, and the answer is read meanwhile, as a real client must (10 s at most for each step).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        failures: list[BaseException] = []
        sender = threading.Thread(target=_send, args=(sock, parts, failures), name="raw-request-sender")
        sender.start()
        try:
            answer = _read_response(sock)
        finally:
            with contextlib.suppress(OSError):  # ENOTCONN when the server has reset the connection already
                sock.shutdown(socket.SHUT_RDWR)  # a sender still writing stops at once (a broken pipe)
            sender.join(timeout=10)
        assert not sender.is_alive(), "the sender did not stop"
    if failures:
        raise failures[0]
    return answer


def _send(sock: socket.socket, parts: tuple[bytes, ...], failures: list[BaseException]) -> None:
    try:
        for part in parts:
            sock.sendall(part)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before taking the rest (or the answer is read): the answer is what counts
    except OSError as exc:  # a timeout or anything else is a real failure: the test raises it
        failures.append(exc)


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Read one whole response (status line, headers, Content-Length body), even if the server resets the connection after it."""
    received = b""
    while True:
        head, separator, body = received.partition(b"\r\n\r\n")
        if separator:
            length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
            if len(body) >= length:
                return int(head.split()[1]), body[:length]
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""  # what the server sent before its reset has been read already; none is lost by the reset
        assert data, f"the server closed the connection before a whole answer (received {received!r})"
        received += data


async def test_bodies_over_the_cap_are_refused_however_their_size_is_stated(tmp_path, procs):
    db, port = tmp_path / "hub.db", free_port()
    config = tmp_path / "hub.json"
    config.write_text(json.dumps({"database": f"sqlite:///{db}", "listen": f"127.0.0.1:{port}", "max_body_bytes": CAP,
                                  "sources": {"gen": {"type": "generic", "auth": {"mode": "bearer", "token": "tok"}}}}))
    server = procs.start("serve", "serve", "--config", str(config))
    async with httpx2.AsyncClient() as http:
        await wait_healthy(http, f"http://127.0.0.1:{port}", server, procs)
    big = b'{"title": "' + b"x" * (2 * CAP) + b'"}'
    small = b'{"id": "1", "title": "fits"}'
    answers = {
        # No length at all: only counting the chunks as they arrive can stop it.
        "chunked over the cap": exchange(port, CHUNKED, chunk(big[: CAP // 2]), chunk(big[CAP // 2 : CAP + 100])),
        # The declared length alone refuses it, before a byte of the body is read.
        "declared over the cap": exchange(port, HEAD + b"Content-Length: %d\r\n\r\n" % len(big)),
        # Declared small, sent big: the server reads only what was declared, the rest is no request.
        "declared under, sent over": exchange(port, HEAD + b"Content-Length: 10\r\n\r\n", big),
        # A small Content-Length beside a long chunked body (request smuggling) is refused outright.
        "length and chunked": exchange(port, HEAD + b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n", chunk(big), b"0\r\n\r\n"),
        "chunk size that lies": exchange(port, CHUNKED, b"5\r\n" + big + b"\r\n0\r\n\r\n"),
    }
    statuses = {name: status for name, (status, _) in answers.items()}
    assert statuses == {"chunked over the cap": 413, "declared over the cap": 413, "declared under, sent over": 400,
                        "length and chunked": 400, "chunk size that lies": 400}, answers  # fmt: skip
    assert json.loads(answers["chunked over the cap"][1]) == {"detail": f"body larger than {CAP} bytes"}
    # A chunked body within the cap goes through whole: the refusals above are about size, not framing.
    status, body = exchange(port, CHUNKED, chunk(small[:10]), chunk(small[10:]), b"0\r\n\r\n")
    assert status == 202, body
    # The server's own count: the two refusals over the cap were its 413s, and nothing of theirs was stored.
    async with httpx2.AsyncClient() as http:
        metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    assert 'alertbridge_alerts_rejected_total{reason="too_large",source="gen"} 2.0' in metrics
    server.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT body FROM inbox").fetchall() == [(small,)]


POLLER_TYPES = sorted(t for t in SOURCES if issubclass(load(SOURCES, t), Poller))


@pytest.mark.parametrize("type_name", POLLER_TYPES)
async def test_a_poller_has_no_hook_endpoint(tmp_path, type_name):
    url = f"sqlite:///{tmp_path / 'polled.db'}"
    upgrade(url)
    source = example_config(load(SOURCES, type_name).Config, type_name)
    hub = Hub(validate_config({"database": url, "sources": {"polled": source}}))
    try:
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(hub, run_loops=False)), base_url="http://hub") as c:
            for headers in ({}, {"Authorization": "Bearer anything"}):
                response = await c.post("/hooks/polled", json={"id": "fake-1", "title": "FAKE: finance laptop compromised"}, headers=headers)
                assert (response.status_code, response.json()) == (404, {"detail": "source 'polled' is polled, not a webhook"})
        assert await counts(hub) == (0, 0, 0)
    finally:
        await hub.aclose()
