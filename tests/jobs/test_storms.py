"""A storm of new cases on one channel: the first few one by one, the rest in one digest, Critical ones always alone."""

from __future__ import annotations

import time

import pytest
import time_machine

from support.hub import drain, send
from support.notify_hub import emulator, notify_hub

ROUTE = {"name": "siem", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}", "notify": ["slack"]}
STORM = 200
CRITICAL_EVERY = 20  # cases 0, 20, 40, … are Critical: 10 of them


@pytest.fixture
async def hub(tmp_path, app):
    hub = notify_hub(tmp_path, app, [ROUTE])
    yield hub
    await hub.aclose()


def storm() -> list[dict]:
    return [{"id": f"s{n}", "title": f"Port scan from 10.0.{n // 250}.{n % 250}", "description": f"scan {n}",
             "severity": "critical" if n % CRITICAL_EVERY == 0 else ("high" if n % 3 else "medium")} for n in range(STORM)]


def top_level(app) -> list[str]:
    return [message["blocks"][0]["text"]["text"] for message in emulator(app, "slack").channels["C0SOCALERTS"]]


async def test_a_storm_is_told_in_a_digest_with_critical_cases_one_by_one(hub, app):
    await send(hub, *storm())
    outcomes = await drain(hub)
    assert outcomes.count("notify:done") == STORM
    threshold = hub.notifiers["slack"].digest_policy.threshold
    before = top_level(app)
    assert len(before) == threshold + STORM // CRITICAL_EVERY  # the first ten, then only the Critical ones
    assert sum(text.startswith("🔴 [CRITICAL]") for text in before) == STORM // CRITICAL_EVERY

    # A held case's next event waits for the digest that tells of its opening.
    await send(hub, {"id": "raise", "title": "Port scan from 10.0.0.199", "severity": "critical"})
    assert "notify:retry" in await drain(hub)

    with time_machine.travel(time.time() + 61, tick=True):  # the storm window closes: the digest is due
        outcomes = await drain(hub)
    assert outcomes.count("notify_digest:done") == 1 and "notify:done" in outcomes
    after = top_level(app)
    held = STORM - threshold - STORM // CRITICAL_EVERY
    digest = next(text for text in after if "new cases" in text)
    assert digest.startswith(f"{held} new cases in ")
    assert after[-1] == "🔴 [CRITICAL] Port scan from 10.0.0.199"  # the raise, after the digest, opens the case's thread
    assert len(after) == len(before) + 2


async def test_a_quiet_channel_gets_every_case_alone(hub, app):
    await send(hub, *storm()[:8])
    await drain(hub)
    assert len(top_level(app)) == 8
