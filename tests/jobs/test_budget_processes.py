"""Two `alertbridge worker` processes on one PostgreSQL database share one sink's call budget: never above `rate_limit`.

100 `update_fields` jobs over 40 cases (each already has its ticket in a recording case system). The sink answers at
once, so two workers with 8 jobs in flight each could send hundreds of calls a second; with `rate_limit: 20/s` at
most 21 may leave in any one-second window: send times are 1/20 s apart across both workers, and the budget lets a
call leave up to half an interval after its send time, never later (jobs/budget.py), so a window can hold 20 send
times plus one from just before it. Without a binding budget most of them leave within one second (78 of the 100
with `rate_limit: 1000/s`, on a loaded machine) — and both workers must have sent some of them.

The moments judged are the senders' own: each worker notes the wall-clock reading at which its budget let a call go
(the ``budget.send`` failpoint armed with ``note``, src/alertbridge/failpoints.py). The case system's arrival times
would add a busy machine's scheduling jitter that says nothing of the budget; it only counts the calls.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import func, insert, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from alertbridge import failpoints
from alertbridge.jobs.payloads import UpdateFields
from alertbridge.jobs.queue import enqueue
from alertbridge.store import Store, upgrade
from alertbridge.store.tables import cases, jobs
from conftest import fresh_pg_database
from support.procs import ProcGroup, procs, stop_together, wait_until  # noqa: F401 - procs is a fixture
from support.recorder import Recorder, ServerThread

N_JOBS, N_CASES, RATE = 100, 40, 20  # 5 s of calls at the budget's pace

CONFIG = """\
database: "{db}"
workers: 8
sinks:
  cases:
    type: http
    url: "{sink}"
    rate_limit: {rate}/s
"""


SEND = re.compile(r"failpoint budget\.send: note ([0-9.e+]+) \(hit")  # one unbuffered write: whole even amid other output


@dataclass
class UpdateRecorder(Recorder):
    """The recording case system, counting the field updates it was sent."""

    updates: int = 0

    def app(self) -> Starlette:
        async def update(request: Request):
            values = (await request.json())["fields"]
            with self.lock:
                self.updates += 1
                self.tickets[request.path_params["key"]].setdefault("fields", {}).update(values)
            return JSONResponse({})

        return Starlette(routes=[Route("/tickets/{key}", update, methods=["PATCH"]), Mount("", app=super().app())])


async def seed(url: str, recorder: Recorder) -> None:
    store = Store(url)
    try:
        async with store.tx() as conn:
            now = time.time()
            ids = []
            for c in range(N_CASES):
                key = f"RATE-{c}"
                ids.append((await conn.execute(insert(cases).values(
                    route="rated", key=f"case-{c}", key_hash=f"{c:064x}", state="open", title=f"case {c}", severity="high",
                    source="test", first_seen=now, last_seen=now, sink="cases", ticket_key=key, ticket_url=f"http://recorder/{key}",
                    observables={},
                ).returning(cases.c.id))).scalar_one())
                recorder.tickets[key] = {"labels": [], "status": "open", "comments": [], "created": now}
            for n in range(N_JOBS):
                await enqueue(conn, UpdateFields(fields={"n": str(n)}), case_id=ids[n % N_CASES])
    finally:
        await store.aclose()


def busiest_second(moments: list[float]) -> int:
    """Return the most calls within any one second."""
    moments = sorted(moments)
    start, most = 0, 0
    for end, at in enumerate(moments):
        while at - moments[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.fixture
def rated_db():
    with fresh_pg_database("alertbridge_rate") as url:
        yield url


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_together_never_send_a_sink_more_than_its_rate_limit(tmp_path: Path, rated_db: str, procs: ProcGroup):
    recorder = UpdateRecorder()
    with ServerThread(recorder.app()) as sink_url:
        config = tmp_path / "alertbridge.yaml"
        config.write_text(CONFIG.format(db=rated_db, sink=sink_url, rate=RATE))
        upgrade(rated_db)  # in this process: `db upgrade` as a subprocess costs a start-up (~2-4 s) and is tested in test_cli
        asyncio.run(seed(rated_db, recorder))
        engine = sqlalchemy.create_engine(rated_db.replace("postgresql://", "postgresql+psycopg://"), poolclass=sqlalchemy.NullPool)
        try:
            def done() -> int:
                with engine.connect() as conn:
                    return conn.execute(select(func.count()).select_from(jobs).where(jobs.c.state == "done")).scalar_one()

            workers = [procs.start(f"worker{i}", "worker", "--config", str(config), env={failpoints.ENV: "budget.send=note"})
                       for i in range(2)]
            wait_until(lambda: done() == N_JOBS, timeout=90, interval=0.2, what=f"all {N_JOBS} jobs done", group=procs)
            for worker in workers:
                assert worker.alive(), f"{worker.name} died\n{procs.logs()}"
            stop_together(workers)
            with engine.connect() as conn:
                by_worker = dict(conn.execute(select(jobs.c.worker, func.count()).group_by(jobs.c.worker)).all())
        finally:
            engine.dispose()
        with recorder.lock:
            updates = recorder.updates

    sent = {worker.name: [float(at) for at in SEND.findall(worker.log.read_text(errors="replace"))] for worker in workers}
    assert updates == N_JOBS == sum(map(len, sent.values())), (updates, {name: len(times) for name, times in sent.items()})
    assert {f"{socket.gethostname()}:{w.pid}" for w in workers} == set(by_worker), by_worker  # both shared the work
    assert all(sent.values()), {name: len(times) for name, times in sent.items()}
    most = busiest_second([at for times in sent.values() for at in times])
    assert most <= RATE + 1, f"{most} calls left in one second, the budget is {RATE}/s"
