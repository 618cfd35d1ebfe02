"""Recovery speed under faults, as a user meets them (issue 16, point 7).

    python bench/fault_drain.py                          # this tree: 100 alerts/s for 120 s, then up to 300 s of drain
    python bench/fault_drain.py --compare /tmp/before10  # and the same mix against another checkout, side by side
    python bench/fault_drain.py --seconds 60 --observe 120   # shortened (say so when you quote it)

The mix: alerts at --rate for --seconds over --cases cases; the Jira sandbox at --latency-ms, answering --fail-rate of
the calls with 429 (Retry-After: 1), 5xx or a hang of --hang-seconds, under a --rate-limit req/s token bucket; the
hub's `serve` SIGKILLed every --kill-every seconds while the load runs and restarted at once. The sender resends an
alert that got no answer or a 5xx until it is acknowledged (for at most --retry-for seconds), as a webhook sender
does. After the load the bench watches the queue for --observe seconds, sampling /api/stats every --sample-every.

Reported per tree: alerts acknowledged / sent, jobs done per second while draining, jobs still pending after
--observe, the time until nothing was due and until nothing was pending at all, duplicate tickets, and from the
hub's database each job kind's attempts and most frequent errors (the job timeline stays in the results JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hubs import HOOK_HEADERS, HOOK_PATH, Hub, HubSetup  # noqa: E402
from loadgen import make_alerts, send_paced  # noqa: E402
from measure import intake_figures, pct, ticket_figures  # noqa: E402
from procs import ROOT, Processes, Sandbox, load_average, progress  # noqa: E402
from report import num, table  # noqa: E402
from sustained import sample_backlog  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def options(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--tree", type=Path, help="the checkout under test (default: this one)")
    add("--compare", type=Path, metavar="OTHER_TREE", help="run the same mix against this checkout's src/ too")
    add("--name", default="fault-drain", help="results file name")
    add("--rate", type=float, default=100.0, help="alerts/s offered")
    add("--seconds", type=float, default=120.0, help="how long the load runs")
    add("--cases", type=int, default=1000, help="cases the alerts fall into")
    add("--latency-ms", type=float, default=150.0, help="sandbox latency per call")
    add("--fail-rate", type=float, default=0.3, help="share of calls answered 429 (2/3), 5xx (1/6) or hung (1/6)")
    add("--hang-seconds", type=float, default=30.0, help="how long a hung call's answer is held back")
    add("--rate-limit", type=float, default=50.0, help="sandbox requests/s")
    add("--kill-every", type=float, default=30.0, help="SIGKILL serve this often while the load runs (0: never)")
    add("--workers", type=int, default=8, help="hub job workers")
    add("--sink-concurrency", type=int, default=16, help="hub calls in flight to Jira")
    add("--comment-every", type=float, default=60.0, help="the route's comment_every, seconds")
    add("--retry-for", type=float, default=120.0, help="the sender resends an unacknowledged alert for this long")
    add("--observe", type=float, default=300.0, help="seconds to watch the queue after the load")
    add("--sample-every", type=float, default=5.0, help="seconds between samples of /api/stats")
    return parser.parse_args(argv)


async def kill_loop(hub: Hub, procs: Processes, every: float, load_done: asyncio.Event, kills: list[dict], started: float) -> None:
    """SIGKILL `serve` at every multiple of `every` seconds until the load is done, restarting it at once each time."""
    name = hub.names[0]
    number = 0
    while every > 0 and not load_done.is_set():  # wait_for(…, 0) times out even on a set event: test it first
        number += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(load_done.wait(), max(0.0, started + number * every - time.monotonic()))
            return
        killed = time.monotonic()
        procs.kill(name)
        await hub.start(name, "serve")
        kills.append({"t": round(killed - started, 1), "restart_s": round(time.monotonic() - killed, 1)})
        progress(f"    killed serve at {killed - started:.0f}s, answering again after {time.monotonic() - killed:.1f}s")


def job_timeline(database: Path) -> dict:
    """Read the hub's jobs from its SQLite file: per kind, count, states, attempts and the most frequent errors."""
    if not database.exists():
        return {}
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT kind, state, attempts, created_at, finished_at, last_error FROM jobs").fetchall()
    kinds: dict[str, dict] = {}
    for kind, state, attempts, created, finished, error in rows:
        entry = kinds.setdefault(kind, {"jobs": 0, "states": {}, "attempts": [], "seconds_to_done": [], "errors": {}})
        entry["jobs"] += 1
        entry["states"][state] = entry["states"].get(state, 0) + 1
        entry["attempts"].append(attempts)
        if finished:
            entry["seconds_to_done"].append(finished - created)
        if error:
            key = error.splitlines()[0][:120]
            entry["errors"][key] = entry["errors"].get(key, 0) + 1
    return {kind: {"jobs": e["jobs"], "states": e["states"], "attempts_max": max(e["attempts"]),
                   "attempts_mean": round(sum(e["attempts"]) / len(e["attempts"]), 2),
                   "seconds_to_done_p50": pct(e["seconds_to_done"], 0.5), "seconds_to_done_p99": pct(e["seconds_to_done"], 0.99),
                   "top_errors": sorted(e["errors"].items(), key=lambda item: -item[1])[:5]}
            for kind, e in kinds.items()}  # fmt: skip


