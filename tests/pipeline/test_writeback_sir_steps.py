"""AWS Security IR status write-back follows UpdateCaseStatus's transition table, one call per step, and never echoes.

The emulator refuses what the table (service-2.json) does not list, as the
service does, so a Submitted case reaches Containment, Eradication and Recovery
only through Detection and Analysis. Each step is the hub's write: the poll that
lands between the steps (here: the second step throttled and retried) is known
as the hub's and records no change by someone else.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx2
import pytest
from sqlalchemy import select, update

from alertbridge.api import create_app
from alertbridge.connectors.aws_security_ir.writeback import SirVerdict, status_path
from alertbridge.errors import Permanent
from alertbridge.model import SourceState
from alertbridge.service import Hub
from alertbridge.store.tables import jobs, sync_changes
from support.hub import drain
from support.writeback import hub_config, poll_into_inbox, world

CASE = "8403556009"
CONTAINMENT = "Containment, Eradication and Recovery"


def status_writes(w) -> list[int]:
    return [status for method, path, status in w.sir.state.faults.calls if method == "POST" and path.endswith("/update-case-status")]


async def status_rows(hub: Hub) -> list[tuple]:
    async with hub.store.read() as conn:
        rows = await conn.execute(select(sync_changes.c.by_hub, sync_changes.c.value, sync_changes.c.change_id, sync_changes.c.echoed)
                                  .where(sync_changes.c.system == "sir", sync_changes.c.field == "status").order_by(sync_changes.c.id))
        return [tuple(row) for row in rows]


@contextlib.asynccontextmanager
async def submitted_case(tmp_path, states: dict | None = None) -> AsyncIterator[tuple]:
    """Serve the emulators with the case at Submitted, filed as SOC-1 by a hub writing back to it; yield them and Jira's webhook."""
    with world() as w:
        w.sir.state.sir.cases[CASE]["caseStatus"] = "Submitted"
        config = hub_config(tmp_path, w.urls, writeback=["sir-back"], on_repeat="ignore")
        if states:
            config.writebacks["sir-back"] = config.writebacks["sir-back"].model_copy(update={"states": states})
        hub = Hub(config)
        app = create_app(hub, run_loops=False)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as client:
            async def jira_says(expected: int = 202) -> None:
                body, headers = w.jira_webhook("SOC-1")
                assert (await client.post("/hooks/jira-events", content=body, headers=headers)).status_code == expected

            assert await poll_into_inbox(hub, "sir") == 1
            assert await drain(hub) == ["create_ticket:done"]
            yield w, hub, jira_says
        await hub.aclose()


def test_the_path_goes_through_detection_and_analysis_where_the_table_requires_it():
    assert status_path("Submitted", CONTAINMENT) == ["Detection and Analysis", CONTAINMENT]
    assert status_path("Submitted", "Post-incident Activities") == ["Detection and Analysis", "Post-incident Activities"]
    assert status_path("Post-incident Activities", CONTAINMENT) == [CONTAINMENT]
    assert status_path(CONTAINMENT, CONTAINMENT) == []
    with pytest.raises(Permanent, match="cannot take a case from 'Acknowledged'"):
        status_path("Acknowledged", CONTAINMENT)  # an AWS-supported case's status
    with pytest.raises(ValueError, match="back to Submitted"):
        SirVerdict(status="Submitted")


async def test_a_submitted_case_reaches_containment_through_the_allowed_path_once_with_no_echo(tmp_path):
    async with submitted_case(tmp_path) as (w, hub, jira_says):
        w.jira.state.jira.transition("SOC-1", "In Progress")  # in_progress: Containment, Eradication and Recovery
        await jira_says()
        assert sorted(await drain(hub)) == ["case_event:done", "writeback:done"]
        case = w.sir.state.sir.cases[CASE]
        assert case["caseStatus"] == CONTAINMENT
        assert status_writes(w) == [201, 201]  # Submitted -> Containment directly would be a 400: two steps, none refused
        await jira_says(200)  # Jira delivers the same webhook again: known, nothing more is written
        assert await drain(hub) == []
        assert await poll_into_inbox(hub, "sir") == 1  # the hub's own write, under the lastUpdatedDate it read back
        assert await drain(hub) == []
        rows = await status_rows(hub)
    assert status_writes(w) == [201, 201]
    assert [c["to"] for c in w.jira.state.jira.get("SOC-1").history] == ["In Progress"]
    # Both writes are the hub's, in the order made: the step known by its own revision, the last by the one the poll showed.
    assert [(by_hub, value, echoed) for by_hub, value, _, echoed in rows] == [(1, "in_progress", 0), (1, "in_progress", 1)]
    assert all(change_id for _, _, change_id, _ in rows) and rows[0][2] != rows[1][2]


async def test_a_poll_between_the_steps_is_the_hubs_own_write(tmp_path):
    states = {SourceState.false_positive: SirVerdict(status="Post-incident Activities")}
    async with submitted_case(tmp_path, states) as (w, hub, jira_says):
        faults = w.sir.state.faults
        faults.resets += 1  # count from the write-back's first call: GetCase, D&A, GetCase, then the second step is throttled
        faults.rate_limit_every = 4
        w.jira.state.jira.transition("SOC-1", "Done", "False Positive")
        await jira_says()
        assert await drain(hub) == ["writeback:retry"]  # the case's next job (the close event) waits behind it
        faults.rate_limit_every = None
        assert w.sir.state.sir.cases[CASE]["caseStatus"] == "Detection and Analysis"
        assert await poll_into_inbox(hub, "sir") == 1  # the case between the steps: in_progress, which the hub wrote on its way
        assert await drain(hub) == []
        async with hub.store.tx() as conn:
            await conn.execute(update(jobs).where(jobs.c.state == "pending").values(run_after=0))  # the Retry-After is over
        assert sorted(await drain(hub)) == ["case_event:done", "writeback:done"]
        assert w.sir.state.sir.cases[CASE]["caseStatus"] == "Post-incident Activities"
        assert await poll_into_inbox(hub, "sir") == 1
        assert await drain(hub) == []
        rows = await status_rows(hub)
    assert status_writes(w) == [201, 429, 201]  # the retry found the case at D&A: one step left, one call
    assert [by_hub for by_hub, *_ in rows] == [1] * len(rows)  # no change recorded as someone else's
    assert ("in_progress", 1) in [(value, echoed) for _, value, _, echoed in rows]  # the step the poll showed, echoed
    assert [c["to"] for c in w.jira.state.jira.get("SOC-1").history] == ["Done"]
