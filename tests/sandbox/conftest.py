"""Fixtures for the Jira emulator tests: an in-process client per flavour, and the vendor samples."""

from pathlib import Path

import httpx2
import pytest

from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from conftest import vendor_path

AUTH = ("soc@example.com", "sandbox-token")


@pytest.fixture
def app():
    return create_app(JiraSandboxSettings(seed=7))


@pytest.fixture
async def client(app):
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://sandbox", auth=AUTH) as http:
        yield http


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
