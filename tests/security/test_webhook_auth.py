"""Webhook and admin authentication: wrong, missing, replayed and near-miss credentials.

Timing is not measured (no wall-clock asserts): that every comparison is
`hmac.compare_digest` is checked by reading the code of every credential check
found from the registry, and by watching the calls while requests go through the
app; a credential that shares a prefix with the right one is shown to be refused
exactly like a wrong one, for every webhook source type in every way it can
authenticate.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import inspect
import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from alertbridge.config import validate_config
from alertbridge.connectors.roles import Poller, WebhookAuth, WebhookSource
from alertbridge.connectors.servicenow.webhook import ServiceNowHookAuth
from alertbridge.web import admin
from alertbridge.web.auth import ConsoleAuth
from alertbridge.service import Hub
from alertbridge.store.tables import inbox
from support.schema import migrated_sqlite

from .conftest import CANARY, SOURCE_TYPES, client_for, default_config, dumps, hub_config, sign, source_class

BODY = dumps({"id": "1", "title": "Brute force"})
JIRA_BODY = json.dumps({"webhookEvent": "jira:issue_updated", "timestamp": 1, "issue": {"key": "SOC-1", "fields": {}}}).encode()
FALCON_STAMP = "1700000000"


def near_misses(right: str) -> dict[str, str]:
    """Credentials a timing probe would try: prefixes of the right one, and small changes to it."""
    return {
        "empty": "", "one char": right[:1], "half": right[: len(right) // 2], "all but the last": right[:-1],
        "plus one": right + "0", "last flipped": right[:-1] + ("0" if right[-1] != "0" else "1"),
        "upper case": right.upper() if right.upper() != right else right.lower(),
        "wrong": "x" * len(right),
    }  # fmt: skip


@dataclass(frozen=True)
class Scheme:
    """One way a webhook source can be set up to authenticate: its config, the right credential for a body, where it goes."""

    config: dict[str, Any]
    right: Callable[[bytes], str]
    carry: Callable[[str], tuple[dict[str, str], dict[str, str]]]  # credential -> headers, query


def falcon_signature(body: bytes) -> str:
    """Falcon's webhook signature: base64 HMAC-SHA256 of the body followed by the delivery timestamp."""
    return base64.b64encode(hmac.new(CANARY.encode(), body + FALCON_STAMP.encode(), hashlib.sha256).digest()).decode()


# The `auth` modes every webhook source takes, all keyed with the canary.
AUTH_MODES = {
    "bearer": Scheme({"auth": {"mode": "bearer", "token": CANARY}}, lambda body: CANARY, lambda c: ({"Authorization": f"Bearer {c}"}, {})),
    "query_token": Scheme({"auth": {"mode": "query_token", "token": CANARY}}, lambda body: CANARY, lambda c: ({}, {"token": c})),
    "hmac": Scheme({"auth": {"mode": "hmac", "secret": CANARY}}, sign, lambda c: ({"X-Signature": c}, {})),
}
# Vendor schemes a source takes besides the `auth` modes (replacing the mode of the same name); each source with a
# `verify` of its own must have its scheme here.
VENDOR_SCHEMES = {
    "jira": {"secret": Scheme({"secret": CANARY}, sign, lambda c: ({"X-Hub-Signature": c}, {}))},
    "crowdstrike": {"hmac": Scheme({"auth": {"mode": "hmac", "secret": CANARY}}, falcon_signature,
                                   lambda c: ({"X-Cs-Primary-Signature": c, "X-Cs-Delivery-Timestamp": FALCON_STAMP}, {}))},
    # A Business Rule signs with GlideCertificateEncryption.generateMac (base64), or sends a Basic auth profile.
    "servicenow": {
        "hmac": Scheme({"auth": {"mode": "hmac", "secret": CANARY}},
                       lambda body: base64.b64encode(hmac.new(CANARY.encode(), body, hashlib.sha256).digest()).decode(),
                       lambda c: ({"X-Hmac-Signature": c}, {})),
        "basic": Scheme({"auth": {"mode": "basic", "username": "snow-outbound", "password": CANARY}},
                        lambda body: base64.b64encode(f"snow-outbound:{CANARY}".encode()).decode(),
                        lambda c: ({"Authorization": f"Basic {c}"}, {})),
    },
}  # fmt: skip
WEBHOOK_TYPES = [t for t in SOURCE_TYPES if not issubclass(source_class(t), Poller)]
OWN_VERIFY = {t: source_class(t).verify for t in WEBHOOK_TYPES if source_class(t).verify is not WebhookSource.verify}
SCHEME_CASES = [pytest.param(t, scheme, id=f"{t}:{mode}") for t in WEBHOOK_TYPES for mode, scheme in (AUTH_MODES | VENDOR_SCHEMES.get(t, {})).items()]


