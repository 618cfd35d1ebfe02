"""The reconcile poll's cursor: whole seconds of sys_updated_on, pages of one second, a restart, the hub's records only."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx2
import pytest

from alertbridge.connectors.servicenow.poller import ServiceNowReconcilePoller
from alertbridge.sandbox.servicenow import ServiceNowSettings, create_app
from support.snow import LOGIN


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def emulator(clock):
    return create_app(ServiceNowSettings(clock_now=clock), records=[])


def poller(emulator, **config) -> ServiceNowReconcilePoller:
    cfg = ServiceNowReconcilePoller.Config.model_validate({"type": "servicenow_reconcile", "url": "http://snow", "login": LOGIN,
                                                           "page_size": 3, **config})  # fmt: skip
    return ServiceNowReconcilePoller("snow-reconcile", cfg, transport=httpx2.ASGITransport(app=emulator))


async def drain(source, cursor):
    seen = []
    for _ in range(20):
        page = await source.poll(cursor)
        seen += [source.item_id(item) for item in page.items]
        cursor = page.cursor
        if not page.more:
            return cursor, seen
    raise AssertionError("never caught up")


async def test_a_second_full_of_changes_is_paged_through_and_nothing_is_missed_or_repeated_for_ever(emulator, clock):
    instance = emulator.state.servicenow
    made = [instance.insert("incident", {"correlation_id": f"alertbridge-p-{n}"}, "svc-alertbridge") for n in range(7)]
    instance.insert("incident", {"correlation_id": "another-tool-9"}, "svc-alertbridge")  # not the hub's: never polled
    source = poller(emulator, tables=["incident"])
    try:
        cursor, seen = await drain(source, None)
        assert sorted(set(seen)) == sorted(f"incident:{r['sys_id']}:0" for r in made), "all seven of one second, in pages of three"
        clock.now += timedelta(seconds=5)
        instance.update("incident", made[2]["sys_id"], {"state": "7", "close_code": "Duplicate", "close_notes": "dup"}, "jane.analyst")
        restarted = poller(emulator, tables=["incident"])  # a new process, from the stored cursor
        cursor, later = await drain(restarted, cursor)
        await restarted.aclose()
        assert later == [f"incident:{made[2]['sys_id']}:1"]
        event = source.parse({"table": "incident", "result": instance.record("incident", made[2]["sys_id"])})[0]
        assert (event.status, event.status_category, event.event_id, event.change_id) == ("Closed", "done", f"{made[2]['sys_id']}:1", "1")
        assert json.loads(cursor)["incident"]["since"] == clock.now.strftime("%Y-%m-%d %H:%M:%S")
    finally:
        await source.aclose()


async def test_the_poll_reads_labels_so_each_item_parses_like_the_business_rules_call(emulator):
    instance = emulator.state.servicenow
    instance.insert("sn_si_incident", {"correlation_id": "alertbridge-p-1", "state": "18"}, "svc-alertbridge")
    source = poller(emulator)
    try:
        page = await source.poll(None)
        (item,) = page.items
        assert item["result"]["state"] == {"display_value": "Contain", "value": "18"}
        (event,) = source.parse(item)
        assert (event.sink, event.status, event.status_category, event.actor) == ("servicenow", "Contain", "indeterminate", "svc-alertbridge")
    finally:
        await source.aclose()
