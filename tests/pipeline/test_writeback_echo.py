"""CrowdStrike's and XDR's echo is known by the revision the write made, not by the value: both sides change the status.

Their update calls return no revision, so the updater reads the record back and
the hub keeps its ``updated_timestamp`` / ``modification_time`` with the write.
The scenario that a by-value match gets wrong: the hub writes the analyst's
"Done" back, someone in the source reopens the alert before the hub's next poll
(so the hub's write is never seen, never echoed), the ticket reopens; then
someone in the source resolves the alert again. The value is the one the hub
wrote, but the change is theirs: it must close the ticket, not be swallowed as
the hub's old echo.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from sqlalchemy import select

from alertbridge.api import create_app
from alertbridge.connectors import WRITEBACKS, load
from alertbridge.connectors.crowdstrike.parser import falcon_alert
from alertbridge.connectors.writeback_roles import SourceWrite
from alertbridge.model import SourceState
from alertbridge.service import Hub
from alertbridge.store.tables import cases, sync_changes
from support.hub import drain
from support.writeback import hub_config, poll_into_inbox, world

SOURCES = {"falcon": "falcon-back", "xdr": "xdr-back"}


def _record(w, source: str) -> dict:
    """Keep one alert (incident) in the emulator, changed just now, so the poller's backfill finds it; return it."""
    if source == "falcon":
        alerts = w.falcon.state.falcon.alerts
        del alerts[1:]
        alerts[0].update(status="new", updated_timestamp=_stamp(source, 0))
        return alerts[0]
    incidents = w.xdr.state.xdr.incidents
    del incidents[1:]
    incidents[0].update(status="new", modification_time=_stamp(source, 0))
    return incidents[0]


def _stamp(source: str, step: int) -> str | int:
    moment = datetime.now(UTC) - timedelta(minutes=5) + timedelta(seconds=step)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z") if source == "falcon" else int(moment.timestamp() * 1000)


def _someone_sets(record: dict, source: str, done: bool, step: int) -> None:
    """Change the record in the source's own console: resolved (Falcon closed, XDR resolved_threat_handled) or reopened."""
    if source == "falcon":
        record.update(status="closed" if done else "reopened", updated_timestamp=_stamp(source, step))
    else:
        record.update(status="resolved_threat_handled" if done else "new", modification_time=_stamp(source, step))


async def _written(hub: Hub, source: str) -> list[tuple[str, str | None, int]]:
    async with hub.store.read() as conn:
        rows = await conn.execute(select(sync_changes.c.value, sync_changes.c.change_id, sync_changes.c.echoed)
                                  .where(sync_changes.c.system == source, sync_changes.c.by_hub == 1).order_by(sync_changes.c.id))
        return [tuple(row) for row in rows]


@contextlib.asynccontextmanager
async def _hub(tmp_path, source: str) -> AsyncIterator[tuple]:
    """Serve the emulators with one record of the source, and a hub writing back to it; yield them and Jira's webhook sender."""
    with world() as w:
        record = _record(w, source)
        hub = Hub(hub_config(tmp_path, w.urls, writeback=[SOURCES[source]], on_repeat="ignore"))
        app = create_app(hub, run_loops=False)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as client:
            async def jira_says() -> None:
                body, headers = w.jira_webhook("SOC-1")
                assert (await client.post("/hooks/jira-events", content=body, headers=headers)).status_code == 202

            yield w, record, hub, jira_says
        await hub.aclose()


@pytest.mark.parametrize("source", sorted(SOURCES))
async def test_the_hubs_write_is_known_by_its_revision_and_a_later_same_value_change_by_someone_else_counts(tmp_path, source):
    async with _hub(tmp_path, source) as (w, record, hub, jira_says):
        assert await poll_into_inbox(hub, source) == 1
        assert await drain(hub) == ["create_ticket:done"]
        # The analyst closes the ticket as Done: the hub writes "resolved" back and keeps the revision it made.
        w.jira.state.jira.transition("SOC-1", "Done", "Done")
        await jira_says()
        assert sorted(await drain(hub)) == ["case_event:done", "writeback:done"]
        revision = str(record["updated_timestamp"] if source == "falcon" else record["modification_time"])
        assert await _written(hub, source) == [("resolved", revision, 0)]

        # Before the hub polls again, someone in the source reopens the alert: the hub's write is never seen.
        _someone_sets(record, source, done=False, step=10)
        assert await poll_into_inbox(hub, source) == 1
        assert "transition:done" in await drain(hub)  # the route's reopen rules reopen the ticket
        assert w.jira.state.jira.get("SOC-1").status == "To Do"
        await jira_says()  # Jira's webhook of the hub's own reopen: quiet, nothing written back
        assert await drain(hub) == []

        # Then someone resolves it again in the source: the value the hub once wrote, but not the hub's change.
        _someone_sets(record, source, done=True, step=20)
        assert await poll_into_inbox(hub, source) == 1
        assert "transition:done" in await drain(hub)
        await jira_says()
        assert await drain(hub) == []
        async with hub.store.read() as conn:
            state = (await conn.execute(select(cases.c.state))).scalar()
        assert await _written(hub, source) == [("resolved", revision, 0)]  # still unechoed: that change was never seen
    assert [c["to"] for c in w.jira.state.jira.get("SOC-1").history] == ["Done", "To Do", "Done"]
    assert state == "closed"


