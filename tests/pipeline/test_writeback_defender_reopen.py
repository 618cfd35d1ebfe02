"""A reopened ticket clears the verdict its close wrote to the Defender alert; a first move to In Progress leaves Defender's own.

Graph's alertClassification and alertDetermination both take ``unknown`` (the
values of an untriaged alert, as the list sample shows), so the reopen PATCHes
status new with classification and determination unknown. The poll that shows
it is the hub's own write and moves nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx2

from alertbridge.api import create_app
from alertbridge.connectors import WRITEBACKS, load
from alertbridge.connectors.writeback_roles import SourceWrite
from alertbridge.model import SourceState
from alertbridge.service import Hub
from support.hub import drain
from support.writeback import hub_config, poll_into_inbox, world


def verdict(w) -> tuple[str, str, str]:
    alert = w.defender.state.defender.items[0]
    return alert["status"], alert["classification"], alert["determination"]


def patches(w) -> int:
    return sum(1 for method, path, status in w.defender.state.faults.calls if method == "PATCH" and "alerts_v2/" in path and status == 200)


@contextlib.asynccontextmanager
async def filed(tmp_path) -> AsyncIterator[tuple]:
    """Serve the emulators, file the Defender alert as SOC-1 with a hub writing back to it; yield them and Jira's webhook."""
    with world() as w:
        hub = Hub(hub_config(tmp_path, w.urls, writeback=["defender-back"], on_repeat="ignore"))
        app = create_app(hub, run_loops=False)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as client:
            async def jira_says(status: str, resolution: str | None = None) -> list[str]:
                w.jira.state.jira.transition("SOC-1", status, resolution)
                body, headers = w.jira_webhook("SOC-1")
                assert (await client.post("/hooks/jira-events", content=body, headers=headers)).status_code == 202
                return await drain(hub)

            assert await poll_into_inbox(hub, "defender") == 1
            assert await drain(hub) == ["create_ticket:done"]
            yield w, hub, jira_says
        await hub.aclose()


async def test_a_reopened_ticket_sets_the_alert_new_and_clears_its_false_positive_verdict(tmp_path):
    async with filed(tmp_path) as (w, hub, jira_says):
        assert "writeback:done" in await jira_says("Done", "False Positive")
        assert verdict(w) == ("resolved", "falsePositive", "notMalicious")
        assert await poll_into_inbox(hub, "defender") == 1
        assert await drain(hub) == []  # the hub's own close
        assert "writeback:done" in await jira_says("To Do")  # the analyst reopens the ticket
        assert verdict(w) == ("new", "unknown", "unknown")
        assert await poll_into_inbox(hub, "defender") == 1
        assert await drain(hub) == []  # the hub's own reopen: nothing moves
    assert patches(w) == 2
    assert [c["to"] for c in w.jira.state.jira.get("SOC-1").history] == ["Done", "To Do"]


async def test_a_first_move_to_in_progress_leaves_a_classification_made_in_defender(tmp_path):
    async with filed(tmp_path) as (w, hub, jira_says):
        w.defender.state.defender.items[0].update(classification="truePositive", determination="malware")  # a Defender analyst
        assert "writeback:done" in await jira_says("In Progress")
        assert verdict(w) == ("inProgress", "truePositive", "malware")
    assert patches(w) == 1


async def test_a_reopen_straight_into_work_clears_the_verdict_too(tmp_path):
    # Jira's sandbox workflow reopens to To Do only; other workflows reopen to In Progress: the updater as the job calls it then.
    with world() as w:
        settings = hub_config(tmp_path, w.urls).writebacks["defender-back"]
        updater = load(WRITEBACKS, "defender")("defender-back", settings)
        alert = w.defender.state.defender.items[0]
        try:
            await updater.write(alert["id"], SourceWrite(state=SourceState.false_positive, ticket_key="SOC-1"))
            assert verdict(w) == ("resolved", "falsePositive", "notMalicious")
            receipt = await updater.write(alert["id"], SourceWrite(state=SourceState.in_progress, ticket_key="SOC-1", reopened=True))
        finally:
            await updater.aclose()
    assert verdict(w) == ("inProgress", "unknown", "unknown")
    assert receipt.revision == alert["lastUpdateDateTime"]  # the poll that shows it is known as the hub's