async def inbox_count(hub: Hub) -> int:
    async with hub.store.read() as conn:
        return (await conn.execute(select(func.count()).select_from(inbox))).scalar()


class DigestSpy:
    """Records every hmac.compare_digest call and what it returned."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[bool] = []
        real = hmac.compare_digest

        def spy(a, b) -> bool:
            self.calls.append(result := real(a, b))
            return result

        monkeypatch.setattr(hmac, "compare_digest", spy)


def test_every_own_verify_has_its_scheme_here():
    assert OWN_VERIFY and set(OWN_VERIFY) <= set(VENDOR_SCHEMES), "add the vendor scheme of each source with its own verify to VENDOR_SCHEMES"


@pytest.mark.parametrize(("type_name", "scheme"), SCHEME_CASES)
async def test_near_miss_credentials_are_refused_exactly_like_wrong_ones_by_compare_digest(tmp_path, monkeypatch, type_name, scheme):
    url = migrated_sqlite(tmp_path / "hub.db")
    own = {key: value for key, value in default_config(type_name).items() if key != "auth"}  # the scheme brings its own
    hub = Hub(validate_config({"database": url, "sources": {"hook": own | scheme.config}}))
    digests = DigestSpy(monkeypatch)
    right = scheme.right(BODY)
    answers = {}
    try:
        async with client_for(hub) as client:
            for name, credential in {"missing": None, **near_misses(right)}.items():
                digests.calls.clear()
                headers, params = scheme.carry(credential) if credential is not None else ({}, {})
                response = await client.post("/hooks/hook", content=BODY, headers=headers, params=params)
                answers[name] = (response.status_code, response.json())
                if credential:  # a credential was given: compare_digest weighed it, and said no
                    assert digests.calls and not any(digests.calls), (name, digests.calls)
            assert await inbox_count(hub) == 0
            digests.calls.clear()
            headers, params = scheme.carry(right)
            assert (await client.post("/hooks/hook", content=BODY, headers=headers, params=params)).status_code == 202
            assert any(digests.calls), "the right credential was let in without compare_digest saying yes"
    finally:
        await hub.aclose()
    assert len(set(map(json.dumps, answers.values()))) == 1, answers  # one answer for all: nothing tells them apart
    assert next(iter(answers.values()))[0] == 401


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


CREDENTIAL_CHECKS = {f"{source_class(t).__name__}.verify": verify for t, verify in OWN_VERIFY.items()} | {
    "WebhookAuth.check": WebhookAuth.check, "ServiceNowHookAuth.check": ServiceNowHookAuth.check,
    "ServiceNowHookAuth._check_basic": ServiceNowHookAuth._check_basic, "admin.require_admin": admin.add_admin_routes,
    "console token": ConsoleAuth.check_token, "console session": ConsoleAuth._session,
    "console CSRF": ConsoleAuth.check_action, "console login CSRF": ConsoleAuth.check_login_form,
}  # every webhook source without its own verify is decided by WebhookAuth.check (the HTTP test above shows it)


@pytest.mark.parametrize("function", CREDENTIAL_CHECKS.values(), ids=CREDENTIAL_CHECKS.keys())
def test_credentials_are_compared_with_compare_digest_only(function):
    digests, equalities = comparisons(function)
    assert digests, "compare credentials with hmac.compare_digest"
    secrets = ("given", "expected", "token", "digest", "secret", "signature", "authorization")
    assert not [e for e in equalities if any(word in e.lower() for word in secrets)], equalities


async def test_the_admin_token_goes_through_compare_digest(client, monkeypatch):
    digests = DigestSpy(monkeypatch)
    for token, allowed in ((CANARY, True), (CANARY[:-1], False), (CANARY + "x", False)):
        digests.calls.clear()
        response = await client.get("/api/stats", headers={"Authorization": f"Bearer {token}"})
        assert (response.status_code, digests.calls) == ((200, [True]) if allowed else (401, [False]))
