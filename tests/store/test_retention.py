"""Retention: rows past their horizon go, younger ones and everything still in use stay, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select

from alertbridge.store import Store
from alertbridge.store.retention import Horizons, Pruner
from alertbridge.store.tables import alerts, budgets, cases, enrichment_cache, inbox, jobs

DAY = 86400.0
NOW = 1_800_000_000.0
HORIZONS = Horizons(inbox_bodies=14 * DAY, inbox_rows=90 * DAY, closed_case_alerts=30 * DAY, finished_jobs=30 * DAY, batch=10)


def _case(case_id: int, state: str, closed_days_ago: float | None) -> dict:
    closed_at = NOW - closed_days_ago * DAY if closed_days_ago is not None else None
    return dict(id=case_id, route="r", key=f"k{case_id}", key_hash=f"h{case_id}", state=state, title="t", severity="high",
                source="s", first_seen=NOW - 400 * DAY, last_seen=NOW - 400 * DAY, observables={}, closed_at=closed_at)


async def _seed(store: Store) -> None:
    async with store.tx() as conn:
        rows = []
        for age, state, n in [(200, "done", 25), (60, "done", 15), (3, "done", 5), (200, "pending", 2), (200, "dead", 3)]:
            rows += [dict(source="s", delivery_id=None, received_at=NOW - age * DAY, body=b'{"x": 1}', state=state) for _ in range(n)]
        await conn.execute(insert(inbox), rows)
        await conn.execute(insert(cases), [
            _case(1, "open", None),       # open for a long time: its alerts stay
            _case(2, "closed", 45),       # closed long ago: alerts go, the case stays
            _case(3, "closed", 5),        # closed recently: alerts stay
        ])
        await conn.execute(insert(alerts), [
            dict(case_id=c, inbox_id=1, alert_id=f"a{c}-{i}", source="s", severity="high", title="t",
                 received_at=NOW - 300 * DAY, data={}) for c in (1, 2, 3) for i in range(12)
        ])
        job = dict(case_id=1, kind="comment_repeats", payload={}, run_after=0, created_at=NOW - 100 * DAY)
        await conn.execute(insert(jobs), [
            *[dict(job, state="done", finished_at=NOW - 40 * DAY) for _ in range(22)],
            *[dict(job, state="discarded", finished_at=NOW - 40 * DAY) for _ in range(2)],
            *[dict(job, state="done", finished_at=NOW - 2 * DAY) for _ in range(4)],
            *[dict(job, state="dead", finished_at=NOW - 300 * DAY) for _ in range(3)],
            dict(job, state="pending", finished_at=None),
        ])
        await conn.execute(insert(enrichment_cache), [
            dict(key="old", value={}, expires_at=NOW - 1), dict(key="fresh", value={}, expires_at=NOW + 3600),
        ])
        await conn.execute(insert(budgets), [dict(name="abuseipdb", day="2027-01-01", used=5), dict(name="abuseipdb", day="2027-01-14", used=5)])


async def _count(store: Store, table, *where) -> int:
    async with store.read() as conn:
        return (await conn.execute(select(func.count()).select_from(table).where(*where))).scalar()


@pytest.fixture
async def seeded(db_url):
    store = Store(db_url)
    await _seed(store)
    yield store
    await store.aclose()


async def test_prune_removes_only_what_is_past_its_horizon(seeded):
    counts = await Pruner(seeded, HORIZONS, "node-a").prune(now=NOW)

    # Done rows older than 90 days are deleted (25); done rows 14..90 days old lose their body (15); pending and
    # dead rows keep everything, whatever their age.
    assert counts["inbox_rows"] == 25 and counts["inbox_bodies"] == 15
    assert await _count(seeded, inbox) == 15 + 5 + 2 + 3
    assert await _count(seeded, inbox, inbox.c.body == b"") == 15
    assert await _count(seeded, inbox, inbox.c.state.in_(("pending", "dead")), inbox.c.body == b'{"x": 1}') == 5
    # Alerts go only for the case closed 45 days ago; the case rows all stay.
    assert counts["alerts"] == 12
    assert [await _count(seeded, alerts, alerts.c.case_id == c) for c in (1, 2, 3)] == [12, 0, 12]
    assert await _count(seeded, cases) == 3
    # Done and discarded jobs finished 40 days ago go; young ones, dead letters and pending jobs stay.
    assert counts["jobs"] == 24
    assert await _count(seeded, jobs, jobs.c.state == "done") == 4
    assert await _count(seeded, jobs, jobs.c.state == "dead") == 3
    assert await _count(seeded, jobs, jobs.c.state == "pending") == 1
    assert counts["enrichment_cache"] == 1 and counts["budgets"] == 1


async def test_a_second_run_finds_nothing_more(seeded):
    await Pruner(seeded, HORIZONS, "node-a").prune(now=NOW)
    again = await Pruner(seeded, HORIZONS, "node-a").prune(now=NOW)
    assert again == {"inbox_bodies": 0, "inbox_rows": 0, "alerts": 0, "jobs": 0, "enrichment_cache": 0, "budgets": 0}


async def test_one_node_at_a_time(seeded):
    assert await Pruner(seeded, HORIZONS, "node-a").prune(now=NOW)
    assert await Pruner(seeded, HORIZONS, "node-b").prune(now=NOW) == {}  # node-a holds the lease
    assert await _count(seeded, inbox) == 25


async def test_sqlite_file_shrinks_after_pruning(tmp_path):
    import os

    url = f"sqlite:///{tmp_path / 'hub.db'}"
    from alertbridge.store import upgrade

    upgrade(url)
    store = Store(url)
    async with store.tx() as conn:
        await conn.execute(insert(inbox), [
            dict(source="s", received_at=NOW - 200 * DAY, body=b"x" * 4000, state="done") for _ in range(2000)
        ])
    await store.aclose()

    def file_size() -> int:
        import sqlite3

        with sqlite3.connect(tmp_path / "hub.db") as raw:
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return os.path.getsize(tmp_path / "hub.db")

    before = file_size()
    store = Store(url)
    assert (await Pruner(store, HORIZONS, "node-a").prune(now=NOW))["inbox_rows"] == 2000
    await store.aclose()
    assert file_size() < before / 4  # new databases use auto_vacuum=INCREMENTAL: the freed pages went back
