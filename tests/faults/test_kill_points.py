"""SIGKILL the hub at each failpoint of the ticket create, three times, and check one case → one ticket.

`alertbridge serve` (SQLite) runs as a subprocess with ``ALERTBRIDGE_FAILPOINTS=<point>=kill``
(src/alertbridge/failpoints.py), so it kills itself at exactly that line of
`jobs/create_ticket.py` — no timing luck involved:

- ``create.before_call``    the claim is committed, Jira never saw the request;
- ``create.after_remote``   Jira created the issue(s), the hub never recorded the key;
- ``create.after_commit``   one key is committed, the rest of a bulk create is not;
- ``create.during_search``  a restarted hub is recovering a claim without a key and dies right after
                            its label search answered (so the recovery itself is interrupted).

Each round starts the hub armed, sends the alerts of a few new cases (resending what the previous,
killed incarnation did not acknowledge), and waits for the failpoint to kill it. After three kills a
clean hub drains the queue, and `harness.check_outcome` checks DESIGN.md §2. The kills happen only
where the failpoint is: the test asserts each incarnation died by SIGKILL and logged the point.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
import sqlalchemy

from alertbridge import failpoints
from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from faults.harness import Sender, check_outcome, healthy_or_dead, plan, wait_drained, write_config
from support.procs import ProcGroup, free_port, procs  # noqa: F401 - procs is a fixture
from support.recorder import ServerThread

ROUNDS = 3  # kills per failpoint
CASES_PER_ROUND = 4
ALERTS_PER_CASE = 3
SEARCH_LAG = 1.0  # the hub trusts an empty label search this long after a claim...
SANDBOX_SEARCH_LAG = 0.5  # ...and the sandbox's index shows a new issue after this long
DEATH_TIMEOUT = 20.0  # how long a round waits for the failpoint to fire
DRAIN_TIMEOUT = 30.0


@pytest.mark.slow
@pytest.mark.parametrize("point", ["create.before_call", "create.after_remote", "create.after_commit", "create.during_search"])
async def test_three_kills_at_a_failpoint_leave_one_issue_per_case(point: str, tmp_path: Path, procs: ProcGroup):
    n_cases = ROUNDS * CASES_PER_ROUND
    alerts = plan(n_cases * ALERTS_PER_CASE, n_cases, seed=sum(map(ord, point)))
    per_round = len(alerts) // ROUNDS
    # A recovery search needs a claim without a key to recover: a first, uncounted kill after the remote create makes one.
    arming = (["create.after_remote=kill"] if point == "create.during_search" else []) + [f"{point}=kill"] * ROUNDS

    sandbox = create_app(JiraSandboxSettings(search_lag_seconds=SANDBOX_SEARCH_LAG))
    with ServerThread(sandbox) as jira_url:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        db = tmp_path / "hub.db"
        config = write_config(tmp_path / "hub.json", database=f"sqlite:///{db}", jira_url=jira_url, port=port,
                              workers=4, lease="1.5s", search_lag=f"{SEARCH_LAG}s",
                              retry={"max_attempts": 10, "base_delay": "0.1s", "max_delay": "1s"})
        sender = Sender(base)
        deaths = []
        t0 = time.monotonic()
        async with httpx2.AsyncClient() as client:
            for number, spec in enumerate(arming):
                hub = procs.start(f"serve-{number}", "serve", "--config", str(config), env={failpoints.ENV: spec})
                if await healthy_or_dead(client, base, hub, procs):  # False: it died at the failpoint while starting
                    # Resend what the last incarnation did not acknowledge, then this round's new cases.
                    due = [a for a in alerts[: per_round * min(number + 1, ROUNDS)] if a["id"] not in sender.acked]
                    await sender.send_all(client, due, until=time.monotonic() + DEATH_TIMEOUT, alive=hub.alive)
                try:
                    code = hub.wait(DEATH_TIMEOUT)
                except subprocess.TimeoutExpired:
                    procs.fail(f"round {number}: {spec} never fired (the hub is still alive)")
                name = spec.split("=")[0]
                deaths.append((code, f"failpoint {name}: kill" in hub.tail(400)))
                print(f"round {number}: {spec} fired at {time.monotonic() - t0:.1f}s", file=sys.stderr)
                assert code == -signal.SIGKILL and deaths[-1][1], f"round {number} ({spec}) ended with {code}\n{procs.logs()}"

            hub = procs.start("serve-clean", "serve", "--config", str(config))
            assert await healthy_or_dead(client, base, hub, procs), procs.logs()
            await sender.send_all(client, [a for a in alerts if a["id"] not in sender.acked], until=time.monotonic() + 20)
            engine = sqlalchemy.create_engine(f"sqlite:///{db}", poolclass=sqlalchemy.NullPool)
            try:
                await wait_drained(engine, procs, DRAIN_TIMEOUT)
                print(f"drained at {time.monotonic() - t0:.1f}s", file=sys.stderr)
                assert hub.stop() in (0, -signal.SIGTERM), procs.logs()  # uvicorn re-raises the SIGTERM it handled
                summary = check_outcome(engine, sandbox.state.jira, sender=sender, sent=alerts)
            finally:
                engine.dispose()
        searches = sum(1 for method, path, _ in sandbox.state.jira.calls if path.endswith("/search/jql"))
    kills = sum(1 for _, fired in deaths if fired)
    print(f"{point}: {kills} kills, {searches} label searches, {summary}", file=sys.stderr)
    assert kills == len(arming)
    if point != "create.after_commit":
        assert searches, "no label search happened: the recovery path was not exercised"


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


@pytest.mark.parametrize("spec", ["create.after_remot=kill", "create.after_remote", "create.after_remote=explode",
                                  "create.after_remote=kill@0", "create.after_remote=kill@x"])
def test_a_malformed_failpoint_spec_is_refused(spec: str):
    with pytest.raises(ValueError, match=failpoints.ENV):
        failpoints.parse(spec)


def test_failpoints_are_disarmed_without_the_variable():
    assert failpoints.parse("") == {}
    assert set(failpoints.POINTS) == {"create.before_call", "create.after_remote", "create.after_commit", "create.during_search"}
    for name in failpoints.POINTS:
        assert name in failpoints.__doc__
