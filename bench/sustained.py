"""The sustained phase: a fixed offered rate for a fixed time, and whether processing keeps up.

The load is an open loop (alert n is due at n / rate s), so a hub that cannot take the rate shows as a schedule
that slips, not as a lower rate that looks fine. Every `sample_every` seconds the bench reads the hub's
/api/stats (inbox rows pending, jobs due, running) and the sandbox's issue count: the backlog over time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx2

import profiling
from hubs import HOOK_HEADERS, HOOK_PATH, Hub, HubSetup
from loadgen import make_alerts, send_paced
from measure import intake_figures, ticket_figures
from phases import jira_figures, sampled
from procs import Processes, Sandbox, progress

KEEP_UP_LATE_S = 1.0  # the schedule may slip this much (p99) and still count as offered
KEEP_UP_BACKLOG_S = 2.0  # at the load's end, at most this many seconds of alerts may wait in the inbox and the queue
KEEP_UP_DRAIN_S = 10.0  # and be worked off within this long after it
# Repeat comments the load scheduled (comment_every after each case's last one) fall due from comment_every seconds
# into the load on, through the drain: at 1,000/s ~4,000 of them, ~11 running at any moment, so "nothing due or
# running" would wait for the schedule, not for the backlog. What the load left undone is a job waiting past its due time.
KEEP_UP_JOB_LATE_S = 1.0


async def sample_backlog(hub: Hub, sandbox: Sandbox, started: float, every: float, stop: asyncio.Event, rows: list[dict]) -> None:
    """Append one row of backlog figures every `every` seconds until `stop` is set."""
    while not stop.is_set():
        with contextlib.suppress(httpx2.TransportError, KeyError):
            stats, state = await hub.stats(), await sandbox.state()
            rows.append({"t": round(time.monotonic() - started, 1), "inbox_pending": stats["inbox_pending"],
                         "jobs_due": stats["jobs_due"], "jobs_running": stats["jobs_running"],
                         "jobs_scheduled": stats["jobs_scheduled"], "jobs_done": stats["jobs_done"],
                         "jobs_dead": stats["jobs_dead"], "tickets": state["issues"], "calls": state["calls"]})  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def run_sustained(opts, procs: Processes, sandbox: Sandbox, phase: str, rate: float, seconds: float, setup: HubSetup) -> dict:
    """Offer `rate` alerts/s for `seconds` with `opts.new_share` new cases; return intake, backlog, lag and tickets."""
    alerts = make_alerts(int(rate * seconds), 0, seed=7, new_share=opts.new_share)
    async with Hub(procs, sandbox.url, phase, setup) as hub:
        await sandbox.prepare(None)
        cpu_before = sum(cpu for cpu, _ in hub.usage().values())
        started = time.monotonic()
        rows: list[dict] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_backlog(hub, sandbox, started, opts.sample_every, stop, rows))
        raw = procs.logs / f"{phase}-profile.txt"
        recorder = profiling.start(procs, f"{phase}-py-spy", hub.pids[0], raw) if opts.profile else None
        try:
            paced = send_paced(hub.urls, HOOK_PATH, alerts, rate=rate, headers=HOOK_HEADERS, concurrency=opts.sustained_concurrency,
                               stop_after=seconds * 1.5 + 10)  # fmt: skip
            load, samples = await sampled(sandbox, paced)
            load_seconds = time.monotonic() - started
            at_end = await hub.stats()
            progress(f"  offered {len(alerts):,} at {rate:g}/s: sent {len(load.sent):,} in {load_seconds:.1f}s; at the end {at_end}")
            drained, stats, drain_seconds = await hub.drain(opts.drain_timeout, started, late=KEEP_UP_JOB_LATE_S)
            cpu = sum(cpu for cpu, _ in hub.usage().values()) - cpu_before
        finally:
            stop.set()
            await sampler
            profiling.stop(procs, f"{phase}-py-spy", recorder)
    profile = profiling.summarize(raw) if recorder is not None else None
    if profile is not None:
        progress(profiling.render(profile))
    state = await sandbox.state()
    intake = intake_figures(load, 202)
    tickets = ticket_figures(load, await sandbox.issues(), window=max(5.0, seconds / 6))
    backlog_end = at_end["inbox_pending"] + at_end["jobs_due"] + at_end["jobs_running"]
    after_load = drain_seconds - load_seconds
    checks = {
        "all offered alerts sent and acknowledged": intake["acknowledged"] == len(alerts),
        f"schedule slipped <= {KEEP_UP_LATE_S:g} s (p99)": (intake["start_late_ms"]["p99"] or 0) <= KEEP_UP_LATE_S * 1000,
        f"backlog at the end <= {KEEP_UP_BACKLOG_S:g} s of load": backlog_end <= rate * KEEP_UP_BACKLOG_S,
        f"drained <= {KEEP_UP_DRAIN_S:g} s after the load": drained and after_load <= KEEP_UP_DRAIN_S,
        "every case ticketed": tickets["cases_without_ticket"] == 0 and tickets["cases_sent"] > 0,
    }
    return {
        "phase": phase, "system": "alertbridge", "offered_rate": rate, "seconds": seconds, "offered": len(alerts),
        "new_share": opts.new_share, "intake": intake, "tickets": tickets, "load_seconds": round(load_seconds, 2),
        "achieved_rate": len(load.sent) / load_seconds if load_seconds else 0.0,
        "backlog_at_end": at_end, "backlog_end_total": backlog_end, "backlog_over_time": rows,
        "drained": drained, "drain_seconds": round(drain_seconds, 2), "drained_after_load_s": round(after_load, 2), "hub_stats": stats,
        "keeps_up": all(checks.values()), "keep_up_checks": checks,
        "jira": jira_figures(state, samples, intake["acknowledged"], tickets["tickets"], tickets["comments"], None),
        "profile": profile, "cpu_seconds": round(cpu, 3), "cpu_ms_per_alert": cpu * 1000 / max(1, intake["acknowledged"]),
    }
