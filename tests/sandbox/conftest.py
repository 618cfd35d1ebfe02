"""Fixtures for the Jira emulator tests: an in-process client per flavour, and the vendor samples."""

import socket
import threading
import time
from pathlib import Path

import httpx2
import pytest
import uvicorn

from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from conftest import vendor_path
from support.clock import FakeClock

AUTH = ("soc@example.com", "sandbox-token")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(clock):
    return create_app(JiraSandboxSettings(seed=7, clock=clock.now))


@pytest.fixture
async def client(app):
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://sandbox", auth=AUTH) as http:
        yield http


@pytest.fixture(scope="module")
def sandbox():
    """Serve a fresh emulator over real HTTP on a free local port for one module; yield (url, app)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(JiraSandboxSettings())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):  # wait until it listens (polls, asserts nothing about time)
        if server.started:
            break
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def vendor_jira() -> Path:
    """Return ../shared/vendor/jira; skip when it is absent, unless CI demands it."""
    return vendor_path("jira")


def text_value(version: int, text: str):
    """Return rich text in the form a flavour takes: ADF on v3, a string on v2."""
    if version == 2:
        return text
    return {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}]}


def issue_body(version: int, summary: str = "Suspicious login", labels=(), **fields) -> dict:
    """Return a minimal valid create body for `version`, plus any extra fields."""
    base = {
        "project": {"key": "SOC"},
        "issuetype": {"name": "Alert"},
        "summary": summary,
        "description": text_value(version, "Seen by the EDR."),
        "labels": list(labels),
    }
    return {"fields": base | fields}
