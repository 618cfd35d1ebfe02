"""Benchmark alertbridge against the Jira sandbox, side by side with the usual integration script.

    python bench/run.py            # full: 20,000 alerts over 2,000 cases, SQLite
    python bench/run.py --quick    # 1,500 alerts over 150 cases, in under two minutes
    python bench/run.py --postgres # one `serve` and two `worker` processes on PostgreSQL

One sandbox process (`alertbridge sandbox`) serves every phase; between phases
its state is reset and its rate limit changed through /_sandbox. Phases:

    hub, open       alertbridge, no rate limit        intake, lag, calls, CPU, memory
    hub, limited    alertbridge, --rate-limit req/s   429s, calls per window, lag
    base, open      bench/baseline.py, no rate limit  (time-boxed by --baseline-seconds)
    base, limited   bench/baseline.py, --rate-limit   failures under rate limiting

Each run writes bench/results/<name>.json and prints a table; docs/benchmarks.md
says how every figure is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import LoadResult, case_of_title, make_alerts, send_bursts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
HOOK_TOKEN, ADMIN_TOKEN = "bench-hook-token", "bench-admin-token"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GOAL_INTAKE, GOAL_INTAKE_P99_MS, GOAL_CPU_MS, GOAL_LAG_SLACK_MS, GOAL_CALLS_PER_TICKET = 2000, 50, 1.0, 500, 1.1


# --- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no process outlives a killed benchmark


class Processes:
    """The subprocesses of one run, each logging to a file; `stop` ends them, SIGTERM first."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start one subprocess under `name`."""
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=ROOT, preexec_fn=_die_with_parent)  # fmt: skip
        self.running[name] = process
        return process

    def stop(self, *names: str) -> None:
        """Stop the named subprocesses (all of them when none is named), waiting at most 15 s each."""
        for name in names or list(self.running):
            process = self.running.pop(name, None)
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

    def tail(self, name: str, lines: int = 20) -> str:
        """Return the last lines of a subprocess's log."""
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def proc_usage(pid: int) -> tuple[float, int]:
    """Return (CPU seconds, user + system, and peak resident memory in KiB) of a process from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime and stime, fields 14 and 15 of stat(5)
    with open(f"/proc/{pid}/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return cpu, peak


async def wait_for(check, what: str, timeout: float, interval: float = 0.2):
    """Poll `check` until it returns something truthy; raise after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx2.TransportError):
            if result := await check():
                return result
        await asyncio.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- the sandbox ---------------------------------------------------------------------------------


class Sandbox:
    """The Jira sandbox subprocess, driven through its /_sandbox admin API."""

    def __init__(self, url: str):
        self.url = url
        self.client = httpx2.AsyncClient(base_url=url, timeout=60, auth=httpx2.BasicAuth("soc@example.com", "sandbox-token"))

    async def prepare(self, rate_limit: float | None) -> None:
        """Forget every issue and call, and set the rate limit for the next phase."""
        await self.client.post("/_sandbox/reset")
        (await self.client.post("/_sandbox/faults", json={"rate_limit": rate_limit})).raise_for_status()

    async def state(self) -> dict:
        """Return the sandbox's issue, call and 429 counts."""
        return (await self.client.get("/_sandbox/state")).json()

    async def issues(self) -> list[dict]:
        """Return every issue with its summary, labels, creation time and comments (call after reading `state`)."""
        issues: list[dict] = []
        while True:
            params = {"jql": "project = SOC ORDER BY key ASC", "fields": "summary,labels,created,comment",
                      "startAt": len(issues), "maxResults": 100}  # fmt: skip
            page = (await self.client.get("/rest/api/2/search", params=params)).json()
            issues += page["issues"]
            if not page["issues"] or len(issues) >= page["total"]:
                return issues

    async def sample_calls(self, samples: list[tuple[float, int, int]], stop: asyncio.Event, every: float = 0.1) -> None:
        """Record (monotonic time, calls, 429s) every `every` seconds until `stop` is set."""
        while not stop.is_set():
            with contextlib.suppress(httpx2.TransportError):
                state = await self.state()
                samples.append((time.monotonic(), state["calls"], state["rate_limited"]))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


