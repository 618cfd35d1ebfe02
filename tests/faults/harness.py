"""What the fault tests share: the hub's config, a paced alert sender that resends until acknowledged,
a bounded wait for the queue to drain, and the end-of-run check of DESIGN.md §2.

Each fault test runs real `alertbridge serve` / `worker` subprocesses (tests/support/procs.py) against
the Jira sandbox in a thread of the test process, breaks something mid-run, lets the hub recover on its
own, and then calls `check_outcome`:

- every alert that was answered 202 is in the `alerts` table (nothing acknowledged is lost);
- every case has exactly one Jira issue carrying its reference `alertbridge-<instance>-<case id>` as a label,
  the case records that issue's key, and there is no issue that belongs to no case (one case, one ticket);
- no job is dead, pending or running, and no inbox row is pending or dead (retries fixed what they should).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import httpx2
import sqlalchemy
from sqlalchemy import func, select

from alertbridge.store.tables import alerts, cases, inbox, instance, jobs
from support.procs import ProcGroup, Proc

# Bounds on waits for another process's event (a failpoint's kill, a drained queue). Each wait returns as soon as its event
# happens; the bound only has to hold on a 2-core machine shared at load 10+, where a worker's start alone took 40 s.
DEATH_TIMEOUT = 180.0
DRAIN_TIMEOUT = 180.0

JIRA = {"type": "jira", "flavor": "cloud", "email": "soc@example.com", "api_token": "sandbox-token"}
TOKEN = "fault-token"


def write_config(path: Path, *, database: str, jira_url: str, port: int | None = None, jira_timeout: float = 5.0,
                 **settings) -> Path:
    """Write a hub config (JSON is YAML): source `gen` (generic, bearer token), sink `jira` (the sandbox), one route."""
    config = {
        "database": database,
        **({"listen": f"127.0.0.1:{port}"} if port else {}),
        "sources": {"gen": {"type": "generic", "auth": {"mode": "bearer", "token": TOKEN}}},
        "sinks": {"jira": {**JIRA, "url": jira_url, "timeout": jira_timeout}},
        "routes": [{"name": "soc", "sink": "jira", "project": "SOC", "group_by": "{{ alert.title }}",
                    "on_repeat": "comment", "comment_every": "1s"}],
        **settings,
    }
    path.write_text(json.dumps(config, indent=2))
    return path


def alert(n: int, case: int) -> dict:
    """Alert number `n`, for the case titled `case-<case>`."""
    return {"id": f"alert-{n}", "title": f"case-{case}", "severity": "high", "description": f"alert {n} of case {case}"}


def plan(n_alerts: int, n_cases: int, seed: int) -> list[dict]:
    """`n_alerts` alerts over `n_cases` cases; new cases keep opening through the run, the rest repeat open ones."""
    rng = random.Random(seed)
    every = max(1, n_alerts // n_cases)
    result = []
    for n in range(n_alerts):
        newest = n // every
        case = newest if n % every == 0 and newest < n_cases else rng.randrange(min(n_cases, newest + 1))
        result.append(alert(n, case))
    assert {a["title"] for a in result} == {f"case-{c}" for c in range(n_cases)}
    return result


@dataclass
class Sender:
    """POST alerts to a hub's webhook, resending each until it is answered 202 (transport errors and 503 retry)."""

    base_url: str
    acked: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)  # any answer but 202/503: a bug in the test or the hub
    # Sent at least once without an answer (the hub died mid-request): it may be stored already, and the resend
    # stores it again. That is what a webhook without a delivery id gets; the vendor would resend it too.
    unanswered: set[str] = field(default_factory=set)

    async def send(self, client: httpx2.AsyncClient, body: dict, *, until: float, alive=lambda: True) -> bool:
        """Send one alert; True once acknowledged, False if the deadline passed or `alive()` turned false."""
        while time.monotonic() < until and alive():
            try:
                response = await client.post(f"{self.base_url}/hooks/gen", json=body, timeout=5,
                                             headers={"Authorization": f"Bearer {TOKEN}"})
            except httpx2.TransportError:  # down, or died mid-request: not acknowledged, send again
                response = None
                self.unanswered.add(body["id"])
            if response is not None and response.status_code == 202:
                self.acked.add(body["id"])
                return True
            if response is not None and response.status_code != 503:
                self.refused.append(f"{body['id']}: {response.status_code} {response.text[:200]}")
                return False
            await asyncio.sleep(0.1)
        return False

    async def send_all(self, client: httpx2.AsyncClient, bodies: list[dict], *, until: float, pace: float = 0.0,
                       concurrency: int = 8, alive=lambda: True, on_ack=None) -> None:
        """Send `bodies` (`pace` seconds apart, at most `concurrency` in flight); call `on_ack(count)` after each 202."""
        gate = asyncio.Semaphore(concurrency)

        async def one(body: dict) -> None:
            async with gate:
                if await self.send(client, body, until=until, alive=alive) and on_ack is not None:
                    await on_ack(len(self.acked))

        tasks = []
        for body in bodies:
            if not alive():
                break
            tasks.append(asyncio.create_task(one(body)))
            if pace:
                await asyncio.sleep(pace)
        await asyncio.gather(*tasks)


