"""SIGKILL a worker at each failpoint of the ticket create, three times, on SQLite and PostgreSQL: one case, one ticket.

`alertbridge worker` runs as a subprocess with ``ALERTBRIDGE_FAILPOINTS=<point>=kill``
(src/alertbridge/failpoints.py), so it kills itself at exactly that line of the create
job — no timing luck involved:

- ``create.before_call``    the claims are committed, Jira never saw the request;
- ``create.after_remote``   Jira created the issues, the worker recorded no key;
- ``create.after_commit``   a bulk create is cut after its first case's commit: one key recorded, the rest not;
- ``create.during_search``  a worker recovering a claim without a key dies right after its label search answered
                            (so the recovery itself is interrupted).

Each round the test puts the alerts of four new cases (and repeats of older ones) through
the inbox and the processor in-process, so the four create jobs wait together, then starts
one armed worker (one job runner: it takes the four in one bulk create) and waits for the
failpoint to kill it. At each death the test reads the database and the sandbox and
asserts the state that point leaves. After the kills a clean worker drains the queue, and
the end check is DESIGN.md §2 (`harness.check_outcome`) plus, for every case a kill left
claimed without a key, that a later worker searched for *that case's* label and recorded
the issue the dead worker had created — or, if none was, created exactly one.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import select

from alertbridge import failpoints
from alertbridge.config import load_config
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from alertbridge.service import Hub
from alertbridge.store import upgrade
from alertbridge.store.tables import cases
from conftest import fresh_pg_database
from faults.harness import (DEATH_TIMEOUT, DRAIN_TIMEOUT, SearchedLabels, Sender, check_outcome, issues_by_label, plan, sync_url,
                            wait_drained, write_config)
from support.procs import ProcGroup, procs  # noqa: F401 - procs is a fixture
from support.recorder import ServerThread

ROUNDS = 3  # kills per failpoint
CASES_PER_ROUND = 4
ALERTS_PER_CASE = 3
SEARCH_LAG = 1.0  # the hub trusts an empty label search this long after a claim...
SANDBOX_SEARCH_LAG = 0.5  # ...and the sandbox's index shows a new issue after this long


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    """An empty, migrated database of each kind, for this test only."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.db'}"
        upgrade(url)
        yield url
        return
    with fresh_pg_database("alertbridge_kill") as url:
        upgrade(url)
        yield url


@dataclass
class Death:
    """What one killed worker left behind."""

    point: str
    new_cases: set[int]  # the cases this round opened
    keys: dict[int, str | None]  # every case's recorded ticket key
    interrupted: set[int]  # claimed for a create, no key recorded
    created: set[str]  # the issues Jira made while this worker ran
    issues: set[str]  # every issue Jira has
    searched: list[str]  # the labels this worker searched for, in order
    searches_then: int  # how many label searches had happened in all, at the death


def read_cases(engine: sqlalchemy.Engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(cases.c.id, cases.c.title, cases.c.ticket_key, cases.c.create_claimed_at)).all()


def case_of_label(jira_state, rows) -> dict[str, int]:
    """Map each case label in Jira to its case, through the issue's summary (`[HIGH] <case title>`, one case per title)."""
    by_title = {row.title: row.id for row in rows}
    return {label: by_title[jira_state.issues[keys[0]].fields["summary"].split("] ", 1)[1]]
            for label, keys in issues_by_label(jira_state).items()}  # fmt: skip


def check_death(death: Death, cases_by_label: dict[str, int]) -> None:
    """Assert the state the failpoint leaves."""
    new, created = death.new_cases, death.created
    if death.point == "create.before_call":  # claims committed, nothing sent
        assert death.interrupted and not created, death
    elif death.point == "create.after_remote":  # the round's bulk create made every issue, no key recorded
        assert new <= death.interrupted and len(created) == len(new), death
    elif death.point == "create.after_commit":  # the bulk partial commit: the first case's key committed, the others not
        keyed = {case for case in new if death.keys[case]}
        assert len(keyed) == 1 and new - keyed <= death.interrupted and len(created) == len(new), death
        assert death.keys[keyed.pop()] in created, death
    else:  # create.during_search: dead right after searching for the label of a case claimed without a key
        assert death.searched and cases_by_label.get(death.searched[-1]) in death.interrupted, death


