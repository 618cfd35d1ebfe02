"""A reopened ticket and its AWS Security IR case: reopened where the API allows it, told where it does not, never looped.

UpdateCaseStatus has no transition out of Closed (botocore's service-2.json), so
a closed case stays closed and gets one comment saying the ticket was reopened;
the hub records that the case kept its state, so the poll showing the comment
does not close the reopened ticket again. A case the route only moved to a status
(Post-incident Activities) goes back to Detection and Analysis.
"""

from __future__ import annotations

import httpx2
import pytest
from sqlalchemy import select

from alertbridge.api import create_app
from alertbridge.connectors.aws_security_ir.writeback import SirVerdict
from alertbridge.model import SourceState
from alertbridge.service import Hub
from alertbridge.store.tables import cases, sync_changes
from support.hub import drain
from support.writeback import hub_config, poll_into_inbox, world

CASE = "8403556009"


def _config(tmp_path, w, *, close: bool, reopen_comment: bool = True):
    config = hub_config(tmp_path, w.urls, writeback=["sir-back"], on_repeat="ignore")
    states = {} if close else {SourceState.false_positive: SirVerdict(status="Post-incident Activities")}
    config.writebacks["sir-back"] = config.writebacks["sir-back"].model_copy(update={"states": states, "reopen_comment": reopen_comment})
    return config


async def _close_then_reopen(hub: Hub, w, client) -> list[str]:
    """File the case, close its ticket as False Positive, poll, reopen the ticket, poll again; return the last poll's outcomes."""
    async def jira_says() -> None:
        body, headers = w.jira_webhook("SOC-1")
        assert (await client.post("/hooks/jira-events", content=body, headers=headers)).status_code == 202

    assert await poll_into_inbox(hub, "sir") == 1
    await drain(hub)
    w.jira.state.jira.transition("SOC-1", "Done", "False Positive")
    await jira_says()
    assert "writeback:done" in await drain(hub)
    await poll_into_inbox(hub, "sir")
    assert await drain(hub) == []  # the hub's own close
    w.jira.state.jira.transition("SOC-1", "To Do")  # the analyst reopens the ticket
    await jira_says()
    assert "writeback:done" in await drain(hub)
    await poll_into_inbox(hub, "sir")
    return await drain(hub)


@pytest.mark.parametrize("reopen_comment", [True, False])
async def test_a_closed_case_stays_closed_says_so_once_and_does_not_close_the_reopened_ticket(tmp_path, reopen_comment):
    with world() as w:
        hub = Hub(_config(tmp_path, w, close=True, reopen_comment=reopen_comment))
        app = create_app(hub, run_loops=False)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as client:
            assert await _close_then_reopen(hub, w, client) == []  # the comment's poll is the hub's echo: nothing moves
            case = w.sir.state.sir.cases[CASE]
            # The ticket moves on while the case is closed (In Progress): the same note is not made again.
            w.jira.state.jira.transition("SOC-1", "In Progress")
            body, headers = w.jira_webhook("SOC-1")
            assert (await client.post("/hooks/jira-events", content=body, headers=headers)).status_code == 202
            assert "writeback:done" in await drain(hub)
            await poll_into_inbox(hub, "sir")
            assert await drain(hub) == []
            async with hub.store.read() as conn:
                state = (await conn.execute(select(cases.c.state))).scalar()
                writes = (await conn.execute(select(sync_changes.c.value, sync_changes.c.change_id, sync_changes.c.echoed).where(
                    sync_changes.c.system == "sir", sync_changes.c.field == "status", sync_changes.c.by_hub == 1)
                    .order_by(sync_changes.c.id))).all()
        await hub.aclose()
    # The close is known by the lastUpdatedDate read back after it, and echoed; the kept state is what the hub recorded after.
    (close, *after) = writes
    assert close.value == "false_positive" and close.change_id and close.echoed == 1
    assert [w.value for w in after] == ["false_positive", "false_positive"] and any(w.echoed for w in after)
    assert case["caseStatus"] == "Closed"
    notes = [c["body"] for c in case["comments"]]
    reopened = "SOC-1 was reopened. Security Incident Response cannot reopen a closed case, so this case stays closed; the work goes on in SOC-1."
    assert notes[1:] == ([reopened] if reopen_comment else [])
    assert notes[0].startswith("Closed from SOC-1")
    assert [c["to"] for c in w.jira.state.jira.get("SOC-1").history] == ["Done", "To Do", "In Progress"]
    assert state == "open"
    assert len(w.jira.state.jira.get("SOC-1").comments) == 0  # the hub's note is not mirrored back to the ticket


async def test_a_case_left_in_post_incident_activities_is_reopened(tmp_path):
    with world() as w:
        hub = Hub(_config(tmp_path, w, close=False))
        app = create_app(hub, run_loops=False)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as client:
            assert await _close_then_reopen(hub, w, client) == []
            async with hub.store.read() as conn:
                state = (await conn.execute(select(cases.c.state))).scalar()
        await hub.aclose()
    case = w.sir.state.sir.cases[CASE]
    assert case["caseStatus"] == "Detection and Analysis" and case.get("comments") == []
    assert [c["to"] for c in w.jira.state.jira.get("SOC-1").history] == ["Done", "To Do"]
    assert state == "open"
