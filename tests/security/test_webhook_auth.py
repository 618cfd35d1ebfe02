"""Webhook and admin authentication: wrong, missing, replayed and near-miss credentials.

Timing is not measured (no wall-clock asserts): that every comparison is
`hmac.compare_digest` is checked by reading the code and by spying on the calls,
and a signature that shares a prefix with the right one is shown to be refused
exactly like a wrong one.
"""

from __future__ import annotations

import ast
import hmac
import inspect
import json
import textwrap

import pytest
from sqlalchemy import func, select

from alertbridge.connectors import crowdstrike, roles
from alertbridge.web import admin
from alertbridge.web.auth import ConsoleAuth
from alertbridge.service import Hub
from alertbridge.store.tables import inbox

from .conftest import CANARY, client_for, dumps, hub_config, sign

BODY = dumps({"id": "1", "title": "Brute force"})
JIRA_BODY = json.dumps({"webhookEvent": "jira:issue_updated", "timestamp": 1, "issue": {"key": "SOC-1", "fields": {}}}).encode()


def near_misses(right: str) -> dict[str, str]:
    """Credentials a timing probe would try: prefixes of the right one, and small changes to it."""
    return {
        "empty": "", "one char": right[:1], "half": right[: len(right) // 2], "all but the last": right[:-1],
        "plus one": right + "0", "last flipped": right[:-1] + ("0" if right[-1] != "0" else "1"),
        "upper case": right.upper() if right.upper() != right else right.lower(),
        "wrong": "x" * len(right),
    }  # fmt: skip


def request_for(source: str, credential: str | None, body: bytes) -> tuple[dict, dict]:
    """Headers and query params carrying `credential` the way `source` expects it (None: no credential at all)."""
    if credential is None:
        return {}, {}
    return {
        "bearer": ({"Authorization": f"Bearer {credential}"}, {}),
        "signed": ({"X-Signature": credential}, {}),
        "splunk": ({}, {"token": credential}),
        "jira-events": ({"X-Hub-Signature": credential}, {}),
    }[source]


RIGHT = {"bearer": lambda body: CANARY, "signed": sign, "splunk": lambda body: CANARY, "jira-events": sign}


async def inbox_count(hub: Hub) -> int:
    async with hub.store.read() as conn:
        return (await conn.execute(select(func.count()).select_from(inbox))).scalar()


@pytest.mark.parametrize("source", sorted(RIGHT))
async def test_near_miss_credentials_are_refused_exactly_like_wrong_ones(hub, client, source):
    body = JIRA_BODY if source == "jira-events" else BODY
    right = RIGHT[source](body)
    answers = {}
    for name, credential in {"missing": None, **near_misses(right)}.items():
        headers, params = request_for(source, credential, body)
        response = await client.post(f"/hooks/{source}", content=body, headers=headers, params=params)
        answers[name] = (response.status_code, response.json())
    assert len(set(map(json.dumps, answers.values()))) == 1, answers  # one answer for all: nothing tells them apart
    assert next(iter(answers.values()))[0] == 401
    assert await inbox_count(hub) == 0
    headers, params = request_for(source, right, body)
    assert (await client.post(f"/hooks/{source}", content=body, headers=headers, params=params)).status_code == 202


async def test_a_signature_is_for_one_body_only(hub, client):
    signature = sign(BODY)
    tampered = BODY.replace(b"Brute force", b"Brute forcf")
    assert (await client.post("/hooks/signed", content=tampered, headers={"X-Signature": signature})).status_code == 401
    assert (await client.post("/hooks/jira-events", content=tampered, headers={"X-Hub-Signature": signature})).status_code == 401
    assert await inbox_count(hub) == 0


async def test_jira_replays_are_acknowledged_and_stored_once(hub, client):
    headers = {"X-Hub-Signature": sign(JIRA_BODY), "X-Atlassian-Webhook-Identifier": "c0ffee-1"}
    first = await client.post("/hooks/jira-events", content=JIRA_BODY, headers=headers)
    replays = [await client.post("/hooks/jira-events", content=JIRA_BODY, headers=headers) for _ in range(3)]
    assert first.status_code == 202
    assert [(r.status_code, r.json()) for r in replays] == [(200, {"id": None, "duplicate": True})] * 3
    # A replay with a bad signature is refused before the delivery id is even looked at.
    forged = await client.post("/hooks/jira-events", content=JIRA_BODY, headers=headers | {"X-Hub-Signature": "sha256=00"})
    assert forged.status_code == 401
    # The same identifier with another, validly signed body is still the same delivery: dropped.
    other = JIRA_BODY.replace(b"SOC-1", b"SOC-2")
    again = await client.post("/hooks/jira-events", content=other, headers={**headers, "X-Hub-Signature": sign(other)})
    assert again.status_code == 200
    assert await inbox_count(hub) == 1
    await hub.pipeline.process_batch()
    assert await inbox_count(hub) == 1


async def test_a_long_delivery_id_is_stored_on_every_database(db_url):
    hub = Hub(hub_config_for(db_url))
    try:
        async with client_for(hub) as client:
            headers = {"X-Hub-Signature": sign(JIRA_BODY), "X-Atlassian-Webhook-Identifier": "d" * 1000}
            first = await client.post("/hooks/jira-events", content=JIRA_BODY, headers=headers)
            second = await client.post("/hooks/jira-events", content=JIRA_BODY, headers=headers)
            other = await client.post("/hooks/jira-events", content=JIRA_BODY, headers=headers | {"X-Atlassian-Webhook-Identifier": "d" * 999 + "e"})
    finally:
        await hub.aclose()
    assert (first.status_code, second.status_code, other.status_code) == (202, 200, 202), (first.text, second.text)


def hub_config_for(db_url: str):
    from alertbridge.config import validate_config

    return validate_config({"database": db_url, "sources": {"jira-events": {"type": "jira", "secret": CANARY, "sink": "cases"}},
                            "sinks": {"cases": {"type": "http", "url": "http://cases.invalid"}}})  # fmt: skip


# --- the admin API ----------------------------------------------------------------------------------


def admin_routes(app) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        if getattr(route, "path", "").startswith("/api"):
            path = route.path.replace("{job_id}", "1")
            found += [(method, path) for method in sorted(route.methods)]
    return found


async def test_every_admin_route_needs_the_token(hub, client, tmp_path):
    routes = admin_routes(client._transport.app)
    assert len(routes) >= 7
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": f"Bearer {CANARY[:-1]}"},
                        {"Authorization": f"Bearer {CANARY}x"}, {"Authorization": f"Basic {CANARY}"}, {"X-Admin-Token": CANARY}):  # fmt: skip
            response = await client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.json() == {"detail": "admin token missing or wrong"}
    off = Hub(hub_config(tmp_path, name="off", admin_token=None))
    try:
        async with client_for(off) as no_admin:
            for method, path in routes:
                for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {CANARY}"}):
                    response = await no_admin.request(method, path, headers=headers)
                    assert response.status_code == 401 and "admin API is off" in response.json()["detail"]
    finally:
        await off.aclose()


