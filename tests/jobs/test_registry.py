"""The job registry: every kind has a payload model and a handler; anything else is dead-lettered with the reason."""

from __future__ import annotations

import time

from sqlalchemy import insert, select

from alertbridge.jobs import payloads
from alertbridge.jobs.queue import JobPayload
from alertbridge.jobs.registry import KINDS
from alertbridge.store.tables import jobs
from support.hub import drain, make_hub
from support.recorder import Recorder


def test_every_payload_model_is_registered_under_its_own_kind():
    models = {m for m in vars(payloads).values() if isinstance(m, type) and issubclass(m, JobPayload) and m is not JobPayload}
    assert {kind.payload for kind in KINDS.values()} == models
    assert all(name == kind.payload.kind for name, kind in KINDS.items())


async def test_an_unknown_kind_or_a_malformed_payload_is_dead_lettered_with_the_reason(tmp_path):
    hub = make_hub(tmp_path, [], Recorder())
    try:
        now = time.time()
        async with hub.store.tx() as conn:
            await conn.execute(insert(jobs), [
                {"kind": "send_fax", "payload": {}, "run_after": now, "created_at": now},
                {"kind": "transition", "payload": {"resolution": "Done"}, "run_after": now, "created_at": now},
            ])
        assert await drain(hub) == ["send_fax:dead", "transition:dead"]
        async with hub.store.read() as conn:
            reasons = (await conn.execute(select(jobs.c.last_error).order_by(jobs.c.id))).scalars().all()
    finally:
        await hub.aclose()
    assert reasons[0] == f"unknown job kind 'send_fax' (known: {', '.join(sorted(KINDS))})"
    assert reasons[1] == "transition job has a malformed payload: to: Field required"
