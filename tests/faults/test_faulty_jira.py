"""A faulty Jira and an outage mid-run: every case still ends with exactly one issue, nothing is lost, nothing dies.

The Jira sandbox runs without its own faults, behind `FaultyJira`, a test-local ASGI wrapper that
answers a seeded share of the API calls badly, as a busy Jira Cloud site does:

- 20 % `429` with `Retry-After: 1` and `RateLimit-Reason: jira-burst-based` (nothing done);
- 5 % `500`/`503`, half of them as a proxy's HTML page (nothing done);
- 5 % hung: Jira does the work, the answer comes only after the hub's client timeout — so a create
  the hub gave up on did create the issue, and only the label search can tell.

(The sandbox's own `fail_rate` splits 2/3 · 1/6 · 1/6; this wrapper gives the 20/5/5 mix exactly.)

Mid-run, once a third of the alerts are acknowledged, Jira goes down for OUTAGE seconds (a minute in
life, shortened here): every call answers 503 or hangs (and the hung calls still do their work). The
alerts keep coming during the outage. Afterwards `harness.check_outcome` checks DESIGN.md §2, and
the test checks that every kind of fault was actually served.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx2
import pytest
import sqlalchemy

from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
from faults.harness import Sender, check_outcome, healthy_or_dead, plan, wait_drained, write_config
from support.procs import ProcGroup, free_port, procs  # noqa: F401 - procs is a fixture
from support.recorder import ServerThread

SEED = 4242
N_ALERTS, N_CASES = 300, 40
PACE = 0.02  # seconds between two alerts: ~6 s of traffic
RATE_LIMITED, SERVER_ERROR, HUNG = 0.20, 0.05, 0.05
CLIENT_TIMEOUT = 0.6  # the hub's Jira timeout...
HANG = 1.5  # ...and how late a hung answer comes
OUTAGE = 4.0  # seconds of "every call fails or hangs"
DRAIN_TIMEOUT = 120.0

PROXY_PAGE = b"<html><head><title>503 Service Unavailable</title></head><body><h1>503 Service Unavailable</h1></body></html>"


class FaultyJira:
    """ASGI wrapper: fail a seeded share of the Jira API calls (not /_sandbox), or all of them during an outage."""

    def __init__(self, app, seed: int):
        self.app = app
        self.random = random.Random(seed)
        self.outage = threading.Event()
        self.served: Counter[tuple[str, str]] = Counter()  # (fault, operation) -> count
        self.lock = threading.Lock()
        self.hang_next_create = False  # set when the outage ends: the first create after it hangs too

    def _note(self, fault: str, scope, creating: bool) -> None:
        operation = "create" if creating else "search" if "/search" in scope["path"] else "other"
        with self.lock:
            self.served[fault, operation] += 1

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/rest/"):
            return await self.app(scope, receive, send)
        roll = self.random.random()
        creating = scope["method"] == "POST" and scope["path"].rstrip("/").endswith(("/issue", "/issue/bulk"))
        if self.outage.is_set():
            # Creates hang (and still happen) during the outage; other calls fail or hang at random.
            fault = "outage-hang" if creating or roll >= 0.5 else "outage-503"
        elif creating and self.hang_next_create:
            self.hang_next_create = False
            fault = "hang"
        elif roll < RATE_LIMITED:
            fault = "429"
        elif roll < RATE_LIMITED + SERVER_ERROR:
            fault = "5xx"
        elif roll < RATE_LIMITED + SERVER_ERROR + HUNG:
            fault = "hang"
        else:
            fault = "ok"
        self._note(fault, scope, creating)
        if fault == "429":
            body = json.dumps({"errorMessages": ["Rate limit exceeded."], "errors": {}}).encode()
            return await _respond(send, 429, body, [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                                    (b"ratelimit-reason", b"jira-burst-based")])
        if fault in ("5xx", "outage-503"):
            status = self.random.choice([500, 503]) if fault == "5xx" else 503
            if self.random.random() < 0.5:
                return await _respond(send, status, PROXY_PAGE, [(b"content-type", b"text/html; charset=utf-8")])
            body = json.dumps({"errorMessages": ["Internal server error"], "errors": {}}).encode()
            return await _respond(send, status, body, [(b"content-type", b"application/json")])
        if fault in ("hang", "outage-hang"):
            # Jira does the work; the answer leaves only after the hub stopped waiting.
            async def late(message):
                if message["type"] == "http.response.start":
                    await asyncio.sleep(HANG)
                await send(message)

            return await self.app(scope, receive, late)
        return await self.app(scope, receive, send)


async def _respond(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.slow
async def test_a_faulty_jira_and_an_outage_still_give_one_issue_per_case(tmp_path: Path, procs: ProcGroup):
    alerts = plan(N_ALERTS, N_CASES, seed=SEED)
    sandbox = create_app(JiraSandboxSettings(search_lag_seconds=0.5))
    faulty = FaultyJira(sandbox, SEED)
    with ServerThread(faulty) as jira_url:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        db = tmp_path / "hub.db"
        config = write_config(
            tmp_path / "hub.json", database=f"sqlite:///{db}", jira_url=jira_url, port=port, jira_timeout=CLIENT_TIMEOUT,
            workers=8, lease="5s", search_lag="1s",
            # Enough attempts to outlast the outage with short backoffs: a dead job here is a bug, not bad luck.
            retry={"max_attempts": 30, "base_delay": "0.1s", "max_delay": "1s"},
        )
        hub = procs.start("serve", "serve", "--config", str(config))
        t0 = time.monotonic()
        sender = Sender(base)
        outage_done = asyncio.Event()

        async def outage_when(acked: int) -> None:
            if acked == N_ALERTS // 3:
                faulty.outage.set()
                print(f"outage from alert {acked}", file=sys.stderr)
                await asyncio.sleep(OUTAGE)
                faulty.hang_next_create = True
                faulty.outage.clear()
                outage_done.set()
                print(f"outage over at {time.monotonic() - t0:.1f}s", file=sys.stderr)

        engine = sqlalchemy.create_engine(f"sqlite:///{db}", poolclass=sqlalchemy.NullPool)
        try:
            async with httpx2.AsyncClient() as client:
                assert await healthy_or_dead(client, base, hub, procs), procs.logs()
                await sender.send_all(client, alerts, until=time.monotonic() + 60, pace=PACE, on_ack=outage_when)
                await asyncio.wait_for(outage_done.wait(), OUTAGE + 10)
            print(f"all sent at {time.monotonic() - t0:.1f}s", file=sys.stderr)
            counts = await wait_drained(engine, procs, DRAIN_TIMEOUT)
            print(f"drained at {time.monotonic() - t0:.1f}s", file=sys.stderr)
            assert hub.stop() in (0, -signal.SIGTERM), procs.logs()
            summary = check_outcome(engine, sandbox.state.jira, sender=sender, sent=alerts)
        finally:
            engine.dispose()
            faulty.outage.clear()

    served = Counter()
    for (fault, _), n in faulty.served.items():
        served[fault] += n
    print(f"faults served {dict(served)}; by operation {dict(faulty.served)}; {summary}; drained {counts}", file=sys.stderr)
    # The run did what it meant to: every kind of fault was served, and some create hung yet reached Jira.
    for fault in ("429", "5xx", "hang", "outage-503", "outage-hang"):
        assert served[fault], f"no {fault} was served: the test proves less than it says ({dict(served)})"
    assert faulty.served["hang", "create"] + faulty.served["outage-hang", "create"], "no create hung: the label search was not put to the test"
    assert faulty.served["ok", "search"], "no label search succeeded"
