"""The burst phases: alertbridge, the no-op endpoint and the usual integration script under the same load."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from pathlib import Path

import httpx2

import profiling
from hubs import HOOK_HEADERS, HOOK_PATH, HOOK_TOKEN, Hub, HubSetup
from loadgen import LoadResult, send_bursts
from measure import intake_figures, ticket_figures
from procs import ROOT, Processes, Sandbox, answers_ok, free_port, listening, peak_window, proc_usage, progress, wait_for


def setup_of(opts, *, rate_limit: float | None = None, postgres: bool = False, serves: int = 1, worker_processes: int = 0) -> HubSetup:
    """Return the hub setup the command line asks for, with the phase's own rate limit and process layout."""
    return HubSetup(workers=opts.workers, sink_concurrency=opts.sink_concurrency, comment_every=opts.comment_every,
                    postgres=postgres, serves=serves, worker_processes=worker_processes, rate_limit=rate_limit, tree=opts.tree)  # fmt: skip


async def sampled(sandbox: Sandbox, work):
    """Run the coroutine `work` while sampling the sandbox's call counts; return (its result, the samples)."""
    samples: list[tuple[float, int, int]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sandbox.sample_calls(samples, stop))
    try:
        return await work, samples
    finally:
        stop.set()
        await sampler


def jira_figures(state: dict, samples: list, sent: int, tickets: int, comments: int, rate_limit: float | None) -> dict:
    """Return the Jira call figures of one phase from the sandbox's state and call samples."""
    peak, peak_ok = peak_window(samples)
    return {
        "calls": state["calls"], "rate_limited": state["rate_limited"],
        "calls_per_alert": state["calls"] / max(1, sent),
        "calls_per_ticket": state["calls"] / max(1, tickets),
        "create_path_calls_per_ticket": (state["calls"] - comments) / max(1, tickets),
        "peak_calls_1s": peak, "peak_accepted_calls_1s": peak_ok,
        "allowed_calls_1s": math.ceil(rate_limit) + rate_limit if rate_limit else None,
    }


async def run_hub(opts, procs: Processes, sandbox: Sandbox, alerts, phase: str, rate_limit: float | None,
                  setup: HubSetup) -> dict:  # fmt: skip
    """Send `alerts` in bursts to the hub, wait for it to drain, and return its figures."""
    recorder = None
    async with Hub(procs, sandbox.url, phase, setup) as hub:
        await sandbox.prepare(rate_limit)
        if opts.profile and phase == "hub-open":
            recorder = profiling.start(procs, f"{phase}-py-spy", hub.pids[0], procs.logs / f"{phase}-profile.txt")
        cpu_before = sum(cpu for cpu, _ in hub.usage().values())
        started = time.monotonic()

        async def load_and_drain() -> tuple[LoadResult, tuple]:
            load = await send_bursts(hub.urls, HOOK_PATH, alerts, headers=HOOK_HEADERS, concurrency=opts.concurrency,
                                     burst=opts.burst, pause=opts.pause)  # fmt: skip
            progress(f"  sent {len(load.sent):,} in {load.active_seconds:.1f}s active, {load.wall_seconds:.1f}s wall")
            return load, await hub.drain(opts.drain_timeout, started)

        (load, (drained, stats, drain_seconds)), samples = await sampled(sandbox, load_and_drain())
        usage = hub.usage()
        metrics = await hub.metrics()
        profiling.stop(procs, f"{phase}-py-spy", recorder)
    state = await sandbox.state()
    intake = intake_figures(load, 202)
    tickets = ticket_figures(load, await sandbox.issues())
    cpu = sum(cpu for cpu, _ in usage.values()) - cpu_before
    result = {
        "phase": phase, "system": "alertbridge", "rate_limit": rate_limit, "hub_rate_limit": setup.rate_limit,
        "setup": {k: str(v) if isinstance(v, Path) else v for k, v in vars(setup).items()},
        "intake": intake, "tickets": tickets, "drained": drained, "drain_seconds": round(drain_seconds, 2), "hub_stats": stats,
        "jira": {**jira_figures(state, samples, intake["acknowledged"], tickets["tickets"], tickets["comments"], rate_limit), **metrics},
        "processes": {name: {"cpu_seconds": round(c, 2), "peak_rss_mib": round(rss / 1024, 1)} for name, (c, rss) in usage.items()},
        "cpu_seconds": round(cpu, 3), "cpu_ms_per_alert": cpu * 1000 / max(1, intake["acknowledged"]),
        "peak_rss_mib": round(max(rss for _, rss in usage.values()) / 1024, 1),
    }
    if recorder is not None:
        result["profile"] = profiling.summarize(procs.logs / f"{phase}-profile.txt")
    return result


