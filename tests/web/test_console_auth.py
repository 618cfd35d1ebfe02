"""The console lets in only who it should, refuses (and logs) every action without a user or a CSRF token, and leaks no secret."""

from __future__ import annotations

import json
import re

import httpx2
import pytest

from alertbridge.api import create_app
from alertbridge.config import validate_config
from alertbridge.logs import configure_logging
from alertbridge.service import Hub
from alertbridge.store import upgrade

ADMIN = "console-admin-token-1234"
SINK_TOKEN = "sink-bearer-secret-5678"
ACTIONS = ["/ui/logout", "/ui/cases/1/retry", "/ui/dlq/replay", "/ui/dlq/2/replay", "/ui/dlq/2/discard", "/ui/config/check"]


def make_hub(tmp_path, **console) -> Hub:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    upgrade(url)
    return Hub(validate_config({
        "database": url, "admin_token": ADMIN, "console": console,
        "sources": {"gen": {"type": "generic", "auth": {"mode": "bearer", "token": "hook-token-abcd"}}},
        "sinks": {"cases": {"type": "http", "url": "http://127.0.0.1:9", "token": SINK_TOKEN}},
        "routes": [{"name": "all", "sink": "cases"}],
    }))


@pytest.fixture
async def hub(tmp_path):
    hub = make_hub(tmp_path)
    await hub.inbox.put("gen", json.dumps({"title": "Secret project Falcon", "severity": "high"}).encode())
    await hub.inbox.put("gen", json.dumps({"no_title": 1, "api_token": "leaked-in-payload-999"}).encode())
    await hub.pipeline.process_batch()
    yield hub
    await hub.aclose()


def client_for(hub: Hub, peer: str = "127.0.0.1") -> httpx2.AsyncClient:
    transport = httpx2.ASGITransport(app=create_app(hub, run_loops=False), client=(peer, 50000))
    return httpx2.AsyncClient(transport=transport, base_url="http://hub")