def peak_window(samples: list[tuple[float, int, int]], window: float = 1.0) -> tuple[int, int]:
    """Return the most calls, and the most accepted (not 429) calls, seen between two samples at most `window` apart."""
    peak = peak_ok = 0
    first = 0
    for last, (moment, calls, limited) in enumerate(samples):
        while moment - samples[first][0] > window:
            first += 1
        calls_in = calls - samples[first][1]
        peak = max(peak, calls_in)
        peak_ok = max(peak_ok, calls_in - (limited - samples[first][2]))
    return peak, peak_ok


def jira_epoch(stamp: str) -> float:
    """Turn Jira's 2024-01-17T12:34:00.000+0000 into Unix seconds."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


# --- measurements --------------------------------------------------------------------------------


def pct(values: list[float], share: float) -> float | None:
    """Return the `share` percentile (nearest rank) of `values`, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def intake_figures(load: LoadResult, ok_status: int) -> dict:
    """Summarise what the load generator saw: acknowledged alerts, throughput and latency."""
    acked = [s for s in load.sent if s.status == ok_status]
    latencies = [s.latency * 1000 for s in acked]
    statuses: dict[str, int] = {}
    for s in load.sent:
        statuses[str(s.status or "no answer")] = statuses.get(str(s.status or "no answer"), 0) + 1
    return {
        "sent": len(load.sent), "acknowledged": len(acked), "statuses": statuses, "transport_errors": load.errors,
        "bursts": load.bursts, "active_seconds": round(load.active_seconds, 3), "wall_seconds": round(load.wall_seconds, 3),
        "stopped_early": load.stopped_early,
        "throughput": len(acked) / load.active_seconds if load.active_seconds else 0.0,
        "latency_ms": {"p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99), "max": max(latencies, default=None)},
    }


def ticket_figures(load: LoadResult, issues: list[dict]) -> dict:
    """Match issues to cases; count duplicates; measure lag from acknowledgement to ticket and to first comment."""
    acks: dict[int, list[float]] = {}
    for s in load.sent:
        if s.status == 202:
            acks.setdefault(s.case, []).append(s.acked_at)
    for times in acks.values():
        times.sort()
    by_case: dict[int, list[dict]] = {}
    by_label: dict[str, int] = {}
    comments = 0
    for issue in issues:
        fields = issue["fields"]
        case = case_of_title(fields["summary"])
        by_case.setdefault(case if case is not None else -1, []).append(fields)
        for label in fields["labels"]:
            if label.startswith("alertbridge-"):
                by_label[label] = by_label.get(label, 0) + 1
        comments += len(fields["comment"]["comments"])
    ticket_lag, comment_lag = [], []
    for case, times in acks.items():
        found = by_case.get(case)
        if not found:
            continue
        first = min(found, key=lambda f: f["created"])
        ticket_lag.append((jira_epoch(first["created"]) - times[0]) * 1000)
        notes = sorted(jira_epoch(c["created"]) for f in found for c in f["comment"]["comments"])
        if len(times) > 1 and notes:
            comment_lag.append((notes[0] - times[1]) * 1000)
    return {
        "tickets": len(issues),
        "cases_sent": len(acks),
        "cases_without_ticket": sum(1 for case in acks if case not in by_case),
        "duplicate_labels": sum(1 for n in by_label.values() if n > 1),
        "duplicate_tickets": sum(len(found) - 1 for found in by_case.values()),
        "comments": comments,
        "ticket_lag_ms": {"p50": pct(ticket_lag, 0.5), "p99": pct(ticket_lag, 0.99), "max": max(ticket_lag, default=None)},
        "comment_lag_ms": {"p50": pct(comment_lag, 0.5), "p99": pct(comment_lag, 0.99), "max": max(comment_lag, default=None)},
    }


def parse_metrics(text: str) -> dict:
    """Pick the sink-call and 429 counters out of the hub's Prometheus text."""
    calls: dict[str, float] = {}
    limited: dict[str, float] = {}
    for line in text.splitlines():
        if match := re.match(r'alertbridge_sink_calls_total\{(.*)\} ([0-9.e+]+)', line):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))
            key = f"{labels['operation']}:{labels['outcome']}"
            calls[key] = calls.get(key, 0) + float(match[2])
        elif match := re.match(r'alertbridge_rate_limited_total\{(.*)\} ([0-9.e+]+)', line):
            reason = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))["reason"]
            limited[reason] = limited.get(reason, 0) + float(match[2])
    return {"sink_calls": calls, "rate_limited_by_reason": limited}


