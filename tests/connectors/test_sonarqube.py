"""The SonarQube poller: the official search example, and the poll loop against the emulator."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from conftest import vendor_json
from sqlalchemy import select

from alertbridge.config import validate_config
from alertbridge.connectors.sonarqube import SonarQubeSource
from alertbridge.errors import AuthFailed, PayloadError
from alertbridge.model import AlertStatus, Severity
from alertbridge.pipeline.poll import PollRunner
from alertbridge.pipeline.process import Pipeline
from alertbridge.sandbox.sonarqube import create_app
from alertbridge.store.tables import inbox, jobs
from support.polling import run_until_caught_up, stored

SAMPLE = "sonarqube/api-issues-search-official-example.json"
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def source(app=None, **config) -> SonarQubeSource:
    settings = {"type": "sonarqube", "url": "https://sonar.example.com", "token": "sandbox-sonar-token", **config}
    transport = httpx2.ASGITransport(app=app) if app is not None else None
    return SonarQubeSource("sq", SonarQubeSource.Config.model_validate(settings), transport=transport, clock=lambda: NOW)


def issue(n: int, seconds_ago: int, severity: str = "CRITICAL", **fields) -> dict:
    created = (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    return {"key": f"AX-{n}", "project": "acme:web", "component": f"acme:web:src/app{n}.py", "rule": "python:S2077",
            "severity": severity, "message": f"issue {n}", "line": n, "status": "OPEN", "type": "VULNERABILITY",
            "tags": ["cwe"], "creationDate": created, **fields}


ISSUES = [issue(n, 3600 * (8 - n)) for n in range(1, 8)]


# --- parse ---------------------------------------------------------------------------------------


def test_official_example_parses():
    [alert] = source().parse(vendor_json(SAMPLE))
    assert alert.vendor_id == "01fc972e-2a3c-433e-bcae-0bd7f88f5123"
    assert alert.title == 'Remove this unused private "getKee" method. (com.github.kevinsawicki.http.HttpRequest:81)'
    # MAJOR alone is medium; the SECURITY impact of HIGH makes it high.
    assert (alert.severity, alert.vendor_severity) == (Severity.high, "MAJOR, SECURITY:HIGH")
    assert alert.status == AlertStatus.resolved and alert.labels == ["sonarqube", "bug"]
    assert alert.url == ("https://sonar.example.com/project/issues?id=com.github.kevinsawicki%3Ahttp-request"
                         "&open=01fc972e-2a3c-433e-bcae-0bd7f88f5123")
    assert alert.detected_at == datetime(2013, 5, 13, 15, 55, 39, tzinfo=UTC)
    assert "Rule: java:S1144" in alert.description and alert.observables.users == ["Developer 1"]


@pytest.mark.parametrize(("severity", "impacts", "expected"), [
    ("BLOCKER", [], Severity.critical), ("CRITICAL", [], Severity.high), ("MAJOR", [], Severity.medium),
    ("MINOR", [], Severity.low), ("INFO", [], Severity.info), (None, [{"softwareQuality": "SECURITY", "severity": "BLOCKER"}], Severity.critical),
    ("MINOR", [{"softwareQuality": "RELIABILITY", "severity": "MEDIUM"}], Severity.medium),
])
def test_severities_map(severity, impacts, expected):
    assert source().parse(issue(1, 0, severity=severity, impacts=impacts))[0].severity == expected


def test_one_issue_parses_alone_and_closed_is_resolved():
    [alert] = source().parse(issue(1, 0, status="CLOSED", author="dev@example.com"))
    assert alert.status == AlertStatus.resolved and alert.title == "issue 1 (src/app1.py:1)"
    assert alert.observables.emails == ["dev@example.com"]


@pytest.mark.parametrize("body", [None, [], {"key": "AX-1"}, {"project": "p"}, {"issues": ["x"]}, {"issues": [{"key": 5, "project": "p"}]}])
def test_malformed_issues_raise_payload_error(body):
    with pytest.raises(PayloadError):
        source().parse(body)


# --- polling -------------------------------------------------------------------------------------


async def test_backfill_over_several_pages(store):
    app = create_app(ISSUES + [issue(9, 60, severity="MAJOR")])
    runner = PollRunner(store, source(app, page_size=3, interval=60), "node-1", asyncio.Event())
    waits = await run_until_caught_up(runner)
    assert waits[-1] == 60 and len(waits) == 3
    assert await stored(store) == [f"AX-{n}" for n in range(1, 8)]  # MAJOR is not asked for
    assert app.state.calls[0]["severities"] == "BLOCKER,CRITICAL" and app.state.calls[0]["s"] == "CREATION_DATE"
    assert json.loads(await runner.cursor()) == {"since": "2025-03-10T11:00:00+0000", "page": 1}


async def test_restart_in_the_middle_of_a_backfill_loses_and_repeats_nothing(store):
    app = create_app(ISSUES)
    await PollRunner(store, source(app, page_size=3), "node-1", asyncio.Event()).step()
    await run_until_caught_up(PollRunner(store, source(app, page_size=3), "node-1", asyncio.Event()))
    assert await stored(store) == [f"AX-{n}" for n in range(1, 8)]


async def test_more_issues_in_one_second_than_a_page_are_all_read(store):
    app = create_app([issue(n, 30) for n in range(1, 6)] + [issue(6, 10)])
    await run_until_caught_up(PollRunner(store, source(app, page_size=2), "node-1", asyncio.Event()))
    assert sorted(await stored(store)) == [f"AX-{n}" for n in range(1, 7)]


async def test_basic_token_auth_and_project_filter(store):
    app = create_app(ISSUES + [issue(8, 60) | {"key": "AX-other", "project": "acme:other"}])
    result = await source(app, auth_scheme="basic", projects=["acme:other"]).poll(None)
    assert [i["key"] for i in result.items] == ["AX-other"]


async def test_a_429_is_waited_out(store):
    runner = PollRunner(store, source(create_app(ISSUES, rate_limit_every=1, retry_after=42)), "node-1", asyncio.Event())
    assert await runner.step() >= 42
    assert await stored(store) == []


async def test_a_wrong_token_fails_as_auth(store):
    sq = source(create_app(ISSUES), token="wrong")
    with pytest.raises(AuthFailed, match="Authentication is required"):
        await sq.poll(None)
    assert await PollRunner(store, sq, "node-1", asyncio.Event()).step() >= 60


async def test_a_malformed_issue_is_dead_lettered_and_the_others_go_on(store):
    sq = source(create_app([issue(1, 20), {k: v for k, v in issue(2, 10).items() if k != "project"}]))
    await PollRunner(store, sq, "node-1", asyncio.Event()).step()
    await Pipeline(validate_config({}), store, {"sq": sq}).process_batch()
    async with store.read() as conn:
        states = [(row.delivery_id, row.state) for row in await conn.execute(select(inbox).order_by(inbox.c.id))]
        dead = (await conn.execute(select(jobs.c.kind, jobs.c.state, jobs.c.last_error))).all()
    assert states == [("AX-1", "done"), ("AX-2", "dead")]
    assert [(kind, state) for kind, state, _ in dead] == [("ingest", "dead")] and "project" in dead[0][2]