@pytest.mark.parametrize("source", sorted(SOURCES))
async def test_the_next_poll_of_the_hubs_own_write_moves_nothing(tmp_path, source):
    async with _hub(tmp_path, source) as (w, record, hub, jira_says):
        await poll_into_inbox(hub, source)
        await drain(hub)
        w.jira.state.jira.transition("SOC-1", "Done", "Done")
        await jira_says()
        assert sorted(await drain(hub)) == ["case_event:done", "writeback:done"]
        assert await poll_into_inbox(hub, source) == 1  # the hub's own write, under the revision it read back
        assert await drain(hub) == []
        revision = str(record["updated_timestamp"] if source == "falcon" else record["modification_time"])
        assert await _written(hub, source) == [("resolved", revision, 1)]
    assert [c["to"] for c in w.jira.state.jira.get("SOC-1").history] == ["Done"]


@pytest.mark.parametrize("source", sorted(SOURCES))
async def test_a_refused_read_back_leaves_the_write_done_and_the_echo_known_by_value(tmp_path, source):
    with world() as w:
        record = _record(w, source)
        config = hub_config(tmp_path, w.urls)
        settings = config.writebacks[SOURCES[source]]
        updater = load(WRITEBACKS, settings.type)(SOURCES[source], settings)
        emulator = w.falcon if source == "falcon" else w.xdr
        emulator.state.faults.rate_limit_every = 2  # the update is the first counted call, the read-back the second: a 429
        vendor_id = record["composite_id"] if source == "falcon" else str(record["incident_id"])
        try:
            receipt = await updater.write(vendor_id, SourceWrite(state=SourceState.resolved, ticket_key="SOC-1", note="SOC-1 closed as Done"))
        finally:
            await updater.aclose()
    assert receipt.revision is None  # no revision: the echo falls back to the value written
    assert record["status"] == ("closed" if source == "falcon" else "resolved_threat_handled")  # the write itself went through, once
    assert [status for _, _, status in emulator.state.faults.calls][-2:] == [200, 429]


async def test_a_falcon_verdict_replaces_the_one_before_and_reads_back_as_written(tmp_path):
    with world() as w:
        record = _record(w, "falcon")
        settings = hub_config(tmp_path, w.urls).writebacks["falcon-back"]
        updater = load(WRITEBACKS, "crowdstrike")("falcon-back", settings)
        try:
            for state in (SourceState.false_positive, SourceState.resolved):  # closed as False Positive, then again as Done
                await updater.write(record["composite_id"], SourceWrite(state=state, ticket_key="SOC-1"))
                assert falcon_alert("falcon", "crowdstrike_alerts", None, record).state == state
        finally:
            await updater.aclose()
    assert record["tags"] == ["true_positive"]


async def test_a_false_positive_closed_in_falcon_closes_the_ticket_as_false_positive(tmp_path):
    async with _hub(tmp_path, "falcon") as (w, record, hub, jira_says):
        await poll_into_inbox(hub, "falcon")
        assert await drain(hub) == ["create_ticket:done"]
        record.update(status="closed", tags=["false_positive"], updated_timestamp=_stamp("falcon", 10))  # a responder, in Falcon
        await poll_into_inbox(hub, "falcon")
        assert "transition:done" in await drain(hub)
        await jira_says()  # the hub's own transition: quiet, nothing is written back to Falcon
        assert await drain(hub) == []
    issue = w.jira.state.jira.get("SOC-1")
    assert (issue.status, issue.resolution) == ("Done", "False Positive")
    assert [m for m, path, _ in w.falcon.state.faults.calls if "alerts/v3" in path] == []