# --- phases --------------------------------------------------------------------------------------


def hub_config(path: Path, opts, database: str, port: int, sandbox_url: str) -> None:
    """Write the hub's config for one phase."""
    path.write_text(f"""\
database: {database}
listen: 127.0.0.1:{port}
admin_token: {ADMIN_TOKEN}
workers: {opts.workers}
search_lag: 2s
sources:
  generic:
    type: generic
    auth: {{mode: bearer, token: {HOOK_TOKEN}}}
sinks:
  jira:
    type: jira
    flavor: cloud
    url: {sandbox_url}
    email: soc@example.com
    api_token: sandbox-token
    max_concurrency: {opts.sink_concurrency}
routes:
  - name: bench
    match: {{sources: [generic]}}
    sink: jira
    project: SOC
    issue_type: Alert
    summary: "{{{{ alert.title }}}}"
    group_by: "{{{{ alert.title }}}}"
    labels: [bench]
    comment_every: {opts.comment_every}s
""")


def create_database(name: str) -> str:
    """Create a fresh PostgreSQL database and return its URL."""
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    """Drop a benchmark database."""
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run_hub(opts, procs: Processes, sandbox: Sandbox, alerts, phase: str, rate_limit: float | None) -> dict:
    """Run alertbridge through one phase and return its figures."""
    port = free_port()
    config = procs.logs / f"{phase}.yaml"
    db_name = f"alertbridge_bench_{os.getpid()}_{phase.replace('-', '_')}"
    database = create_database(db_name) if opts.postgres else f"sqlite:///{procs.logs / f'{phase}.db'}"
    hub_config(config, opts, database, port, sandbox.url)
    env = {"ALERTBRIDGE_LOG_LEVEL": "WARNING"}
    names = [f"{phase}-serve"]
    procs.start(names[0], [sys.executable, "-m", "alertbridge", "serve", "--config", str(config)], env)
    url = f"http://127.0.0.1:{port}"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    profiler = None
    try:
        async with httpx2.AsyncClient(base_url=url, timeout=30) as hub:
            await wait_for(lambda: _ok(hub.get("/healthz")), f"the hub ({procs.tail(names[0])})", 60)
            if opts.postgres:
                for number in (1, 2):
                    names.append(f"{phase}-worker{number}")
                    procs.start(names[-1], [sys.executable, "-m", "alertbridge", "worker", "--config", str(config)], env)
                await asyncio.sleep(2.0)  # workers import and connect; nothing waits on them before the load
            pids = [procs.running[name].pid for name in names]
            await sandbox.prepare(rate_limit)
            profiler = _start_profiler(opts, procs, phase, pids[0])
            cpu_before = sum(proc_usage(pid)[0] for pid in pids)
            samples: list[tuple[float, int, int]] = []
            stop = asyncio.Event()
            sampler = asyncio.create_task(sandbox.sample_calls(samples, stop))
            started = time.monotonic()
            load = await send_bursts(url, "/hooks/generic", alerts, headers={"Authorization": f"Bearer {HOOK_TOKEN}"},
                                     concurrency=opts.concurrency, burst=opts.burst, pause=opts.pause)  # fmt: skip
            _progress(f"  sent {len(load.sent):,} in {load.active_seconds:.1f}s active, {load.wall_seconds:.1f}s wall")
            drained, stats = await _drain(hub, admin, opts.drain_timeout)
            _progress(f"  {'drained' if drained else 'NOT drained'} after {time.monotonic() - started:.1f}s: {stats}")
            drain_seconds = time.monotonic() - started
            usage = [proc_usage(pid) for pid in pids]
            stop.set()
            await sampler
            metrics = parse_metrics((await hub.get("/metrics")).text)
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    profiler.wait(timeout=60)
    finally:
        procs.stop(*names)
        if profiler is not None and profiler.poll() is None:
            profiler.kill()
        if opts.postgres:
            drop_database(db_name)
    state = await sandbox.state()
    issues = await sandbox.issues()
    intake = intake_figures(load, 202)
    tickets = ticket_figures(load, issues)
    cpu = sum(u[0] for u in usage) - cpu_before
    peak, peak_ok = peak_window(samples)
    create_path = state["calls"] - tickets["comments"]
    return {
        "phase": phase, "system": "alertbridge", "rate_limit": rate_limit, "intake": intake, "tickets": tickets,
        "drained": drained, "drain_seconds": round(drain_seconds, 2), "hub_stats": stats,
        "jira": {
            "calls": state["calls"], "rate_limited": state["rate_limited"],
            "calls_per_alert": state["calls"] / max(1, intake["acknowledged"]),
            "calls_per_ticket": state["calls"] / max(1, tickets["tickets"]),
            "create_path_calls_per_ticket": create_path / max(1, tickets["tickets"]),
            "peak_calls_1s": peak, "peak_accepted_calls_1s": peak_ok,
            "allowed_calls_1s": math.ceil(rate_limit) + rate_limit if rate_limit else None,
            **metrics,
        },
        "processes": {name: {"cpu_seconds": round(u[0], 2), "peak_rss_mib": round(u[1] / 1024, 1)} for name, u in zip(names, usage)},
        "cpu_seconds": round(cpu, 3),
        "cpu_ms_per_alert": cpu * 1000 / max(1, intake["acknowledged"]),
        "peak_rss_mib": round(max(u[1] for u in usage) / 1024, 1),
    }


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _drain(hub: httpx2.AsyncClient, admin: dict, timeout: float) -> tuple[bool, dict]:
    """Wait until the inbox is empty and no job is due or running; return (drained, last stats)."""
    deadline = time.monotonic() + timeout
    stats: dict = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx2.TransportError):
            stats = (await hub.get("/api/stats", headers=admin)).json()
            # Repeat comments scheduled for later (comment_every) are not waited for: nothing is due, nothing runs.
            if stats["inbox_pending"] == 0 and stats["jobs_due"] == 0 and stats["jobs_running"] == 0:
                return True, stats
        await asyncio.sleep(0.5)
    return False, stats