async def healthy_or_dead(client: httpx2.AsyncClient, base_url: str, proc: Proc, group: ProcGroup, timeout: float = 30) -> bool:
    """Wait until `proc` answers /healthz (True) or has exited (False); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            return False
        try:
            if (await client.get(f"{base_url}/healthz", timeout=2)).status_code == 200:
                return True
        except httpx2.TransportError:
            pass
        await asyncio.sleep(0.05)
    group.fail(f"{proc.name} neither healthy nor dead after {timeout}s")
    raise AssertionError("unreachable")


class SearchedLabels:
    """An ASGI wrapper of the Jira sandbox that notes, in order, every label a JQL search asked for."""

    def __init__(self, app) -> None:
        self.app = app
        self.labels: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or "/search" not in scope["path"]:
            await self.app(scope, receive, send)
            return
        messages = [await receive()]
        while messages[-1].get("more_body"):
            messages.append(await receive())
        body = b"".join(m.get("body", b"") for m in messages)
        jql = json.loads(body).get("jql", "") if body else parse_qs(scope["query_string"].decode()).get("jql", [""])[0]
        self.labels += re.findall(r'labels\s*=\s*"([^"]*)"', jql)  # case labels need no escapes

        async def replay():  # the body once more for the sandbox, then the client's own messages (disconnect)
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def issues_by_label(jira_state, prefix: str = "alertbridge-") -> dict[str, list[str]]:
    """Map each case label (`alertbridge-…`, or those of one instance) to the keys of the Jira issues carrying it."""
    found: dict[str, list[str]] = defaultdict(list)
    for issue in jira_state.issues.values():
        for label in issue.labels:
            if label.startswith(prefix):
                found[label].append(issue.key)
    return found


def sync_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def queue_state(engine: sqlalchemy.Engine) -> dict[str, int]:
    """Count inbox rows and jobs by state, straight from the database."""
    with engine.connect() as conn:
        counts = {f"jobs_{state}": n for state, n in conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))}
        counts |= {f"inbox_{state}": n for state, n in conn.execute(select(inbox.c.state, func.count()).group_by(inbox.c.state))}
    return counts


def drained(counts: dict[str, int]) -> bool:
    """Nothing left to do: no pending inbox row, no pending (due or scheduled) or running job."""
    return not any(counts.get(k, 0) for k in ("inbox_pending", "jobs_pending", "jobs_running"))


async def wait_drained(engine: sqlalchemy.Engine, group: ProcGroup, timeout: float, *, settle: float = 0.5) -> dict[str, int]:
    """Poll the database until the queue is drained (twice in a row, `settle` apart); fail with the logs after `timeout`."""
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    streak = 0
    while time.monotonic() < deadline:
        try:
            counts = await asyncio.to_thread(queue_state, engine)
        except sqlalchemy.exc.OperationalError as exc:  # PostgreSQL restarting: ask again
            counts, streak = {"error": str(exc).splitlines()[0]}, 0
        else:
            streak = streak + 1 if drained(counts) else 0
            if streak >= 2:
                return counts
        await asyncio.sleep(settle if streak else 0.2)
    group.fail(f"the queue did not drain within {timeout}s: {counts}")
    raise AssertionError("unreachable")


def instance_of(engine: sqlalchemy.Engine) -> str:
    """Return the instance id the hub's database was created with."""
    with engine.connect() as conn:
        return conn.execute(select(instance.c.id)).scalar_one()