async def test_ids_and_offsets_beyond_a_database_integer_are_refused_not_crashed(client):
    admin = {"Authorization": f"Bearer {CANARY}"}
    for method, path in [("GET", "/api/dlq/{}"), ("DELETE", "/api/dlq/{}"), ("POST", "/api/dlq/{}/replay")]:
        for job_id in (2**63, 2**70, -(2**70), 0):
            assert (await client.request(method, path.format(job_id), headers=admin)).status_code == 422
        assert (await client.request(method, path.format(2**63 - 1), headers=admin)).status_code == 404
    assert (await client.get("/api/cases", params={"offset": 2**70, "limit": 2**70}, headers=admin)).json() == []


# --- constant-time comparison, by reading the code and by watching it run ----------------------------


def comparisons(function) -> tuple[list[str], list[str]]:
    """The `hmac.compare_digest` calls and the ==/!= comparisons in a function's source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    digests = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.Call) and ast.unparse(node.func) == "hmac.compare_digest"]
    equalities = [ast.unparse(node) for node in ast.walk(tree) if isinstance(node, ast.Compare)
                  and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops)]  # fmt: skip
    return digests, equalities


@pytest.mark.parametrize("function", [roles.WebhookAuth.check, crowdstrike.CrowdStrikeSource.verify, admin.add_admin_routes,
                                      ConsoleAuth.check_token, ConsoleAuth._session, ConsoleAuth.check_action, ConsoleAuth.check_login_form],
                         ids=["WebhookAuth.check", "CrowdStrikeSource.verify", "admin.require_admin", "console token", "console session",
                              "console CSRF", "console login CSRF"])  # fmt: skip
def test_credentials_are_compared_with_compare_digest_only(function):
    digests, equalities = comparisons(function)
    assert digests, "compare credentials with hmac.compare_digest"
    secrets = ("given", "expected", "token", "digest", "secret", "signature", "authorization")
    assert not [e for e in equalities if any(word in e.lower() for word in secrets)], equalities


async def test_every_credential_check_goes_through_compare_digest(hub, client, monkeypatch):
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    for source, right in RIGHT.items():
        body = JIRA_BODY if source == "jira-events" else BODY
        for credential in (right(body), right(body)[:-1]):
            seen.clear()
            headers, params = request_for(source, credential, body)
            await client.post(f"/hooks/{source}", content=body, headers=headers, params=params)
            assert seen and seen[-1][0] == credential.encode() and len(seen[-1][1]) == len(right(body)), source
    for token in (CANARY, CANARY[:4]):
        seen.clear()
        await client.get("/api/stats", headers={"Authorization": f"Bearer {token}"})
        assert seen == [(token.encode(), CANARY.encode())]
