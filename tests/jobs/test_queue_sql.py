"""The queue's PostgreSQL claims in the driver's SQL take exactly the jobs its SQLAlchemy claims take, shape by shape."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy
from sqlalchemy import insert

from alertbridge.config import Retry
from alertbridge.jobs.queue import _PG, JobQueue, release_held
from alertbridge.store import Store, cursor, upgrade
from alertbridge.store.tables import cases, jobs
from conftest import fresh_pg_database

NOW = 1_000.0


@pytest.fixture(scope="module")
def engine():
    with fresh_pg_database() as url:
        upgrade(url)
        engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as conn:
            _fill(conn)
        yield engine
        engine.dispose()


def _fill(conn) -> None:
    """Cases on two sinks at every severity, and jobs of every rank: due, not yet due, blocked, held, leased and lapsed."""
    base = {"route": "r", "key": "k", "title": "t", "state": "open", "source": "s", "first_seen": 0.0, "last_seen": 0.0, "observables": []}
    severities = ["critical", "high", "medium", "low"]
    for n in range(1, 9):
        conn.execute(insert(cases).values(base | {"key_hash": f"h{n}", "reference": f"ref{n}", "severity": severities[n % 4],
                                                  "sink": "jira" if n % 2 else "snow"}))
    rows = []
    for n, kind in enumerate(itertools.islice(itertools.cycle(["create_ticket", "comment_repeats", "notify", "create_sink_ticket",
                                                                "transition"]), 40)):
        state, lease = "pending", None
        if n % 11 == 3:
            state, lease = "running", NOW - 1  # a lapsed lease: claimable again
        elif n % 13 == 5:
            state, lease = "running", NOW + 60  # leased: not claimable, and it blocks its case
        elif n % 17 == 7:
            state = "held"
        rows.append({"case_id": None if n % 9 == 8 else n % 8 + 1, "kind": kind, "payload": {"n": n}, "state": state,
                     "run_after": NOW + (30 if n % 7 == 6 else -n), "created_at": NOW - 40 + n, "lane": "snow" if n % 10 == 4 else None,
                     "lease_until": lease, "attempts": 1 if state == "running" else 0})
    conn.execute(insert(jobs), rows)


SHAPES = [(in_hand, kinds, skip, only) for in_hand in ((), (1, 2, 9)) for kinds in ((), ("create_ticket",), ("notify", "transition"))
          for skip in ((), ("jira",), ("jira", "snow")) for only in (None, "jira", "snow")]


@pytest.mark.parametrize("limit", [1, 5, 40])
def test_each_shape_claims_what_the_sqlalchemy_claim_claims(engine, limit):
    q = JobQueue(Store.__new__(Store), Retry(), 30.0, "w1", clock=lambda: NOW)
    claimed = 0
    for in_hand, kinds, skip, only in SHAPES:
        core = q._claim_statements(bool(in_hand), kinds, tuple(sorted(skip)), only)[1]
        with engine.connect() as conn:
            with conn.begin():
                expected = conn.execute(core, {"now": NOW, "limit": limit, "in_hand": list(in_hand), "lease_until": NOW + 30}).all()
                conn.rollback()
            with conn.begin():
                sql, params = _PG.claim(NOW, 30.0, "w1", limit, in_hand, kinds, skip, only)
                got = cursor.fetch_all(conn, sql, params)
                # RETURNING follows no order: the queue sorts the claimed jobs into line itself.
                assert sorted(tuple(row) for row in got) == sorted((r.id, r.case_id, r.kind, r.payload, r.attempts, r.created_at, r.sink,
                                                                   r.rank) for r in expected), (in_hand, kinds, skip, only)
                conn.rollback()
        claimed += bool(expected)
    assert claimed >= len(SHAPES) // 3, "most shapes claimed nothing: the rows above test too little"


def test_held_jobs_of_the_given_cases_only_go_back_to_pending(engine):
    with engine.connect() as conn, conn.begin() as transaction:
        held = dict(conn.execute(sqlalchemy.select(jobs.c.id, jobs.c.case_id).where(jobs.c.state == "held")).all())
        assert len(set(held.values())) >= 2
        chosen = sorted(set(held.values()))[:1]
        release_held(conn, chosen)
        states = dict(conn.execute(sqlalchemy.select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(held))).all())
        transaction.rollback()  # the claims' test shares these rows
    assert {job: states[job] for job in held} == {job: "pending" if case in chosen else "held" for job, case in held.items()}
