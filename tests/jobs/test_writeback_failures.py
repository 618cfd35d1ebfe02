"""Each write-back's failure modes, through the job queue against its emulator: 401 and 404 dead-letter, 429 retries.

The dead letter keeps the vendor's own message (a deleted alert's 404 says
which alert); the 429 is retried no sooner than the vendor's Retry-After.
"""

from __future__ import annotations

import json
import time

import httpx2
import pytest
from sqlalchemy import select

from alertbridge.api import create_app
from alertbridge.service import Hub
from alertbridge.store.tables import jobs
from support.hub import drain
from support.writeback import hub_config, poll_into_inbox, world

# write-back -> (the source it writes to, the emulator, how to delete its record, what the vendor says of a missing one)
TARGETS = {
    "defender-back": ("defender", "defender", lambda w: w.defender.state.defender.items.clear(), "NotFound: Alert with id"),
    "sir-back": ("sir", "sir", lambda w: w.sir.state.sir.cases.clear(), "ResourceNotFoundException: Case 8403556009 not found"),
    "falcon-back": ("falcon", "falcon", lambda w: w.falcon.state.falcon.alerts.clear(), "no alerts found for composite_ids"),
    "xdr-back": ("xdr", "xdr", lambda w: w.xdr.state.xdr.incidents.clear(), "was not found"),
    "hec": ("defender", "hec", None, None),
}
CASES = [(target, fault) for target in TARGETS for fault in ("401", "404", "429") if not (fault == "404" and TARGETS[target][2] is None)]


async def _put_item(hub: Hub, w, source: str) -> None:
    if source in ("defender", "sir"):
        await poll_into_inbox(hub, source)
    else:  # the samples' alerts are older than a poller's backfill: hand the poller's item in as it would
        item = w.falcon.state.falcon.alerts[0] if source == "falcon" else w.xdr.state.xdr.incidents[0]
        await hub.inbox.put(source, json.dumps(item).encode())


@pytest.mark.parametrize(("target", "fault"), CASES)
async def test_a_write_back_failure_dead_letters_or_retries_with_the_vendors_message(tmp_path, target, fault):
    source, emulator, delete, missing = TARGETS[target]
    with world() as w:
        hub = Hub(hub_config(tmp_path, w.urls, writeback=[target], on_repeat="ignore"))
        app = create_app(hub, run_loops=False)
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://hub") as client:
            await _put_item(hub, w, source)
            await drain(hub)
            w.jira.state.jira.transition("SOC-1", "Done", "False Positive")
            body, headers = w.jira_webhook("SOC-1")
            assert (await client.post("/hooks/jira-events", content=body, headers=headers)).status_code == 202
            faults = getattr(w, emulator).state.faults
            if fault == "401":
                faults.unauthorized = 10  # the token was revoked: a fresh one is refused too
            elif fault == "429":
                faults.rate_limit_every, faults.retry_after = 1, 30
            else:
                delete(w)
            started = time.time()
            outcomes = await drain(hub)
            async with hub.store.read() as conn:
                row = (await conn.execute(select(jobs.c.state, jobs.c.last_error, jobs.c.run_after, jobs.c.attempts)
                                          .where(jobs.c.kind == "writeback").order_by(jobs.c.id.desc()).limit(1))).one()
        await hub.aclose()
    if fault == "429":
        # Retried, and the 429 cost no attempt (jobs/queue.py: the vendor paced the hub, nothing was done).
        assert "writeback:retry" in outcomes and row.state == "pending" and row.attempts == 0
        assert "429" in row.last_error and row.run_after >= started + 30  # not before the vendor's Retry-After
    else:
        assert "writeback:dead" in outcomes and row.state == "dead"
        assert f"-> {fault}" in row.last_error, row.last_error
        said = missing if fault == "404" else "Invalid token (code 4)" if target == "hec" else "expired or been revoked"  # the vendor's words
        assert said is None or said in row.last_error, row.last_error