def check_outcome(engine: sqlalchemy.Engine, jira_state, *, sender: Sender, sent: list[dict], shared: bool = False) -> dict:
    """Assert DESIGN.md §2 at the end of a run (see the module docstring); return a few numbers for the log.

    `shared`: other hubs file in the same project, so only the issues carrying this hub's instance are its own.
    """
    with engine.connect() as conn:
        stored = [row.data["vendor_id"] for row in conn.execute(select(alerts.c.data))]
        case_rows = conn.execute(select(cases.c.id, cases.c.title, cases.c.ticket_key, cases.c.reference)).all()
        dead = conn.execute(select(jobs.c.id, jobs.c.kind, jobs.c.case_id, jobs.c.attempts, jobs.c.last_error)
                            .where(jobs.c.state == "dead")).all()
        counts = queue_state(engine)

    # Every alert the test sent was acknowledged at last, and every acknowledged one is stored: once, or twice
    # if a first attempt got no answer (the generic source has no delivery id to drop the resend by).
    acked = sender.acked
    assert not sender.refused, sender.refused[:10]
    assert acked == {a["id"] for a in sent}, f"{len(sent) - len(acked)} alerts were never acknowledged"
    lost = acked - set(stored)
    assert not lost, f"{len(lost)} acknowledged alerts are not in the alerts table: {sorted(lost)[:20]}"
    twice = {vendor_id for vendor_id, n in Counter(stored).items() if n > 1}
    assert twice <= sender.unanswered, f"alerts stored more than once that were answered the first time: {sorted(twice - sender.unanswered)}"

    # One case per title, one issue per case, and the case records it.
    titles = sorted(title for _, title, _, _ in case_rows)
    assert titles == sorted({a["title"] for a in sent}), "cases do not match the alerts' titles one to one"
    issues = list(jira_state.issues.values())
    prefix = f"alertbridge-{instance_of(engine)}-" if shared else "alertbridge-"
    issues = [issue for issue in issues if any(label.startswith(prefix) for label in issue.labels)]
    by_label = issues_by_label(jira_state, prefix)
    duplicates = {label: keys for label, keys in by_label.items() if len(keys) != 1}
    assert not duplicates, f"cases with more than one issue: {duplicates}"
    assert set(by_label) == {ref for _, _, _, ref in case_rows}, "an issue without a case, or a case without an issue"
    assert len(issues) == len(case_rows), (len(issues), len(case_rows))
    for case_id, title, key, ref in case_rows:
        assert ref.endswith(f"-{case_id}") and key == by_label[ref][0], f"case {case_id} ({title}) records {key!r}, Jira has {by_label[ref]}"

    # Retries fixed every transient failure; nothing is left behind.
    assert not dead, "dead jobs: " + "; ".join(f"{d.kind} case {d.case_id} after {d.attempts}: {d.last_error}" for d in dead)
    assert drained(counts) and not counts.get("inbox_dead"), counts
    return {"alerts": len(stored), "stored_twice": len(twice), "cases": len(case_rows), "issues": len(issues), "jobs": counts}