async def run_mix(opts, procs: Processes, sandbox: Sandbox, label: str, tree: Path | None) -> dict:
    """Run the fault mix against one tree and return its figures."""
    alerts = make_alerts(int(opts.rate * opts.seconds), opts.cases)
    setup = HubSetup(workers=opts.workers, sink_concurrency=opts.sink_concurrency, comment_every=opts.comment_every, tree=tree)
    rows: list[dict] = []
    kills: list[dict] = []
    async with Hub(procs, sandbox.url, label, setup) as hub:
        await sandbox.prepare(opts.rate_limit, fail_rate=opts.fail_rate, hang_seconds=opts.hang_seconds)
        started = time.monotonic()
        stop, load_done = asyncio.Event(), asyncio.Event()
        sampler = asyncio.create_task(sample_backlog(hub, sandbox, started, opts.sample_every, stop, rows))
        killer = asyncio.create_task(kill_loop(hub, procs, opts.kill_every, load_done, kills, started))
        try:
            load = await send_paced(hub.urls, HOOK_PATH, alerts, rate=opts.rate, headers=HOOK_HEADERS, concurrency=64,
                                    timeout=10, retry_for=opts.retry_for, stop_after=opts.seconds * 2 + 60)  # fmt: skip
            load_done.set()
            await killer
            load_end = time.monotonic() - started
            progress(f"  {label}: load done at {load_end:.0f}s, {len(load.acknowledged())} acknowledged; watching the queue")
            caught_up = drained = None
            while time.monotonic() - started < load_end + opts.observe:
                with contextlib.suppress(Exception):
                    stats = await hub.stats()
                    idle = stats["inbox_pending"] == 0 and stats["jobs_running"] == 0
                    if idle and stats["jobs_due"] == 0 and caught_up is None:
                        caught_up = time.monotonic() - started
                    if idle and stats["jobs_pending"] == 0:
                        drained = time.monotonic() - started
                        break
                await asyncio.sleep(1.0)
            final = await hub.stats()
        finally:
            stop.set()
            load_done.set()
            await sampler
            with contextlib.suppress(Exception):
                await killer
    state = await sandbox.state()
    tickets = ticket_figures(load, await sandbox.issues())
    return summarize(opts, label, tree, load, tickets, rows, kills, final, state, load_end, caught_up, drained, procs.logs / f"{label}.db")


def summarize(opts, label, tree, load, tickets, rows, kills, final, state, load_end, caught_up, drained, database) -> dict:
    """Turn one mix's raw figures into the reported ones."""
    after = [r for r in rows if r["t"] >= load_end]
    done_at_end = next((r["jobs_done"] for r in after), final["jobs_done"])
    last = after[-1] if after else None
    window_end = drained if drained is not None else (last["t"] if last else load_end)
    done_then = final["jobs_done"] if drained is not None or not last else last["jobs_done"]
    drain_rate = (done_then - done_at_end) / (window_end - load_end) if window_end > load_end else None
    during = [r for r in rows if r["t"] < load_end]
    return {
        "label": label, "tree": str(tree or ROOT), "offered": int(opts.rate * opts.seconds), "intake": intake_figures(load, 202), "tickets": tickets,
        "kills": kills, "load_seconds": round(load_end, 1),
        "jobs_done_during_load": during[-1]["jobs_done"] if during else None,
        "drain_rate_jobs_per_s": drain_rate,
        "still_pending_after_observe": None if drained is not None else final["jobs_pending"] + final["jobs_running"],
        "still_due_after_observe": None if drained is not None else final["jobs_due"] + final["jobs_running"],
        "caught_up_after_load_s": None if caught_up is None else round(caught_up - load_end, 1),
        "drained_after_load_s": None if drained is None else round(drained - load_end, 1),
        "final_stats": final, "sandbox": state, "timeline": rows, "jobs": job_timeline(database),
    }


