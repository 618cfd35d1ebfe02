"""No secret leaves the hub: one canary set as every secret is never in logs, errors, metrics, the admin API or CLI output.

The run includes failures on purpose: Jira sites that answer 401 to every
credential flavor, and a case system that answers 500 and echoes the request's
Authorization header back in its error body (some gateways do).
"""

from __future__ import annotations

import json

import httpx2
import pytest
from prometheus_client import REGISTRY, generate_latest
from sqlalchemy import select
from typer.testing import CliRunner

from alertbridge.cli import app as cli
from alertbridge.config import load_config
from alertbridge.connectors.http_sink import HttpSink
from alertbridge.connectors.jira import JiraSink
from alertbridge.errors import ConfigError
from alertbridge.logs import configure_logging
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.service import Hub
from alertbridge.store.tables import inbox, jobs

from support.recorder import ServerThread

from .conftest import CANARY, CANARY_FORMS, JIRA_EMAIL, client_for, dumps, hub_config, sign

SINKS = {
    "cases": {"type": "http", "url": "http://cases.test", "token": CANARY},
    "jira-cloud": {"type": "jira", "flavor": "cloud", "url": "http://jira.test", "email": JIRA_EMAIL, "api_token": CANARY},
    "jira-pat": {"type": "jira", "flavor": "datacenter", "url": "http://jira.test", "pat": CANARY},
    "jira-basic": {"type": "jira", "flavor": "datacenter", "url": "http://jira.test", "username": "svc", "password": CANARY},
}
ROUTES = [{"name": f"to-{name}", "sink": name, "project": "SOC", "match": {"when": f"alert.title == '{name}'"}} for name in SINKS]


def leaks(text: str) -> list[str]:
    return [form for form in CANARY_FORMS if form in text]


def echoing_case_system(request: httpx2.Request) -> httpx2.Response:
    """A case system behind a gateway that fails and quotes the request, credentials included."""
    return httpx2.Response(500, json={"message": f"upstream failed for {request.headers.get('authorization')}"})


@pytest.fixture
async def failing_hub(tmp_path):
    config = hub_config(tmp_path, name="secrets", sinks=SINKS, routes=ROUTES, retry={"max_attempts": 1})
    hub = Hub(config)
    jira = create_app(JiraSandboxSettings(seed=7))  # its credentials are not the canary: every call is a 401
    hub.sinks["cases"] = HttpSink("cases", config.sinks["cases"], transport=httpx2.MockTransport(echoing_case_system))
    for name in ("jira-cloud", "jira-pat", "jira-basic"):
        hub.sinks[name] = JiraSink(name, config.sinks[name], transport=httpx2.ASGITransport(app=jira))
    yield hub
    await hub.aclose()


