"""CPU per job, in process: a fixed queue of creates and repeat comments run by the dispatcher against a canned Jira.

The hub's own side of job handling (claim, handler, Jira client, finish and record) measured with
``time.process_time()`` over a fixed workload, whatever the rest of the machine is doing: the inbox is filled and
processed first (not measured), then the dispatcher runs every due job until none is left. Jira's answers are
canned (no server, almost no CPU; `--latency-ms` delays each) except the metadata, which comes from the sandbox app.

```sh
.venv/bin/python bench/jobs_probe.py                       # this tree
.venv/bin/python bench/jobs_probe.py --tree /tmp/base21    # another checkout's src/, same workload
.venv/bin/python bench/jobs_probe.py --pairs 3             # this tree and --tree, alternately, three times each
```
"""

from __future__ import annotations

import argparse
import contextlib
import asyncio
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from loadgen import make_alerts

GIVE_UP_S = 120.0
ROUTE = {"name": "bench", "match": {"sources": ["generic"]}, "sink": "jira", "project": "SOC", "issue_type": "Alert",
         "summary": "{{ alert.title }}", "group_by": "{{ alert.title }}", "labels": ["bench"], "comment_every": "60s"}


def canned_jira(sandbox_app, latency: float = 0.0):
    """Return a transport that answers creates and comments after `latency` s and asks the sandbox app for everything else."""
    import httpx2

    sandbox = httpx2.ASGITransport(app=sandbox_app)
    keys = itertools.count(1)

    class Canned(httpx2.AsyncBaseTransport):
        """Jira without a server: bulk creates and comments answered from nothing, metadata from the sandbox."""

        calls = 0

        async def handle_async_request(self, request):
            """Answer one request."""
            Canned.calls += 1
            path = request.url.path
            if latency:
                await asyncio.sleep(latency)
            if request.method == "POST" and path.endswith("/issue/bulk"):
                count = len(json.loads(request.content)["issueUpdates"])
                issues = [{"id": str(n), "key": f"SOC-{n}", "self": ""} for n in itertools.islice(keys, count)]
                return httpx2.Response(201, json={"issues": issues, "errors": []})
            if request.method == "POST" and path.endswith("/comment"):
                return httpx2.Response(201, json={"id": str(next(keys))})
            return await sandbox.handle_async_request(request)

    return Canned()


def thread_cpu() -> dict[str, float]:
    """Return CPU seconds so far of each of this process's threads, by name (threads of one name summed)."""
    ticks = os.sysconf("SC_CLK_TCK")
    names = {thread.native_id: thread.name.rstrip("_0123456789") for thread in threading.enumerate()}
    found: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            name = names.get(int(task.name), "other")
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
            found[name + " sys"] = found.get(name + " sys", 0.0) + int(fields[12]) / ticks
    return found


def due(db: str) -> int:
    """Count the jobs due now or running (a separate connection: a few microseconds per look)."""
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM jobs WHERE (state = 'pending' AND run_after <= ?) OR state = 'running'",
                            (time.time(),)).fetchone()[0]


