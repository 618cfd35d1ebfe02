"""The hub's health as notifications: each condition told when it starts, grows or clears, to notifiers with `health: true`."""

from __future__ import annotations

import time

from sqlalchemy import insert, update

from alertbridge.metrics import RATE_LIMITED
from alertbridge.notify_policy import HealthPolicy
from alertbridge.pipeline.health import HealthWatch
from alertbridge.store.tables import cursors, jobs
from support.hub import drain
from support.notify_hub import NOTIFIERS, emulator, notify_hub, sandbox_app


async def dead_job(hub, error: str) -> None:
    now = time.time()
    async with hub.store.tx() as conn:
        await conn.execute(insert(jobs).values(kind="comment_repeats", payload={}, state="dead", run_after=now, created_at=now, last_error=error))


async def test_conditions_are_told_when_they_start_grow_and_clear(tmp_path):
    app = sandbox_app()
    hub = notify_hub(tmp_path, app, [], notifiers={**NOTIFIERS, "slack": {**NOTIFIERS["slack"], "health": True}})
    try:
        watch = HealthWatch(hub.store, HealthPolicy(dead_letters=1, poll_stale=600, rate_limited=3), ["falcon"], ["slack"])
        assert [e.condition for e in await watch.check()] == []
        await dead_job(hub, "jira POST /rest/api/3/issue -> 401: unauthorized")
        started = await watch.check()
        assert {(e.condition, e.firing) for e in started} == {("dead_letters", True), ("auth_failures", True)}
        assert await watch.check() == []  # told once while nothing changes
        await dead_job(hub, "jira POST /rest/api/3/issue -> 400: bad field")
        assert [(e.condition, e.summary) for e in await watch.check()] == [("dead_letters", "2 jobs in the dead-letter list")]
        async with hub.store.tx() as conn:
            await conn.execute(update(jobs).values(state="discarded"))
            await conn.execute(insert(cursors).values(name="falcon", value="x", updated_at=time.time() - 3600))
        for _ in range(3):
            RATE_LIMITED.labels("jira", "jira-burst-based").inc()
        later = {(e.condition, e.firing) for e in await watch.check()}
        assert later == {("dead_letters", False), ("auth_failures", False), ("poll_stale:falcon", True), ("rate_limited", True)}
        assert {(e.condition, e.firing) for e in await watch.check()} == {("rate_limited", False)}

        await watch.tell(started)
        assert await drain(hub) == ["notify_health:done", "notify_health:done"]
        headers = [m["blocks"][0]["text"]["text"] for m in emulator(app, "slack").channels["C0SOCALERTS"]]
        assert sorted(headers) == ["🚨 alertbridge: 1 jobs dead because a vendor refused the credentials",
                                   "🚨 alertbridge: 1 jobs in the dead-letter list"]
    finally:
        await hub.aclose()