@pytest.mark.slow
@pytest.mark.parametrize("point", ["create.before_call", "create.after_remote", "create.after_commit", "create.during_search"])
async def test_three_kills_at_a_failpoint_leave_one_issue_per_case(point: str, database: str, tmp_path: Path, procs: ProcGroup):
    n_cases = ROUNDS * CASES_PER_ROUND
    alerts = plan(n_cases * ALERTS_PER_CASE, n_cases, seed=sum(map(ord, point)))
    per_round = len(alerts) // ROUNDS
    rounds = [alerts[r * per_round : (r + 1) * per_round] for r in range(ROUNDS)]
    # A recovery search needs a claim without a key to recover: a first, uncounted kill after the remote create makes one.
    arming = (["create.after_remote=kill"] if point == "create.during_search" else []) + [f"{point}=kill"] * ROUNDS

    sandbox = create_app(JiraSandboxSettings(search_lag_seconds=SANDBOX_SEARCH_LAG))
    searched = SearchedLabels(sandbox)
    jira = sandbox.state.jira
    with ServerThread(searched) as jira_url:
        config = write_config(tmp_path / "hub.json", database=database, jira_url=jira_url, workers=1, lease="1.5s",
                              search_lag=f"{SEARCH_LAG}s", retry={"max_attempts": 10, "base_delay": "0.1s", "max_delay": "1s"})
        intake = Hub(load_config(config))  # the inbox and its processor, in this process; the job runners are the workers
        engine = sqlalchemy.create_engine(sync_url(database), poolclass=sqlalchemy.NullPool)
        deaths: list[Death] = []
        t0 = time.monotonic()
        try:
            for number, spec in enumerate(arming):
                known = {row.id for row in read_cases(engine)}
                for body in rounds[number] if number < ROUNDS else []:
                    await intake.inbox.put("gen", json.dumps(body).encode())
                while await intake.pipeline.process_batch():
                    pass
                issues_before, searches_before = set(jira.issues), len(searched.labels)
                worker = procs.start(f"worker-{number}", "worker", "--config", str(config), env={failpoints.ENV: spec})
                try:
                    code = await asyncio.to_thread(worker.wait, DEATH_TIMEOUT)
                except subprocess.TimeoutExpired:
                    procs.fail(f"round {number}: {spec} never fired (the worker is still alive)")
                name = spec.split("=")[0]
                assert code == -signal.SIGKILL and f"failpoint {name}: kill" in worker.tail(400), f"round {number} ({spec}) ended with {code}\n{procs.logs()}"
                rows = read_cases(engine)
                death = Death(name, {r.id for r in rows} - known, {r.id: r.ticket_key for r in rows},
                              {r.id for r in rows if r.ticket_key is None and r.create_claimed_at is not None},
                              set(jira.issues) - issues_before, set(jira.issues), searched.labels[searches_before:], len(searched.labels))
                check_death(death, case_of_label(jira, rows))
                deaths.append(death)
                print(f"round {number}: {spec} fired at {time.monotonic() - t0:.1f}s; {len(death.interrupted)} claimed without a key",
                      file=sys.stderr)

            clean = procs.start("worker-clean", "worker", "--config", str(config))
            await wait_drained(engine, procs, DRAIN_TIMEOUT)
            assert clean.stop() in (0, -signal.SIGTERM), procs.logs()
            summary = check_outcome(engine, jira, sender=Sender("in-process", acked={a["id"] for a in alerts}), sent=alerts)
            final_rows = read_cases(engine)
        finally:
            engine.dispose()
            await intake.aclose()
    # Every case a kill left claimed without a key was recovered by a search for its own label, later on: it records
    # the issue the dead worker had made, or — if the kill came before the request — the one issue made afterwards.
    labels = {case: label for label, case in case_of_label(jira, final_rows).items()}
    final = {row.id: row.ticket_key for row in final_rows}
    for death in deaths:
        for case in death.interrupted:
            assert labels[case] in searched.labels[death.searches_then :], f"case {case} left by {death.point}: its label was never searched"
            assert (final[case] in death.issues) == (death.point != "create.before_call"), (case, final[case], death)
    print(f"{point}: {len(deaths)} kills, {len(searched.labels)} label searches, {summary}", file=sys.stderr)


# --- the failpoint facility itself ---------------------------------------------------------------


def test_failpoints_parse_and_fire_on_the_nth_hit():
    try:
        failpoints.configure("create.after_remote=raise@2; create.before_call=raise")
        failpoints.hit("create.after_remote")  # 1st hit: nothing
        failpoints.hit("create.after_commit")  # not armed
        with pytest.raises(failpoints.FailpointError, match="create.after_remote"):
            failpoints.hit("create.after_remote")
        failpoints.hit("create.after_remote")  # 3rd hit: nothing again
        with pytest.raises(failpoints.FailpointError, match="create.before_call"):
            failpoints.hit("create.before_call")
    finally:
        failpoints.configure("")
    failpoints.hit("create.after_remote")  # disarmed


def test_a_note_writes_the_value_on_every_hit_from_the_nth(capfd):
    try:
        failpoints.configure("budget.send=note@2")
        for value in (1.5, 2.5, 3.5):
            failpoints.note("budget.send", value)
        failpoints.hit("budget.send")
    finally:
        failpoints.configure("")
    failpoints.note("budget.send", 4.5)  # disarmed
    lines = capfd.readouterr().err.splitlines()
    assert [line.split(", pid")[0] for line in lines] == [
        "failpoint budget.send: note 2.5 (hit 2", "failpoint budget.send: note 3.5 (hit 3", "failpoint budget.send: note (hit 4"]


@pytest.mark.parametrize("spec", ["create.after_remot=kill", "create.after_remote", "create.after_remote=explode",
                                  "create.after_remote=kill@0", "create.after_remote=kill@x"])
def test_a_malformed_failpoint_spec_is_refused(spec: str):
    with pytest.raises(ValueError, match=failpoints.ENV):
        failpoints.parse(spec)


def test_failpoints_are_disarmed_without_the_variable():
    assert failpoints.parse("") == {}
    assert set(failpoints.POINTS) == {"create.before_call", "create.after_remote", "create.after_commit", "create.during_search",
                                      "notify.after_call", "review.after_page", "comment.after_call",  # these three: test_notify_crash.py
                                      "budget.send"}  # tests/jobs/test_budget_processes.py
    for name in failpoints.POINTS:
        assert name in failpoints.__doc__
