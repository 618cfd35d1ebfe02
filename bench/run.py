"""Benchmark alertbridge against the Jira sandbox, beside a no-op endpoint and the usual integration script.

    python bench/run.py                 # full: 20,000 alerts over 2,000 cases, SQLite, and a 60 s sustained run
    python bench/run.py --quick         # 1,500 alerts over 150 cases, 10 s sustained, a few minutes in all
    python bench/run.py --postgres      # also PostgreSQL: 2 `serve` + 2 `worker` processes under the same bursts
    python bench/run.py --phases sustained --rate 1000 --seconds 60   # one phase alone
    python bench/run.py --quick --tree /tmp/before10   # another checkout's hub (its src/), same instruments

One sandbox process (`alertbridge sandbox`, this tree's) serves every phase; between phases its state is reset and
its rate limit changed through /_sandbox. Phases, in this order:

    noop            bench/noop.py, a bare FastAPI endpoint  the reference for intake rate and p99
    hub-open        alertbridge, bursts, no rate limit      intake, lag, calls, CPU, memory (--profile: py-spy)
    hub-limited     the sandbox at --rate-limit req/s       429s met by a hub that was not told the limit
    hub-budget      and the sink's `rate_limit` set to it   never above the configured rate (if the tree has it)
    pg-open         --postgres: 2 serve + 2 worker on PG    scale-out against hub-open's one SQLite serve
    sustained-200   200 alerts/s offered, 10 % new cases    end-to-end lag at a rate the hub should take
    sustained       --rate alerts/s for --seconds           does processing keep up: backlog, lag over time
    base-open       bench/baseline.py, no rate limit        (time-boxed by --baseline-seconds)
    base-limited    bench/baseline.py, --rate-limit         failures under rate limiting

Each run writes bench/results/<name>.json and prints the tables; docs/benchmarks.md says how every figure is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import profiling  # noqa: E402
from hubs import accepts_rate_limit  # noqa: E402
from loadgen import make_alerts  # noqa: E402
from phases import run_baseline, run_hub, run_noop, setup_of  # noqa: E402
from procs import ROOT, Processes, Sandbox, load_average, progress  # noqa: E402
from report import GOAL_LAG_RATE, goals, render  # noqa: E402
from sustained import run_sustained  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PHASES = ("noop", "hub-open", "hub-limited", "hub-budget", "pg-open", f"sustained-{GOAL_LAG_RATE}", "sustained", "base-open", "base-limited")


def options(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; --quick changes only the defaults the user did not set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="phases: " + ", ".join(PHASES))  # fmt: skip
    add = parser.add_argument
    add("--quick", action="store_true", help="1,500 alerts over 150 cases, 10 s sustained, baseline time-boxed to 8 s")
    add("--postgres", action="store_true", help="add pg-open: --serves serve and --worker-processes worker processes on PostgreSQL")
    add("--phases", help=f"comma-separated phases to run (default: all but pg-open; pg-open with --postgres): {','.join(PHASES)}")
    add("--tree", type=Path, help="run the hub from this checkout's src/ (e.g. `git archive` of an older commit)")
    add("--name", help="results file name (default: quick/full, with -postgres)")
    add("--alerts", type=int, help="alerts in the burst phases (20,000; --quick 1,500)")
    add("--cases", type=int, help="cases the burst alerts fall into (2,000; --quick 150)")
    add("--distinct", action="store_true", help="burst phases: every alert a case of its own (no repeats)")
    add("--latency-ms", type=float, default=150.0, help="sandbox latency per call")
    add("--rate-limit", type=float, default=10.0, help="req/s of the limited phases: the sandbox's limit, and the sink's rate_limit in hub-budget")
    add("--workers", type=int, default=64, help="hub job workers per process (64: the hub's own default, what a user runs)")
    add("--sink-concurrency", type=int, default=16, help="hub calls in flight to Jira per process")
    add("--concurrency", type=int, default=64, help="requests in flight from the load generator in the burst phases")
    add("--burst", type=int, default=1000, help="alerts per burst")
    add("--pause", type=float, default=0.25, help="seconds between bursts")
    add("--comment-every", type=float, default=60.0, help="the route's comment_every, seconds")
    add("--rate", type=float, default=1000.0, help="sustained: alerts/s offered")
    add("--seconds", type=float, help="sustained: how long (60; --quick 10)")
    add("--new-share", type=float, default=0.1, help="sustained: share of alerts that open a new case")
    add("--sustained-concurrency", type=int, default=64, help="sustained: requests in flight at most")
    add("--sample-every", type=float, default=5.0, help="sustained: seconds between backlog samples")
    add("--serves", type=int, default=2, help="pg-open: serve processes (the load is spread over them)")
    add("--worker-processes", type=int, default=2, help="pg-open: worker processes")
    add("--baseline-seconds", type=float, help="stop sending to the baseline after this long (60; --quick 8)")
    add("--drain-timeout", type=float, help="longest wait for the hub's queue to empty (400; --quick 60)")
    add("--profile", action="store_true", help="record serve with py-spy in hub-open (installed into the venv on demand)")
    add("--render", type=Path, metavar="RESULT_JSON", help="print the tables of an earlier run's results file and exit")
    opts = parser.parse_args(argv)
    opts.alerts = opts.alerts or (1500 if opts.quick else 20000)
    opts.cases = opts.alerts if opts.distinct else opts.cases or (150 if opts.quick else 2000)
    opts.seconds = opts.seconds or (10.0 if opts.quick else 60.0)
    opts.baseline_seconds = opts.baseline_seconds or (8.0 if opts.quick else 60.0)
    opts.drain_timeout = opts.drain_timeout or (60.0 if opts.quick else 400.0)
    opts.name = opts.name or ("quick" if opts.quick else "full") + ("-postgres" if opts.postgres else "")
    wanted = opts.phases.split(",") if opts.phases else [p for p in PHASES if p != "pg-open" or opts.postgres]
    if unknown := set(wanted) - set(PHASES):
        parser.error(f"unknown phases {sorted(unknown)}; choose from {', '.join(PHASES)}")
    opts.phases = [p for p in PHASES if p in wanted]
    return opts


async def run_phase(opts, procs: Processes, sandbox: Sandbox, alerts, phase: str, notes: dict) -> dict | None:
    """Run one phase; None when it cannot run on this tree (the reason goes in `notes`)."""
    limit = opts.rate_limit
    if phase == "noop":
        return await run_noop(opts, procs, alerts)
    if phase == "hub-open":
        return await run_hub(opts, procs, sandbox, alerts, phase, None, setup_of(opts))
    if phase == "hub-limited":
        return await run_hub(opts, procs, sandbox, alerts, phase, limit, setup_of(opts))
    if phase == "hub-budget":
        accepted, answer = accepts_rate_limit(procs.logs, opts.tree)
        if not accepted:  # the key is new: say so rather than run a phase that cannot mean anything
            notes["rate_limit_rejected"] = answer
            return None
        return await run_hub(opts, procs, sandbox, alerts, phase, limit, setup_of(opts, rate_limit=limit))
    if phase == "pg-open":
        setup = setup_of(opts, postgres=True, serves=opts.serves, worker_processes=opts.worker_processes)
        return await run_hub(opts, procs, sandbox, alerts, phase, None, setup)
    if phase.startswith("sustained"):
        rate = GOAL_LAG_RATE if phase == f"sustained-{GOAL_LAG_RATE}" else opts.rate
        return await run_sustained(opts, procs, sandbox, phase, rate, opts.seconds, setup_of(opts))
    return await run_baseline(opts, procs, sandbox, alerts, phase, limit if phase == "base-limited" else None)


async def main(opts: argparse.Namespace) -> dict:
    """Run every phase asked for against one sandbox and return the result."""
    procs = Processes.fresh(RESULTS / opts.name)
    alerts = make_alerts(opts.alerts, opts.cases, new_share=1.0 if opts.distinct else None)
    phases: dict[str, dict] = {}
    notes: dict[str, str] = {}
    started = time.monotonic()
    try:
        sandbox = await Sandbox.start(procs, opts.latency_ms)
        for phase in opts.phases:
            phase_started = time.monotonic()
            progress(f"[{time.monotonic() - started:6.1f}s] {phase} ... (load average {load_average():.1f})")
            loads = [load_average()]
            if (figures := await run_phase(opts, procs, sandbox, alerts, phase, notes)) is not None:
                phases[phase] = {**figures, "load_average": [*loads, load_average()]}
            progress(f"[{time.monotonic() - started:6.1f}s] {phase} done in {time.monotonic() - phase_started:.1f}s")
        await sandbox.client.aclose()
    finally:
        procs.stop()
    options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()}
    return {
        "name": opts.name, "finished_at": datetime.now().isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1), "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "options": options, "phases": phases, "notes": notes, "goals": goals(options, phases, notes),
    }


def run(argv: list[str] | None = None) -> None:
    """Run the benchmark, write bench/results/<name>.json and print the tables."""
    opts = options(argv)
    if opts.render:
        result = json.loads(opts.render.read_text())
        if raw := result["phases"].get("hub-open", {}).get("profile", {}).get("raw"):
            result["phases"]["hub-open"]["profile"] = profiling.summarize(Path(raw))
        result["goals"] = goals(result["options"], result["phases"], result["notes"])
        print(render(result))
        return
    result = asyncio.run(main(opts))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{opts.name}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(render(result))
    print(f"\n{path.relative_to(ROOT)} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    run()
