"""Three `alertbridge worker` processes on one PostgreSQL database; one is killed with jobs in hand.

DESIGN.md §3: workers claim with FOR UPDATE SKIP LOCKED under a lease, and a
dead worker's lease expires so another takes its jobs over with no operator
action. §2: jobs of one case run one at a time, in order.

1,000 `update_fields` jobs over 50 cases (each case already has its ticket in a
recording case system) carry a per-case sequence number. The recording server
notes when each PATCH enters and leaves (it sleeps a little inside, longer for
every 7th job, so overlaps would show and a worker can be killed mid-call).
When ~30% are done the test SIGKILLs a worker that is running a slow job and
waits for the two others to finish everything. Then:

- every job is done; each (case, seq) reached the sink at least once, and more
  than once only if it was in the killed worker's hands when it died;
- no two executions of jobs of one case (the same job included) overlap;
- per case, the sequence numbers reached the sink in increasing order.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import func, insert, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from alertbridge.jobs.payloads import UpdateFields
from alertbridge.jobs.queue import enqueue
from alertbridge.store import Store
from alertbridge.store.tables import cases, jobs
from conftest import fresh_pg_database
from support.procs import ProcGroup, procs, wait_until  # noqa: F401 - procs is a fixture
from support.recorder import Recorder, ServerThread

N_JOBS = 1000
N_CASES = 50
N_WORKERS = 3
FAST, SLOW = 0.03, 0.4  # seconds the sink spends inside a PATCH; SLOW stays well under the lease
LEASE = 2.0
KILL_AT = 0.3  # fraction of jobs done when one worker is killed
DONE_TIMEOUT = 90.0

CONFIG = """\
database: "{db}"
workers: 4
lease: {lease}s
search_lag: 1s
retry:
  base_delay: 0.2s
  max_delay: 2s
sinks:
  cases:
    type: http
    url: "{sink}"
    timeout: 10