def _start_profiler(opts, procs: Processes, phase: str, pid: int) -> subprocess.Popen | None:
    if not opts.profile or phase != "hub-open":
        return None
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        print("--profile needs py-spy in the venv (pip install py-spy); running without it", file=sys.stderr)
        return None
    out = procs.logs / f"{phase}-profile.txt"
    return procs.start(f"{phase}-py-spy", [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
                                           "--output", str(out), "--nonblocking"])  # fmt: skip


async def run_baseline(opts, procs: Processes, sandbox: Sandbox, alerts, phase: str, rate_limit: float | None) -> dict:
    """Run the usual integration script through one phase and return its figures."""
    port = free_port()
    name = phase
    procs.start(name, [sys.executable, str(ROOT / "bench" / "baseline.py"), "--port", str(port), "--jira", sandbox.url])
    url = f"http://127.0.0.1:{port}"
    try:
        await sandbox.prepare(None)
        await wait_for(lambda: _listening(port), f"the baseline ({procs.tail(name)})", 60)
        await sandbox.prepare(rate_limit)
        pid = procs.running[name].pid
        cpu_before = proc_usage(pid)[0]
        samples: list[tuple[float, int, int]] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(sandbox.sample_calls(samples, stop))
        load = await send_bursts(url, "/hooks/generic", alerts, concurrency=opts.concurrency, burst=opts.burst,
                                 pause=opts.pause, timeout=120, deadline=opts.baseline_seconds)  # fmt: skip
        cpu, rss = proc_usage(pid)
        stop.set()
        await sampler
    finally:
        procs.stop(name)
    state = await sandbox.state()
    intake = intake_figures(load, 200)
    keyed = {}
    failures: dict[str, int] = {}
    for s in load.sent:
        if s.status == 200:
            keyed.setdefault(s.case, 0)
            keyed[s.case] += 1
        else:
            reason = _baseline_failure(s)
            failures[reason] = failures.get(reason, 0) + 1
    peak, peak_ok = peak_window(samples)
    return {
        "phase": phase, "system": "baseline", "rate_limit": rate_limit, "intake": intake,
        "tickets": {
            "tickets": state["issues"], "cases_sent": len({s.case for s in load.sent}), "cases_ticketed": len(keyed),
            # Tickets beyond one per case. Issues the script never heard about (a create that timed out) count too.
            "duplicate_tickets": state["issues"] - len(keyed),
            "failures": failures, "failed_alerts": sum(failures.values()),
        },
        "jira": {
            "calls": state["calls"], "rate_limited": state["rate_limited"],
            "calls_per_alert": state["calls"] / max(1, intake["sent"]),
            "calls_per_ticket": state["calls"] / max(1, state["issues"]),
            "peak_calls_1s": peak, "peak_accepted_calls_1s": peak_ok,
            "allowed_calls_1s": math.ceil(rate_limit) + rate_limit if rate_limit else None,
        },
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


async def _ok(request) -> bool:
    return (await request).status_code == 200


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


# --- the report ----------------------------------------------------------------------------------


def _num(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _pair(figures: dict, digits: int = 0) -> str:
    return f"{_num(figures['p50'], digits)} / {_num(figures['p99'], digits)}"


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def goals(opts, hub_open: dict, hub_limited: dict | None) -> list[tuple[str, str, bool]]:
    """Judge the goals; return (goal, measured, met) rows."""
    lag_budget = opts.latency_ms + GOAL_LAG_SLACK_MS
    rows = [
        (f"intake >= {GOAL_INTAKE:,} alerts/s", _num(hub_open["intake"]["throughput"]), hub_open["intake"]["throughput"] >= GOAL_INTAKE),
        (f"intake p99 <= {GOAL_INTAKE_P99_MS} ms", _num(hub_open["intake"]["latency_ms"]["p99"], 1),
         (hub_open["intake"]["latency_ms"]["p99"] or 1e9) <= GOAL_INTAKE_P99_MS),
        (f"hub CPU <= {GOAL_CPU_MS} ms/alert", _num(hub_open["cpu_ms_per_alert"], 2), hub_open["cpu_ms_per_alert"] <= GOAL_CPU_MS),
        (f"e2e ticket p99 <= {lag_budget:.0f} ms", _num(hub_open["tickets"]["ticket_lag_ms"]["p99"]),
         (hub_open["tickets"]["ticket_lag_ms"]["p99"] or 1e9) <= lag_budget),
        (f"e2e first-comment p99 <= {lag_budget:.0f} ms", _num(hub_open["tickets"]["comment_lag_ms"]["p99"]),
         (hub_open["tickets"]["comment_lag_ms"]["p99"] or 1e9) <= lag_budget),
    ]
    phases = [hub_open, *([hub_limited] if hub_limited else [])]
    dupes = sum(p["tickets"]["duplicate_tickets"] + p["tickets"]["duplicate_labels"] for p in phases)
    rows.append(("0 duplicate tickets", str(dupes), dupes == 0))
    per_ticket = hub_open["jira"]["create_path_calls_per_ticket"]
    rows.append((f"<= {GOAL_CALLS_PER_TICKET} Jira calls/ticket created", f"{per_ticket:.3f}", per_ticket <= GOAL_CALLS_PER_TICKET))
    if hub_limited:
        jira = hub_limited["jira"]
        rows.append((f"no call beyond {opts.rate_limit:g} req/s (0 429s)",
                     f"{jira['rate_limited']} 429s, peak {jira['peak_calls_1s']}/s (allowed {jira['allowed_calls_1s']:g})",
                     jira["rate_limited"] == 0))
    return rows


def render(result: dict) -> str:
    """Lay the result out as a plain-text table."""
    opts = result["options"]
    phases = result["phases"]
    lines = [
        f"alertbridge benchmark {result['name']}: {opts['alerts']:,} alerts over {opts['cases']:,} cases, "
        f"{'PostgreSQL, serve + 2 workers' if opts['postgres'] else 'SQLite, one serve'}, workers {opts['workers']}, "
        f"sink concurrency {opts['sink_concurrency']}, Jira latency {opts['latency_ms']:g} ms, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
    ]
    rows: list[tuple[str, ...]] = [("", "alertbridge", "baseline", "ab / base")]
    for label, hub_key, base_key in (("not rate limited", "hub-open", "base-open"),
                                      (f"rate limited at {opts['rate_limit']:g} req/s", "hub-limited", "base-limited")):
        hub, base = phases.get(hub_key), phases.get(base_key)
        if hub is None:
            continue
        rows.append((f"{label}:", "", "", ""))
        b = base or {}
        bi, bt, bj = b.get("intake", {}), b.get("tickets", {}), b.get("jira", {})
        hi, ht, hj = hub["intake"], hub["tickets"], hub["jira"]
        rows += [
            ("  alerts sent / acknowledged", f"{hi['sent']:,} / {hi['acknowledged']:,}",
             f"{bi['sent']:,} / {bi['acknowledged']:,}" if bi else "-", ""),
            ("  intake throughput (alerts/s)", _num(hi["throughput"]), _num(bi.get("throughput")), _ratio(hi["throughput"], bi.get("throughput"))),
            ("  intake latency p50 / p99 (ms)", _pair(hi["latency_ms"], 1), _pair(bi["latency_ms"], 1) if bi else "-", ""),
            ("  e2e to ticket p50 / p99 (ms)", _pair(ht["ticket_lag_ms"]), _pair(bi["latency_ms"]) + " (sync)" if bi else "-", ""),
            ("  e2e to first repeat comment p50 / p99", _pair(ht["comment_lag_ms"]), "-", ""),
            ("  drained (s) / jobs dead", f"{hub['drain_seconds']:.1f}{'' if hub['drained'] else ' NOT DRAINED'} / {hub['hub_stats'].get('jobs_dead', '-')}", "-", ""),
            ("  tickets created", f"{ht['tickets']:,}", _num(bt.get("tickets")), ""),
            ("  tickets / alert", f"{ht['tickets'] / max(1, hi['acknowledged']):.3f}",
             f"{bt['tickets'] / max(1, bi['sent']):.3f}" if bi else "-",
             _ratio(ht["tickets"] / max(1, hi["acknowledged"]), bt["tickets"] / max(1, bi["sent"])) if bi else "-"),
            ("  duplicate tickets", str(ht["duplicate_tickets"] + ht["duplicate_labels"]), _num(bt.get("duplicate_tickets")), ""),
            ("  cases without a ticket / failed alerts", f"{ht['cases_without_ticket']} / 0",
             f"{bt['cases_sent'] - bt['cases_ticketed']} / {bt['failed_alerts']}" if bi else "-", ""),
            ("  comments", f"{ht['comments']:,}", "0" if bi else "-", ""),
            ("  Jira calls", f"{hj['calls']:,}", _num(bj.get("calls")), ""),
            ("  Jira calls / alert", f"{hj['calls_per_alert']:.3f}", f"{bj['calls_per_alert']:.3f}" if bj else "-",
             _ratio(hj["calls_per_alert"], bj.get("calls_per_alert"))),
            ("  Jira calls / ticket (create path)", f"{hj['create_path_calls_per_ticket']:.3f}",
             f"{bj['calls_per_ticket']:.3f}" if bj else "-", ""),
            ("  429s (hub's count by reason)", f"{hj['rate_limited']:,} " + _reasons(hj), _num(bj.get("rate_limited")), ""),
            ("  peak calls in 1 s (accepted)", f"{hj['peak_calls_1s']} ({hj['peak_accepted_calls_1s']})",
             f"{bj['peak_calls_1s']} ({bj['peak_accepted_calls_1s']})" if bj else "-", ""),
            ("  CPU ms / alert", f"{hub['cpu_ms_per_alert']:.2f}", f"{b['cpu_ms_per_alert']:.2f}" if b else "-", ""),
            ("  peak RSS (MiB)", f"{hub['peak_rss_mib']:.0f}", f"{b['peak_rss_mib']:.0f}" if b else "-", ""),
        ]
    lines.append(_table(rows))
    lines.append("")
    lines.append(_table([("goal", "measured", "met"), *((g, m, "met" if ok else "NOT MET") for g, m, ok in result["goals"])]))
    return "\n".join(lines)


def _reasons(jira: dict) -> str:
    reasons = jira.get("rate_limited_by_reason") or {}
    return "(" + ", ".join(f"{k} {v:,.0f}" for k, v in reasons.items()) + ")" if reasons else ""


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
                     for row in rows)


# --- the run -------------------------------------------------------------------------------------


def options(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; --quick changes only the defaults the user did not set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,500 alerts over 150 cases, baseline time-boxed to 8 s")
    parser.add_argument("--postgres", action="store_true", help="one serve and two worker processes on PostgreSQL")
    parser.add_argument("--name", help="results file name (default: quick/full, -postgres)")
    parser.add_argument("--alerts", type=int)
    parser.add_argument("--cases", type=int)
    parser.add_argument("--latency-ms", type=float, default=150.0, help="sandbox latency per call")
    parser.add_argument("--rate-limit", type=float, default=50.0, help="sandbox requests per second in the limited phases")
    parser.add_argument("--workers", type=int, default=4, help="hub job workers per process (4 measured best; see docs/benchmarks.md)")
    parser.add_argument("--sink-concurrency", type=int, default=16, help="hub calls in flight to Jira per process")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight from the load generator")
    parser.add_argument("--burst", type=int, default=1000, help="alerts per burst")
    parser.add_argument("--pause", type=float, default=0.25, help="seconds between bursts")
    parser.add_argument("--comment-every", type=float, default=60.0, help="the route's comment_every, seconds")
    parser.add_argument("--baseline-seconds", type=float, help="stop sending to the baseline after this long")
    parser.add_argument("--drain-timeout", type=float, help="longest wait for the hub's queue to empty")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-limited", action="store_true", help="run only the phases without a rate limit")
    parser.add_argument("--profile", action="store_true", help="record the hub with py-spy in the open phase (needs py-spy)")
    opts = parser.parse_args(argv)
    opts.alerts = opts.alerts or (1500 if opts.quick else 20000)
    opts.cases = opts.cases or (150 if opts.quick else 2000)
    opts.baseline_seconds = opts.baseline_seconds or (8.0 if opts.quick else 60.0)
    opts.drain_timeout = opts.drain_timeout or (60.0 if opts.quick else 400.0)
    opts.name = opts.name or ("quick" if opts.quick else "full") + ("-postgres" if opts.postgres else "")
    return opts


async def main(opts: argparse.Namespace) -> dict:
    """Run every phase against one sandbox and return the result."""
    logs = RESULTS / opts.name
    logs.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("*"):
        old.unlink()
    procs = Processes(logs)
    alerts = make_alerts(opts.alerts, opts.cases)
    port = free_port()
    procs.start("sandbox", [sys.executable, "-m", "alertbridge", "sandbox", "--port", str(port), "--latency-ms", f"{opts.latency_ms:g}"])
    sandbox = Sandbox(f"http://127.0.0.1:{port}")
    phases: dict[str, dict] = {}
    started = time.monotonic()
    try:
        await wait_for(lambda: _ok(sandbox.client.get("/rest/api/3/serverInfo")), f"the sandbox ({procs.tail('sandbox')})", 60)
        plan = [("hub-open", run_hub, None), ("hub-limited", run_hub, opts.rate_limit),
                ("base-open", run_baseline, None), ("base-limited", run_baseline, opts.rate_limit)]
        for phase, runner, limit in plan:
            if (opts.skip_baseline and runner is run_baseline) or (opts.skip_limited and limit is not None):
                continue
            phase_started = time.monotonic()
            print(f"[{time.monotonic() - started:6.1f}s] {phase} ...", file=sys.stderr, flush=True)
            phases[phase] = await runner(opts, procs, sandbox, alerts, phase, limit)
            print(f"[{time.monotonic() - started:6.1f}s] {phase} done in {time.monotonic() - phase_started:.1f}s", file=sys.stderr, flush=True)
    finally:
        await sandbox.client.aclose()
        procs.stop()
    return {
        "name": opts.name, "finished_at": datetime.now().isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - started, 1), "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "options": {k: v for k, v in vars(opts).items()}, "phases": phases,
        "goals": goals(opts, phases["hub-open"], phases.get("hub-limited")),
    }


def run(argv: list[str] | None = None) -> None:
    """Run the benchmark, write bench/results/<name>.json and print the table."""
    opts = options(argv)
    result = asyncio.run(main(opts))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{opts.name}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(render(result))
    print(f"\n{path.relative_to(ROOT)} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    run()