def render(opts, runs: list[dict]) -> str:
    """Lay the mixes out side by side."""
    lines = [f"fault drain: {opts.rate:g} alerts/s for {opts.seconds:g}s over {opts.cases:,} cases; Jira {opts.latency_ms:g} ms, "
             f"{opts.fail_rate:.0%} of calls 429/5xx/hang ({opts.hang_seconds:g}s), {opts.rate_limit:g} req/s limit; serve SIGKILLed every "
             f"{opts.kill_every:g}s during the load; workers {opts.workers}, sink concurrency {opts.sink_concurrency}; watched {opts.observe:g}s after"]  # fmt: skip
    never = f"not within {opts.observe:g}s"
    rows = [("", *(r["label"] for r in runs))]
    rows += [
        ("  tree", *(r["tree"] for r in runs)),
        ("  machine load average (start / end)", *(" / ".join(f"{v:.1f}" for v in r["load_average"]) for r in runs)),
        ("  alerts acknowledged / offered (requests)", *(f"{r['intake']['acknowledged']:,} / {r['offered']:,} ({r['intake']['attempts']:,})" for r in runs)),
        ("  SIGKILLs (restart mean / max s)", *(_kills(r["kills"]) for r in runs)),
        ("  jobs done during the load", *(num(r["jobs_done_during_load"]) for r in runs)),
        ("  drain rate after the load (jobs/s)", *(num(r["drain_rate_jobs_per_s"], 1) for r in runs)),
        (f"  jobs still pending after {opts.observe:g}s (due)", *("0" if r["still_pending_after_observe"] is None else f"{r['still_pending_after_observe']:,} ({r['still_due_after_observe']:,})" for r in runs)),
        ("  nothing due after the load (s)", *(num(r["caught_up_after_load_s"], 1) if r["caught_up_after_load_s"] is not None else never for r in runs)),
        ("  nothing pending after the load (s)", *(num(r["drained_after_load_s"], 1) if r["drained_after_load_s"] is not None else never for r in runs)),
        ("  cases / tickets / without ticket", *(f"{r['tickets']['cases_sent']:,} / {r['tickets']['tickets']:,} / {r['tickets']['cases_without_ticket']:,}" for r in runs)),
        ("  duplicate tickets", *(str(r["tickets"]["duplicate_tickets"] + r["tickets"]["duplicate_labels"]) for r in runs)),
        ("  jobs dead", *(str(r["final_stats"]["jobs_dead"]) for r in runs)),
        ("  Jira calls (429s)", *(f"{r['sandbox']['calls']:,} ({r['sandbox']['rate_limited']:,})" for r in runs)),
        ("  e2e to ticket p50 / p99 (s)", *(f"{num((r['tickets']['ticket_lag_ms']['p50'] or 0) / 1000, 1)} / {num((r['tickets']['ticket_lag_ms']['p99'] or 0) / 1000, 1)}" for r in runs)),
    ]  # fmt: skip
    lines.append(table(rows))
    for r in runs:
        lines.append(f"  {r['label']} jobs by kind: " + "; ".join(
            f"{kind} {j['jobs']:,} (attempts mean {j['attempts_mean']}, max {j['attempts_max']})" for kind, j in r["jobs"].items()))
        backlog = " ".join(f"{row['t']:.0f}s:{row['jobs_due'] + row['jobs_scheduled']:,}" for row in r["timeline"][:: max(1, len(r["timeline"]) // 24)])
        lines.append(f"  {r['label']} jobs pending over time: {backlog}")
    return "\n".join(lines)


def _label(tree: Path | None, default: str) -> str:
    """Name a tree's run (and its files) after its folder."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", tree.resolve().name) if tree is not None else ""
    return name or default.replace(" ", "-")


def _kills(kills: list[dict]) -> str:
    if not kills:
        return "0"
    restarts = [k["restart_s"] for k in kills]
    return f"{len(kills)} ({sum(restarts) / len(restarts):.1f} / {max(restarts):.1f})"


async def main(opts) -> dict:
    """Run the mix against the tree under test and, with --compare, against the other one."""
    procs = Processes.fresh(RESULTS / opts.name)
    trees = [(_label(opts.tree, "this tree"), opts.tree)] + ([(_label(opts.compare, "compare"), opts.compare)] if opts.compare else [])
    runs = []
    started = time.monotonic()
    try:
        sandbox = await Sandbox.start(procs, opts.latency_ms)
        for label, tree in trees:
            progress(f"[{time.monotonic() - started:6.1f}s] {label} ({tree or ROOT}) ...")
            loads = [load_average()]
            runs.append(await run_mix(opts, procs, sandbox, label, tree))
            runs[-1]["load_average"] = [*loads, load_average()]
        await sandbox.client.aclose()
    finally:
        procs.stop()
    return {"name": opts.name, "finished_at": datetime.now().isoformat(timespec="seconds"), "seconds": round(time.monotonic() - started, 1),
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()}, "runs": runs}  # fmt: skip


def run(argv: list[str] | None = None) -> None:
    """Run the fault drain, write bench/results/<name>.json and print the table."""
    opts = options(argv)
    result = asyncio.run(main(opts))
    path = RESULTS / f"{opts.name}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(render(opts, result["runs"]))
    print(f"\n{path.relative_to(ROOT)} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    run()