async def run_noop(opts, procs: Processes, alerts) -> dict:
    """Send the same bursts to the no-op FastAPI endpoint and return its intake figures and CPU."""
    port = free_port()
    procs.start("noop", [sys.executable, str(ROOT / "bench" / "noop.py"), "--port", str(port), "--token", HOOK_TOKEN])
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient(base_url=url, timeout=10) as probe:
            await wait_for(lambda: answers_ok(probe, "/healthz"), f"the no-op endpoint ({procs.tail('noop')})", 60)
        pid = procs.running["noop"].pid
        cpu_before = proc_usage(pid)[0]
        load = await send_bursts(url, HOOK_PATH, alerts, headers=HOOK_HEADERS, concurrency=opts.concurrency,
                                 burst=opts.burst, pause=opts.pause)  # fmt: skip
        cpu, rss = proc_usage(pid)
    finally:
        procs.stop("noop")
    intake = intake_figures(load, 202)
    return {"phase": "noop", "system": "no-op FastAPI", "intake": intake, "cpu_ms_per_alert": (cpu - cpu_before) * 1000 / max(1, intake["sent"]),
            "peak_rss_mib": round(rss / 1024, 1)}  # fmt: skip


async def run_baseline(opts, procs: Processes, sandbox: Sandbox, alerts, phase: str, rate_limit: float | None) -> dict:
    """Run the usual integration script through one phase and return its figures."""
    port = free_port()
    procs.start(phase, [sys.executable, str(ROOT / "bench" / "baseline.py"), "--port", str(port), "--jira", sandbox.url])
    url = f"http://127.0.0.1:{port}"
    try:
        await sandbox.prepare(None)
        await wait_for(lambda: listening(port), f"the baseline ({procs.tail(phase)})", 60)
        await sandbox.prepare(rate_limit)
        pid = procs.running[phase].pid
        cpu_before = proc_usage(pid)[0]
        load, samples = await sampled(sandbox, send_bursts(url, "/hooks/generic", alerts, concurrency=opts.concurrency, burst=opts.burst,
                                                           pause=opts.pause, timeout=120, deadline=opts.baseline_seconds))  # fmt: skip
        cpu, rss = proc_usage(pid)
    finally:
        procs.stop(phase)
    state = await sandbox.state()
    intake = intake_figures(load, 200)
    keyed: dict[int, int] = {}
    failures: dict[str, int] = {}
    for s in load.sent:
        if s.status == 200:
            keyed[s.case] = keyed.get(s.case, 0) + 1
        else:
            reason = _baseline_failure(s)
            failures[reason] = failures.get(reason, 0) + 1
    return {
        "phase": phase, "system": "baseline", "rate_limit": rate_limit, "intake": intake,
        "tickets": {
            "tickets": state["issues"], "cases_sent": len({s.case for s in load.sent}), "cases_ticketed": len(keyed),
            # Tickets beyond one per case. Issues the script never heard about (a create that timed out) count too.
            "duplicate_tickets": state["issues"] - len(keyed),
            "failures": failures, "failed_alerts": sum(failures.values()),
        },
        "jira": jira_figures(state, samples, intake["sent"], state["issues"], 0, rate_limit),
        "cpu_seconds": round(cpu - cpu_before, 3),
        "cpu_ms_per_alert": (cpu - cpu_before) * 1000 / max(1, intake["sent"]),
        "peak_rss_mib": round(rss / 1024, 1),
    }


def _baseline_failure(sent) -> str:
    if not sent.status:
        return "no answer"
    try:
        error = json.loads(sent.body)["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {sent.status}"
    return f"jira {error.split(':', 1)[0]}"
