"""The hub's per-call deadline: a hung sink call frees its worker long before the job's lease could run out."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from alertbridge.config import validate_config
from alertbridge.service import Hub
from alertbridge.store import upgrade
from alertbridge.store.tables import cases, jobs
from support.hub import make_hub
from support.recorder import Recorder, ServerThread
from support.waiting import until

LEASE = 3600  # never runs out during the test: only the call's deadline can hand the worker back


async def job_rows(hub: Hub) -> dict[str, tuple[str, int, str | None]]:
    async with hub.store.read() as conn:
        rows = await conn.execute(select(cases.c.title, jobs.c.state, jobs.c.attempts, jobs.c.last_error)
                                  .join(cases, cases.c.id == jobs.c.case_id).where(jobs.c.kind == "create_ticket"))
        return {title: (state, attempts, error) for title, state, attempts, error in rows}


async def test_a_hung_create_frees_the_only_worker_by_its_deadline_and_the_next_case_gets_its_ticket(tmp_path):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    upgrade(url)
    recorder = Recorder()
    hold = recorder.hold_next_create()  # the first create is stored and then never answered (within the test)
    with ServerThread(recorder.app()) as sink_url:
        config = validate_config({
            "database": url, "lease": LEASE, "workers": 1, "search_lag": "0.2s",
            "retry": {"base_delay": "0.1s", "max_delay": "0.5s"},
            "sources": {"gen": {"type": "generic", "auth": {"mode": "none"}}},
            "sinks": {"cases": {"type": "http", "url": sink_url, "timeout": 1}},
            "routes": [{"name": "all", "sink": "cases", "group_by": "{{ alert.title }}"}],
        })
        assert not [w for w in config.warnings if w.startswith("sinks.")]  # 1 s is well under a quarter of the lease
        hub = Hub(config, poll_interval=0.05)
        hub.start()
        try:
            await hub.inbox.put("gen", b'{"title": "first", "severity": "high"}')
            assert await asyncio.to_thread(hold.stored.wait, 30), "the first create never reached the sink"
            await hub.inbox.put("gen", b'{"title": "second", "severity": "high"}')
            found: dict[str, tuple[str, int, str | None]] = {}
            for _ in range(600):  # bounded; asserts nothing about time
                found = await job_rows(hub)
                if found.get("second", ("",))[0] == "done" and found.get("first", ("",))[0] == "done":
                    break
                await asyncio.sleep(0.05)
        finally:
            recorder.disarm(hold)
            await asyncio.wait_for(hub.aclose(), 60)

    # One worker, a lease of an hour, a create that never answered: the second case still got its ticket,
    # because the hung call ended at its 1 s deadline; the first job then found its ticket by label search.
    assert found["second"][:2] == ("done", 1), found
    state, attempts, _error = found["first"]
    assert (state, attempts) == ("done", 2), found
    assert sorted(len(keys) for keys in recorder.by_reference().values()) == [1, 1]  # one ticket per case, no duplicate
    assert ("create", hold.key) in recorder.calls


def test_a_sink_deadline_longer_than_a_quarter_of_the_lease_is_named_at_config_load():
    sinks = {"cases": {"type": "http", "url": "http://127.0.0.1:9", "timeout": 30},
             "quick": {"type": "http", "url": "http://127.0.0.1:9", "timeout": 5}}
    config = validate_config({"lease": "60s", "sinks": sinks})
    assert len(config.warnings) == 1
    assert config.warnings[0].startswith("sinks.cases.timeout: 30s is more than a quarter of the lease (60s)")
    assert "at most 15s" in config.warnings[0]
    assert validate_config({"lease": "120s", "sinks": sinks}).warnings == []


async def test_a_commit_while_the_processor_finds_the_inbox_empty_wakes_it_at_once(tmp_path):
    """The processor's wake-up is not lost when intake commits between its empty read and its wait."""
    hub = make_hub(tmp_path, [{"name": "all", "sink": "cases", "group_by": "{{ alert.title }}"}], Recorder())
    hub.poll_interval = 3600  # only a wake-up can make it read again within the test
    reads = 0
    process_batch = hub.pipeline.process_batch

    async def reading(limit: int = 200) -> int:
        nonlocal reads
        reads += 1
        taken = await process_batch(limit)
        if reads == 1:
            assert taken == 0
            hub.inbox.committed.set()  # intake committed while this read found nothing
        return taken

    hub.pipeline.process_batch = reading
    hub.start(workers=0)
    try:
        await until(lambda: reads >= 2, "the processor reads again after the commit")
    finally:
        await asyncio.wait_for(hub.aclose(), 60)
