"""Hubs that share one Jira project never take each other's tickets (issue 9), with SIGKILLs between create and commit.

Case ids start at 1 in every database, so two hubs with their own databases — or one hub before and after
its database is deleted — both have a case 1. Their references (`alertbridge-<instance>-<case id>`) differ, so
a hub recovering a create cut off by a kill searches for its own reference only:

- two `alertbridge serve` processes on separate SQLite files, one sandbox project, cases 1…N each, both
  killed by the `create.after_remote` failpoint (the issue exists, the hub never recorded its key) and then
  `create.after_commit`: every case ends with its own issue, and no hub adopts or comments on the other's;
- one hub whose database is deleted and made again: the new cases get new issues, the old issues are untouched.

`harness.check_outcome(shared=True)` checks DESIGN.md §2 per hub, over the issues carrying its instance.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import httpx2
import pytest
import sqlalchemy

from alertbridge import failpoints
from alertbridge.sandbox.jira.adf import to_text
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from faults.harness import (DEATH_TIMEOUT, DRAIN_TIMEOUT, Sender, check_outcome, healthy_or_dead, instance_of, plan, wait_drained,
                            write_config)
from support.procs import ProcGroup, free_port, procs  # noqa: F401 - procs is a fixture
from support.recorder import ServerThread

N_CASES = 6
ALERTS_PER_CASE = 3
KILLS = ["create.after_remote=kill", "create.after_commit=kill"]  # one incarnation each, then a clean one


class Hub:
    """One hub of the test: its config, database, sender and alerts (titled after the hub, so cross-talk shows)."""

    def __init__(self, name: str, tmp_path: Path, jira_url: str):
        self.name = name
        self.port = free_port()
        self.db = tmp_path / f"{name}.db"
        self.config = write_config(tmp_path / f"{name}.json", database=f"sqlite:///{self.db}", jira_url=jira_url,
                                   port=self.port, workers=4, lease="1.5s", search_lag="1s",
                                   retry={"max_attempts": 10, "base_delay": "0.1s", "max_delay": "1s"})
        self.sender = Sender(f"http://127.0.0.1:{self.port}")
        self.alerts = [{**a, "id": f"{name}-{a['id']}", "title": f"{name}-{a['title']}"}
                       for a in plan(N_CASES * ALERTS_PER_CASE, N_CASES, seed=len(name))]

    def start(self, group: ProcGroup, label: str, failpoint: str | None = None):
        return group.start(f"{self.name}-{label}", "serve", "--config", str(self.config),
                           env={failpoints.ENV: failpoint} if failpoint else None)

    def engine(self) -> sqlalchemy.Engine:
        return sqlalchemy.create_engine(f"sqlite:///{self.db}", poolclass=sqlalchemy.NullPool)


async def run_until_killed(client: httpx2.AsyncClient, hub: Hub, group: ProcGroup, failpoint: str, alerts: list[dict]) -> None:
    """Start the hub armed with `failpoint`, send what it has not acknowledged, and wait for the failpoint to kill it."""
    proc = hub.start(group, failpoint.split("=")[0], failpoint)
    if await healthy_or_dead(client, hub.sender.base_url, proc, group):
        due = [a for a in alerts if a["id"] not in hub.sender.acked]
        await hub.sender.send_all(client, due, until=time.monotonic() + DEATH_TIMEOUT, alive=proc.alive)
    try:
        code = await asyncio.to_thread(proc.wait, DEATH_TIMEOUT)
    except subprocess.TimeoutExpired:
        group.fail(f"{hub.name}: {failpoint} never fired")
    assert code == -signal.SIGKILL and f"failpoint {failpoint.split('=')[0]}: kill" in proc.tail(400), group.logs()


async def run_clean(client: httpx2.AsyncClient, hub: Hub, group: ProcGroup, alerts: list[dict]) -> dict:
    """Start the hub unarmed, send the rest, wait until its queue drains, stop it; return its queue counts."""
    proc = hub.start(group, "clean")
    assert await healthy_or_dead(client, hub.sender.base_url, proc, group), group.logs()
    await hub.sender.send_all(client, [a for a in alerts if a["id"] not in hub.sender.acked], until=time.monotonic() + 20)
    engine = hub.engine()
    try:
        counts = await wait_drained(engine, group, DRAIN_TIMEOUT)
    finally:
        engine.dispose()
    assert proc.stop() in (0, -signal.SIGTERM), group.logs()
    return counts


def comments_text(issue) -> list[str]:
    return [to_text(comment["body"]) for comment in issue.comments]


@pytest.mark.slow
async def test_two_hubs_on_one_project_never_take_each_others_tickets(tmp_path: Path, procs: ProcGroup):
    sandbox = create_app(JiraSandboxSettings(search_lag_seconds=0.5))
    jira = sandbox.state.jira
    with ServerThread(sandbox) as jira_url:
        hubs = [Hub("a", tmp_path, jira_url), Hub("b", tmp_path, jira_url)]
        async with httpx2.AsyncClient() as client:
            # Both hubs die at the same point, at the same time: first with the first cases' alerts, then with all of
            # them, so the second incarnation has claims to recover *and* new cases to create (and commit).
            for failpoint, sent in zip(KILLS, (2 * ALERTS_PER_CASE, len(hubs[0].alerts)), strict=True):
                await asyncio.gather(*(run_until_killed(client, hub, procs, failpoint, hub.alerts[:sent]) for hub in hubs))
            await asyncio.gather(*(run_clean(client, hub, procs, hub.alerts) for hub in hubs))
        searches = sum(1 for _, path, _ in jira.calls if path.endswith("/search/jql"))

    instances = []
    for hub in hubs:
        engine = hub.engine()
        try:
            with engine.connect() as conn:
                rows = conn.execute(sqlalchemy.text("SELECT id, title, ticket_key FROM cases ORDER BY id")).all()
            assert [case_id for case_id, _, _ in rows] == list(range(1, N_CASES + 1))  # both hubs have cases 1…N
            for _, title, key in rows:
                issue = jira.issues[key]
                assert issue.fields["summary"] == f"[HIGH] {title}", f"{hub.name} took {key} ({issue.fields['summary']}) for {title}"
                for text in comments_text(issue):
                    assert text.splitlines()[-1] == f"Latest: {title}", f"a comment on {key} ({title}) is about something else: {text}"
            check_outcome(engine, jira, sender=hub.sender, sent=hub.alerts, shared=True)
            instances.append(instance_of(engine))
        finally:
            engine.dispose()
    assert instances[0] != instances[1]
    assert len(jira.issues) == 2 * N_CASES
    assert searches, "no reference search happened: the recovery after the kills was not exercised"


@pytest.mark.slow
async def test_a_database_made_again_files_new_tickets_and_leaves_the_old_ones_alone(tmp_path: Path, procs: ProcGroup):
    sandbox = create_app(JiraSandboxSettings(search_lag_seconds=0.5))
    jira = sandbox.state.jira
    with ServerThread(sandbox) as jira_url:
        hub = Hub("soc", tmp_path, jira_url)
        async with httpx2.AsyncClient() as client:
            await run_clean(client, hub, procs, hub.alerts)
            engine = hub.engine()
            old_instance = instance_of(engine)
            engine.dispose()
            before = {key: (issue.fields["status"], comments_text(issue)) for key, issue in jira.issues.items()}

            for suffix in ("", "-wal", "-shm"):  # the database is lost; the project keeps its issues
                Path(f"{hub.db}{suffix}").unlink(missing_ok=True)
            hub.sender = Sender(hub.sender.base_url)  # the same alerts come again: same titles, same case ids 1…N
            await run_until_killed(client, hub, procs, KILLS[0], hub.alerts)
            await run_clean(client, hub, procs, hub.alerts)

    engine = hub.engine()
    try:
        assert instance_of(engine) != old_instance
        summary = check_outcome(engine, jira, sender=hub.sender, sent=hub.alerts, shared=True)
        with engine.connect() as conn:
            new_keys = set(conn.execute(sqlalchemy.text("SELECT ticket_key FROM cases")).scalars())
    finally:
        engine.dispose()
    assert summary["cases"] == N_CASES and not new_keys & set(before), "a new case took an issue of the lost database"
    assert len(jira.issues) == 2 * N_CASES
    assert {key: (jira.issues[key].fields["status"], comments_text(jira.issues[key])) for key in before} == before