async def test_canary_never_leaves_through_logs_errors_metrics_or_admin_api(failing_hub, capsys):
    configure_logging("DEBUG")
    hub, admin = failing_hub, {"Authorization": f"Bearer {CANARY}"}
    shown: list[str] = []
    async with client_for(hub) as client:
        # Webhooks: refused ones (wrong, missing, half a secret) and accepted ones, on every auth mode.
        body = dumps([{"id": name, "title": name} for name in SINKS])
        for headers, params in [({}, {}), ({"Authorization": f"Bearer {CANARY[:-1]}"}, {"token": CANARY[:8]}),
                                ({"X-Signature": sign(body)[:-2], "X-Hub-Signature": "sha256=" + CANARY}, {})]:  # fmt: skip
            for source in ("bearer", "signed", "splunk", "jira-events"):
                response = await client.post(f"/hooks/{source}", content=body, headers=headers, params=params)
                assert response.status_code == 401
                shown.append(response.text)
        accepted = [
            await client.post("/hooks/bearer", content=body, headers={"Authorization": f"Bearer {CANARY}"}),
            await client.post("/hooks/signed", content=body, headers={"X-Signature": sign(body)}),
            await client.post("/hooks/splunk", content=b'{"result": {}}', params={"token": CANARY}),
            await client.post("/hooks/jira-events", content=b"{}", headers={"X-Hub-Signature": sign(b"{}")}),
        ]
        assert [r.status_code for r in accepted] == [202] * 4
        while await hub.pipeline.process_batch():
            pass
        while (job := await hub.queue.claim()) is not None:
            await hub.runner.run(job)

        for path in ("/metrics", "/healthz", "/", "/api/stats", "/api/cases", "/api/dlq?limit=1000"):
            response = await client.get(path, headers=admin)
            assert response.status_code == 200, path
            shown.append(response.text)
        dead = json.loads(shown[-1])
        # Two sources sent one alert per sink (8 cases, every create dead); Splunk's and Jira's bodies did not parse.
        assert sorted(job["kind"] for job in dead) == ["create_ticket"] * 2 * len(SINKS) + ["ingest"] * 2
        for job in dead:
            shown.append((await client.get(f"/api/dlq/{job['id']}", headers=admin)).text)
    async with hub.store.read() as conn:
        shown += [str(row) for row in await conn.execute(select(jobs))]
        shown += [str(row) for row in await conn.execute(select(inbox.c.error))]
    shown.append(generate_latest(REGISTRY).decode())
    shown.append(capsys.readouterr().err)

    errors = [job["last_error"] for job in dead]
    assert any("-> 401" in error for error in errors) and any("-> 500" in error for error in errors), errors
    assert any("upstream failed for [redacted]" in error for error in errors)  # the vendor message is kept, not the token
    assert "job dead-lettered" in shown[-1]  # the logs did record the failures
    assert not [text for text in shown if leaks(text)], [text[:300] for text in shown if leaks(text)]


def test_check_output_and_config_errors_never_show_a_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", CANARY)
    secret_file = tmp_path / "pat"
    secret_file.write_text(CANARY + "\n")
    config = tmp_path / "c.yaml"
    jira = create_app(JiraSandboxSettings(seed=7))
    with ServerThread(jira) as jira_url:
        config.write_text(
            f"database: sqlite:///{tmp_path / 'c.db'}\nadmin_token: {CANARY}\n"
            "sources:\n  hook: {type: generic, auth: {mode: bearer, token: '${HOOK_TOKEN}'}}\n"
            f"  signed: {{type: generic, auth: {{mode: hmac, secret: {CANARY}}}}}\n"
            f"sinks:\n  jira: {{type: jira, flavor: datacenter, url: '{jira_url}', pat_file: pat}}\n"
            f"  cloud: {{type: jira, flavor: cloud, url: '{jira_url}', email: {JIRA_EMAIL}, api_token: {CANARY}}}\n"
            "routes:\n  - {name: a, sink: jira, project: SOC}\n  - {name: b, sink: cloud, project: SOC}\n"
        )
        result = CliRunner().invoke(cli, ["check", "--config", str(config), "--live"])
    assert result.exit_code == 1 and "401" in result.output, result.output  # the sandbox refused the canary
    assert not leaks(result.output), result.output

    # Mistakes next to secrets: a wrong type, an unknown key, an unset variable, and YAML that does not parse.
    mistakes = {
        "wrong type": f"admin_token: [{CANARY}]\n",
        "unknown key": f"sinks:\n  j: {{type: http, url: 'http://x', tokn: {CANARY}}}\n",
        "bad url": f"sinks:\n  j: {{type: jira, url: '{CANARY}', pat: {CANARY}}}\n",
        "unset variable": f"admin_token: '${{NOT_SET_{CANARY.replace('-', '_')}}}'\n",
        "YAML error on the secret's line": f"admin_token: {CANARY}: x\n",
        "YAML error after it": f"sinks:\n  j: {{type: jira, api_token: \"{CANARY}\n",
    }
    for name, text in mistakes.items():
        config.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_config(config)
        assert not leaks(str(caught.value)), (name, str(caught.value))
        result = CliRunner().invoke(cli, ["check", "--config", str(config)])
        assert result.exit_code == 1 and not leaks(result.output), (name, result.output)