async def probe(alerts: int, new_share: float, workers: int, latency: float = 0.0) -> dict:
    """Fill the queue from `alerts` alerts, then run every due job; return CPU and wall seconds of the job phase."""
    from alertbridge.config import validate_config
    from alertbridge.logs import configure_logging
    from alertbridge.connectors.jira.sink import JiraSink
    from alertbridge.jobs.dispatch import Dispatcher
    from alertbridge.sandbox.jira import JiraSandboxSettings, create_app
    from alertbridge.service import Hub
    from alertbridge.store import upgrade

    configure_logging(os.environ.get("ALERTBRIDGE_LOG_LEVEL", "WARNING"))  # as `serve` is run by the bench
    folder = Path(tempfile.mkdtemp(prefix="jobs-probe-"))
    db = str(folder / "hub.db")
    url = f"sqlite:///{db}"
    upgrade(url)
    config = validate_config({
        "database": url, "workers": workers, "search_lag": "2s",
        "sources": {"generic": {"type": "generic", "auth": {"mode": "none"}}},
        "sinks": {"jira": {"type": "jira", "flavor": "cloud", "url": "http://jira", "email": "soc@example.com",
                           "api_token": "sandbox-token", "max_concurrency": 16}},
        "routes": [ROUTE],
    })
    hub = Hub(config)
    transport = canned_jira(create_app(JiraSandboxSettings()), latency)
    hub.sinks["jira"] = JiraSink("jira", config.sinks["jira"], transport=transport)
    bodies = [body for _, body in make_alerts(alerts, 0, seed=7, new_share=new_share)]
    for start in range(0, len(bodies), 200):
        await asyncio.gather(*(hub.inbox.put("generic", body) for body in bodies[start:start + 200]))
    while await hub.pipeline.process_batch():
        pass
    queued = due(db)
    stopping, ready = asyncio.Event(), asyncio.Event()
    threads, cpu, wall = thread_cpu(), time.process_time(), time.perf_counter()
    dispatcher = asyncio.create_task(Dispatcher(hub.runner, hub.budgets, capacity=workers).run_forever(stopping, ready))
    while due(db):
        await asyncio.sleep(0.1)
        if time.perf_counter() - wall > GIVE_UP_S:
            with sqlite3.connect(db) as conn:
                errors = conn.execute("SELECT DISTINCT last_error FROM jobs WHERE last_error IS NOT NULL LIMIT 3").fetchall()
            sys.exit(f"jobs still due after {GIVE_UP_S} s; errors: {errors}")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    threads = {name: round(spent - threads.get(name, 0.0), 2) for name, spent in thread_cpu().items() if spent - threads.get(name, 0.0) > 0}
    stopping.set()
    ready.set()
    await dispatcher
    with sqlite3.connect(db) as conn:
        kinds = dict(conn.execute("SELECT kind, count(*) FROM jobs WHERE state = 'done' GROUP BY kind").fetchall())
        tickets = conn.execute("SELECT count(*) FROM cases WHERE ticket_key IS NOT NULL").fetchone()[0]
    await hub.aclose()
    done = sum(kinds.values())
    return {"jobs": queued, "done": kinds, "tickets": tickets, "jira_calls": transport.calls, "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3), "cpu_ms_per_job": round(cpu * 1000 / max(done, 1), 3), "threads": threads}


def run_side(tree: str | None, args) -> dict:
    """Run the probe in a fresh interpreter on `tree`'s src/ (None: this tree), return its figures."""
    env = {**os.environ, "ALERTBRIDGE_LOG_LEVEL": "WARNING"}
    if tree:
        env["PYTHONPATH"] = str(Path(tree).resolve() / "src")
    command = [sys.executable, __file__, "--one", "--alerts", str(args.alerts), "--new-share", str(args.new_share),
               "--workers", str(args.workers), "--latency-ms", str(args.latency_ms)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=Path(__file__).parent, check=False)
    if done.returncode:
        sys.exit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the probe once here, or alternately on this tree and --tree."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=3000)
    parser.add_argument("--new-share", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="Jira's latency per call (0: answers at once)")
    parser.add_argument("--tree", help="another checkout whose src/ to measure")
    parser.add_argument("--pairs", type=int, default=0, help="alternate --tree and this tree this many times")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(asyncio.run(probe(args.alerts, args.new_share, args.workers, args.latency_ms / 1000))))
        return
    sides = [("before", args.tree), ("after", None)] if args.pairs else [(args.tree or "this tree", args.tree)]
    for _ in range(max(args.pairs, 1)):
        for name, tree in sides:
            figures = run_side(tree, args)
            print(f"{name:>9}: {figures['cpu_ms_per_job']:.3f} CPU ms/job  cpu {figures['cpu_s']:.2f}s  wall {figures['wall_s']:.2f}s  "
                  f"jobs {figures['done']}  tickets {figures['tickets']}  jira calls {figures['jira_calls']}  threads {figures['threads']}",
                  flush=True)


if __name__ == "__main__":
    main()