"""


def slow(job_no: int) -> bool:
    return job_no % 7 == 0


@dataclass
class Execution:
    """One PATCH as the sink saw it."""

    ticket: str
    seq: int
    job_no: int
    entered: float  # time.monotonic(), for overlaps
    left: float
    entered_at: float  # time.time(), to compare with the leases the workers write


@dataclass
class TimingRecorder(Recorder):
    """The recording case system, plus the enter and leave time of every field update."""

    executions: list[Execution] = field(default_factory=list)
    inflight: dict[int, float] = field(default_factory=dict)  # job number -> when its PATCH entered

    def app(self) -> Starlette:
        async def update(request: Request):
            key = request.path_params["key"]
            values = (await request.json())["fields"]
            job_no = int(values["job"])
            entered, entered_at = time.monotonic(), time.time()
            with self.lock:
                self.inflight[job_no] = entered
            try:
                await asyncio.sleep(SLOW if slow(job_no) else FAST)
            finally:  # recorded even if the caller is gone by now
                with self.lock:
                    self.inflight.pop(job_no, None)
                    self.tickets[key].setdefault("fields", {}).update(values)
                    self.calls.append(("update", key))
                    self.executions.append(Execution(key, int(values["seq"]), job_no, entered, time.monotonic(), entered_at))
            return JSONResponse({})

        return Starlette(routes=[Route("/tickets/{key}", update, methods=["PATCH"]), Mount("", app=super().app())])


@pytest.fixture
def scaleout_db():
    """A fresh PostgreSQL database for this test."""
    with fresh_pg_database("alertbridge_test") as url:
        yield url


async def seed(url: str, recorder: Recorder) -> dict[str, int]:
    """Open 50 cases that already have tickets, and queue 20 numbered field updates for each; return ticket -> case id."""
    store = Store(url)
    ticket_case: dict[str, int] = {}
    try:
        async with store.tx() as conn:
            now = time.time()
            for c in range(N_CASES):
                key = f"SCALE-{c}"
                case_id = (await conn.execute(insert(cases).values(
                    route="scaleout", key=f"case-{c}", key_hash=f"{c:064x}", state="open", title=f"case {c}", severity="high",
                    source="test", first_seen=now, last_seen=now, sink="cases", ticket_key=key, ticket_url=f"http://recorder/{key}",
                    observables={},
                ).returning(cases.c.id))).scalar_one()
                ticket_case[key] = case_id
                recorder.tickets[key] = {"labels": [f"alertbridge-{case_id}"], "status": "open", "comments": [], "created": now}
            keys = list(ticket_case)
            # Interleaved, so each case's jobs are spread over the whole id range as in real traffic.
            for n in range(N_JOBS):
                key = keys[n % N_CASES]
                await enqueue(conn, UpdateFields(fields={"seq": str(n // N_CASES), "job": str(n)}), case_id=ticket_case[key])
    finally:
        await store.aclose()
    return ticket_case


@pytest.mark.slow
@pytest.mark.postgres
def test_three_workers_one_killed_every_job_done_in_order_never_concurrently(tmp_path: Path, scaleout_db: str, procs: ProcGroup):
    recorder = TimingRecorder()
    with ServerThread(recorder.app()) as sink_url:
        config = tmp_path / "alertbridge.yaml"
        config.write_text(CONFIG.format(db=scaleout_db, lease=LEASE, sink=sink_url))
        procs.run("db", "upgrade", "--config", str(config))
        ticket_case = asyncio.run(seed(scaleout_db, recorder))
        case_ticket = {case_id: key for key, case_id in ticket_case.items()}

        engine = sqlalchemy.create_engine(scaleout_db.replace("postgresql://", "postgresql+psycopg://"), poolclass=sqlalchemy.NullPool)
        try:
            def done() -> int:
                with engine.connect() as conn:
                    return conn.execute(select(func.count()).select_from(jobs).where(jobs.c.state == "done")).scalar_one()

            def states() -> dict[str, int]:
                with engine.connect() as conn:
                    return dict(conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)).all())

            def running() -> list[tuple[str, int, dict, float]]:
                with engine.connect() as conn:
                    query = select(jobs.c.worker, jobs.c.id, jobs.c.payload, jobs.c.lease_until).where(jobs.c.state == "running")
                    return conn.execute(query).all()

            workers = [procs.start(f"worker{i}", "worker", "--config", str(config)) for i in range(N_WORKERS)]
            by_id = {f"{socket.gethostname()}:{w.pid}": w for w in workers}

            wait_until(lambda: done() >= N_JOBS * KILL_AT, timeout=60, what=f"{KILL_AT:.0%} of the jobs done", group=procs,
                       status=states)
            for w in workers:
                assert w.alive(), f"{w.name} died on its own\n{procs.logs()}"

            # Kill a worker whose slow call the sink has only just entered: it holds that job's lease, and the
            # sink will see the call through, so the job must reach the sink exactly twice (before and after takeover).
            def a_worker_mid_call() -> tuple[str, int] | None:
                now = time.monotonic()
                with recorder.lock:
                    fresh = [j for j, entered in recorder.inflight.items() if slow(j) and now - entered < SLOW / 4]
                if not fresh:
                    return None
                holders = {int(payload["fields"]["job"]): worker for worker, _, payload, _ in running()}
                return next(((holders[j], j) for j in fresh if j in holders), None)

            victim_id, cut_job = wait_until(a_worker_mid_call, timeout=20, interval=0.005, what="a worker inside a slow call",
                                            group=procs, status=states)
            victim = by_id[victim_id]
            victim.kill()
            killed_at = time.monotonic()
            in_hand = {job_id: (payload, lease_until) for worker, job_id, payload, lease_until in running() if worker == victim_id}
            assert cut_job in {int(p["fields"]["job"]) for p, _ in in_hand.values()}, (cut_job, in_hand)

            wait_until(lambda: done() == N_JOBS, timeout=DONE_TIMEOUT, interval=0.2, what=f"all {N_JOBS} jobs done", group=procs,
                       status=states)
            survivors = [w for w in workers if w is not victim]
            for w in survivors:
                assert w.alive(), f"{w.name} died on its own\n{procs.logs()}"
                w.stop()

            with engine.connect() as conn:
                rows = conn.execute(select(jobs.c.id, jobs.c.case_id, jobs.c.state, jobs.c.attempts, jobs.c.worker, jobs.c.payload)).all()
        finally:
            engine.dispose()

        with recorder.lock:
            executions = list(recorder.executions)

    # Every job is done, with no operator action; the killed worker's jobs were taken over by the others.
    final_states = Counter(row.state for row in rows)
    assert final_states == {"done": N_JOBS}, final_states
    finished_by = {row.id: row for row in rows}
    for job_id in in_hand:
        assert finished_by[job_id].worker != victim_id, f"job {job_id} is recorded as finished by the dead worker"
        assert finished_by[job_id].attempts >= 2
    survivor_ids = {f"{socket.gethostname()}:{w.pid}" for w in survivors}
    assert survivor_ids <= {row.worker for row in rows}, "a surviving worker did no job: this was not a scale-out run"

    # Each (case, seq) reached the sink; twice only if the dead worker had it in hand (it may have sent it before dying).
    seen = Counter((e.ticket, e.seq) for e in executions)
    expected = {(case_ticket[row.case_id], int(row.payload["fields"]["seq"])) for row in rows}
    assert len(expected) == N_JOBS
    missing = expected - set(seen)
    assert not missing, f"{len(missing)} jobs never reached the sink: {sorted(missing)[:10]}"
    assert set(seen) == expected
    lease_of = {(case_ticket[finished_by[j].case_id], int(p["fields"]["seq"])): lease for j, (p, lease) in in_hand.items()}
    may_repeat = set(lease_of)
    repeated = {k: n for k, n in seen.items() if n > 1}
    assert set(repeated) <= may_repeat, f"jobs run twice that the dead worker never held: {sorted(set(repeated) - may_repeat)}"
    assert all(n == 2 for n in repeated.values()), repeated
    cut = next((case_ticket[row.case_id], int(row.payload["fields"]["seq"])) for row in rows if int(row.payload["fields"]["job"]) == cut_job)
    assert seen[cut] == 2, f"the job cut off mid-call ({cut}) reached the sink {seen[cut]} time(s), not once before and once after the takeover"

    # Per case: executions never overlap (neither a job with itself nor two jobs of the case), and seq never goes back.
    per_case: dict[str, list[Execution]] = defaultdict(list)
    for e in executions:
        per_case[e.ticket].append(e)
    for ticket, runs in per_case.items():
        runs.sort(key=lambda e: e.entered)
        for before, after in zip(runs, runs[1:]):
            assert before.left <= after.entered, (
                f"{ticket}: seq {before.seq} (job {before.job_no}) and seq {after.seq} (job {after.job_no}) ran at the same time"
            )
        order = [e.seq for e in runs]
        assert order == sorted(order), f"{ticket}: applied out of order: {order}"
        first_applied = list(dict.fromkeys(order))
        assert first_applied == list(range(N_JOBS // N_CASES)), f"{ticket}: {first_applied}"
    # A job sent again was sent by its new owner once the dead worker's lease had run out, not before.
    for (ticket, seq) in repeated:
        again = sorted((e for e in per_case[ticket] if e.seq == seq), key=lambda e: e.entered)[1]
        assert again.entered > killed_at, f"{ticket} seq {seq} ran twice before the kill"
        assert again.entered_at >= lease_of[ticket, seq], f"{ticket} seq {seq} was taken over before its lease ran out"
    print(f"killed {victim.name} holding {len(in_hand)} job(s); {len(repeated)} re-sent after takeover; "
          f"{len(executions)} executions in all; done by worker: {Counter(row.worker for row in rows)}")