async def sign_in(client: httpx2.AsyncClient) -> str:
    """Log in with the admin token through the login form; return the session's CSRF token."""
    form = await client.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    response = await client.post("/ui/login", data={"token": ADMIN, "csrf": token, "next": "/ui/cases"})
    assert response.status_code == 303 and response.headers["location"] == "/ui/cases"
    return csrf_of((await client.get("/ui")).text)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf(?:-token)?" (?:value|content)="([^"]+)"', page).group(1)


@pytest.fixture
def logged(capsys):
    """Return a function giving the log events written since it was last called (the hub's own JSON log lines)."""
    configure_logging("INFO")  # as `alertbridge serve` does; structlog caches loggers, so capture what really is written
    capsys.readouterr()

    def events() -> list[dict]:
        return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]

    return events


def refusals(logs: list[dict]) -> list[tuple[str, int, str]]:
    return [(e["path"], e["status"], e["reason"]) for e in logs if e["event"] == "console action refused"]


async def test_status_page_shows_no_case_to_anyone_unauthenticated(hub):
    async with client_for(hub) as client:
        page = await client.get("/")
        assert page.status_code == 200 and "Secret project Falcon" not in page.text and "Sign in" in page.text
        for path in ("/ui", "/ui/cases", "/ui/cases/1", "/ui/dlq", "/ui/dlq/2", "/ui/config", "/ui/reports"):
            response = await client.get(path)
            assert response.status_code == 303 and response.headers["location"].startswith("/ui/login?next="), path
            assert "Secret project Falcon" not in response.text


async def test_an_unauthenticated_action_is_refused_with_401_and_logged(hub, logged):
    async with client_for(hub) as client:
        logged()
        for path in ACTIONS:
            response = await client.post(path, data={"csrf": "guessed", "kind": "ingest"})
            assert response.status_code == 401, path
        logs = logged()
    assert refusals(logs) == [(path, 401, "not signed in") for path in ACTIONS]
    assert await dead_count(hub) == 1  # nothing was replayed


async def test_an_action_without_the_csrf_token_is_refused_with_403_and_logged(hub, logged):
    async with client_for(hub) as client:
        csrf = await sign_in(client)
        logged()
        wrong = csrf[:-1] + ("1" if csrf.endswith("0") else "0")  # one character off, whatever the token's last one was
        for path in ACTIONS:
            assert (await client.post(path, data={"kind": "ingest"})).status_code == 403, path
            assert (await client.post(path, data={"csrf": wrong, "kind": "ingest"})).status_code == 403, path
        # The right token from another site's page (a forged form) is refused too.
        forged = await client.post("/ui/dlq/2/replay", data={"csrf": csrf}, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
        logs = logged()
        assert await dead_count(hub) == 1
        assert refusals(logs) == [(p, 403, "CSRF token missing or wrong") for p in ACTIONS for _ in (1, 2)] + [
            ("/ui/dlq/2/replay", 403, "cross-origin request")]
        logged()
        done = await client.post("/ui/dlq/2/replay", data={"csrf": csrf}, headers={"Origin": "http://hub"})
        logs = logged()
        assert done.status_code == 303 and "replayed" in done.headers["location"]
        assert await dead_count(hub) == 0
        assert [e["user"] for e in logs if e["event"] == "dead letter replayed"] == ["admin"]


async def test_login_needs_the_token_and_its_own_form(hub, logged):
    async with client_for(hub) as client:
        logged()
        assert (await client.post("/ui/login", data={"token": ADMIN, "csrf": "x"})).status_code == 403  # no form cookie
        logs = logged()
        assert refusals(logs) == [("/ui/login", 403, "login form without its CSRF token")]
        token = csrf_of((await client.get("/ui/login")).text)
        wrong = await client.post("/ui/login", data={"token": ADMIN + "x", "csrf": token})
        assert wrong.status_code == 303 and "failed=1" in wrong.headers["location"] and "ab_session" not in client.cookies
        away = await client.post("/ui/login", data={"token": ADMIN, "csrf": token, "next": "//evil.example/x"})
        assert away.headers["location"] == "/ui"  # no open redirect
        assert "Secret project Falcon" in (await client.get("/ui/cases")).text
        session = client.cookies["ab_session"]
    async with client_for(hub) as other:
        other.cookies.set("ab_session", session)
        assert (await other.get("/ui/cases")).status_code == 200
    async with client_for(hub) as other:  # a tampered session cookie is no session
        other.cookies.set("ab_session", session[:-2] + ("00" if not session.endswith("00") else "11"))
        assert (await other.get("/ui/cases")).status_code == 303


async def test_a_trusted_proxy_header_signs_in_and_an_untrusted_one_is_ignored(tmp_path, logged):
    hub = make_hub(tmp_path, identity_header="X-Forwarded-User", trusted_proxies=["10.0.0.5"])
    try:
        async with client_for(hub, peer="10.0.0.5") as proxied:
            page = await proxied.get("/ui/cases", headers={"X-Forwarded-User": "alice@soc"})
            assert page.status_code == 200 and "alice@soc" in page.text
            action = await proxied.post("/ui/dlq/replay", data={"kind": "ingest", "csrf": csrf_of(page.text)},
                                        headers={"X-Forwarded-User": "alice@soc"})
            assert action.status_code == 303
            # Bob's page token is not Alice's.
            assert (await proxied.post("/ui/dlq/replay", data={"kind": "ingest", "csrf": csrf_of(page.text)},
                                       headers={"X-Forwarded-User": "bob@soc"})).status_code == 403
        async with client_for(hub, peer="192.0.2.9") as direct:
            logged()
            response = await direct.get("/ui/cases", headers={"X-Forwarded-User": "alice@soc"})
            logs = logged()
            assert response.status_code == 303
            assert [e["peer"] for e in logs if e["event"] == "identity header from an untrusted peer ignored"] == ["192.0.2.9"]
    finally:
        await hub.aclose()


async def test_pages_show_no_secret(hub):
    async with client_for(hub) as client:
        await sign_in(client)
        pages = {path: (await client.get(path)).text for path in ("/ui", "/ui/cases", "/ui/cases/1", "/ui/dlq", "/ui/dlq/2", "/ui/config")}
    for path, text in pages.items():
        for secret in (ADMIN, SINK_TOKEN, "hook-token-abcd", "leaked-in-payload-999"):
            assert secret not in text, (path, secret)
    assert "[redacted]" in pages["/ui/dlq/2"] and "[redacted]" in pages["/ui/config"]
    assert "no title at" in pages["/ui/dlq/2"]


async def dead_count(hub: Hub) -> int:
    return (await hub.stats())["jobs_dead"]
