"""The benchmark's tables and the goals of issue 10, judged from one run's figures."""

from __future__ import annotations

import os
import platform

import profiling

GOAL_INTAKE_RATIO, GOAL_INTAKE, GOAL_P99_RATIO = 0.8, 2000, 2.0
GOAL_SUSTAINED_RATE, GOAL_SUSTAINED_SECONDS, GOAL_CPU_MS, GOAL_LAG_SLACK_MS = 1000, 60, 1.0, 250
GOAL_LAG_RATE, GOAL_PG_CPU_RATIO, GOAL_CALLS_PER_TICKET = 200, 1.5, 1.1
MET, NOT_MET, NOT_JUDGED = "met", "NOT MET", "not judged"


def num(value, digits: int = 0) -> str:
    """Format a number with thousands separators; '-' for None."""
    return "-" if value is None else f"{value:,.{digits}f}"


def pair(figures: dict | None, digits: int = 0) -> str:
    """Format a p50 / p99 pair."""
    return f"{num(figures['p50'], digits)} / {num(figures['p99'], digits)}" if figures else "-"


def ratio(a, b) -> str:
    """Format a / b as a ratio; '-' when either is missing."""
    return f"{a / b:.2f}x" if a is not None and b else "-"


def table(rows: list[tuple[str, ...]]) -> str:
    """Lay rows out in columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
                     for row in rows)  # fmt: skip


def _status(ok: bool | None) -> str:
    return NOT_JUDGED if ok is None else MET if ok else NOT_MET


def goals(opts: dict, phases: dict, notes: dict) -> list[tuple[str, str, str]]:
    """Judge issue 10's goals; return (goal, measured, met / NOT MET / not judged) rows."""
    rows: list[tuple[str, str, str]] = []
    hub, noop = phases.get("hub-open"), phases.get("noop")
    if hub and noop:
        h, n = hub["intake"], noop["intake"]
        rows.append((f"intake >= {GOAL_INTAKE_RATIO}x the no-op endpoint", f"{num(h['throughput'])} / {num(n['throughput'])} = {ratio(h['throughput'], n['throughput'])}",
                     _status(h["throughput"] >= GOAL_INTAKE_RATIO * n["throughput"])))  # fmt: skip
    if hub:
        rows.append((f"intake >= {GOAL_INTAKE:,} alerts/s (SQLite)", num(hub["intake"]["throughput"]), _status(hub["intake"]["throughput"] >= GOAL_INTAKE)))
    if hub and noop:
        hp, np_ = hub["intake"]["latency_ms"]["p99"], noop["intake"]["latency_ms"]["p99"]
        rows.append((f"intake p99 <= {GOAL_P99_RATIO:g}x the no-op's", f"{num(hp, 1)} / {num(np_, 1)} ms = {ratio(hp, np_)}",
                     _status(hp is not None and np_ is not None and hp <= GOAL_P99_RATIO * np_)))  # fmt: skip
    sustained = phases.get("sustained")
    if sustained:
        full = sustained["offered_rate"] >= GOAL_SUSTAINED_RATE and sustained["seconds"] >= GOAL_SUSTAINED_SECONDS
        measured = (f"{num(sustained['achieved_rate'])}/s of {sustained['offered_rate']:g} for {sustained['seconds']:g}s, "
                    f"backlog {sustained['backlog_end_total']:,}, {sustained['tickets']['cases_without_ticket']} unticketed")
        rows.append((f"sustained {GOAL_SUSTAINED_RATE:,}/s for {GOAL_SUSTAINED_SECONDS}s keeps up", measured,
                     _status(sustained["keeps_up"]) if full or not sustained["keeps_up"] else NOT_JUDGED))  # fmt: skip
    if hub:
        rows.append((f"hub CPU <= {GOAL_CPU_MS:g} ms/alert", num(hub["cpu_ms_per_alert"], 2), _status(hub["cpu_ms_per_alert"] <= GOAL_CPU_MS)))
    paced = phases.get(f"sustained-{GOAL_LAG_RATE}")
    if paced:
        budget = opts["latency_ms"] + GOAL_LAG_SLACK_MS
        p99 = paced["tickets"]["ticket_lag_ms"]["p99"]
        on_schedule = paced["intake"]["acknowledged"] == paced["offered"] and (paced["intake"]["start_late_ms"]["p99"] or 0) <= 1000
        measured = num(p99) + ("" if on_schedule else f" (took {num(paced['achieved_rate'])}/s)")
        rows.append((f"e2e ticket p99 <= {budget:.0f} ms at {GOAL_LAG_RATE}/s", measured, _status(on_schedule and p99 is not None and p99 <= budget)))
    pg = phases.get("pg-open")
    if hub and pg:
        both = pg["drained"] and hub["drained"]  # CPU of work not done yet would flatter the one that did not drain
        rows.append((f"PostgreSQL CPU/alert <= {GOAL_PG_CPU_RATIO}x SQLite's", f"{pg['cpu_ms_per_alert']:.2f} / {hub['cpu_ms_per_alert']:.2f} = {ratio(pg['cpu_ms_per_alert'], hub['cpu_ms_per_alert'])}"
                     + ("" if both else " (not drained)"), _status(pg["cpu_ms_per_alert"] <= GOAL_PG_CPU_RATIO * hub["cpu_ms_per_alert"]) if both else NOT_JUDGED))  # fmt: skip
        pg_rate, sq_rate = end_to_end_rate(pg), end_to_end_rate(hub)
        rows.append(("2 serve + 2 worker (PG) >= 1 serve (SQLite)", f"{num(pg_rate)} vs {num(sq_rate)} alerts/s to drained",
                     _status(pg_rate is not None and (sq_rate is None or pg_rate >= sq_rate))))  # fmt: skip
    hub_phases = [p for p in phases.values() if p.get("system") == "alertbridge"]
    dupes = sum(p["tickets"]["duplicate_tickets"] + p["tickets"].get("duplicate_labels", 0) for p in hub_phases)
    rows.append(("0 duplicate tickets", f"{dupes} (all hub phases)", _status(dupes == 0)))
    if hub:
        per_ticket = hub["jira"]["create_path_calls_per_ticket"]
        rows.append((f"<= {GOAL_CALLS_PER_TICKET} Jira calls/ticket created", f"{per_ticket:.3f}", _status(per_ticket <= GOAL_CALLS_PER_TICKET)))
    budget_phase = phases.get("hub-budget")
    goal = f"never above rate_limit {opts['rate_limit']:g}/s"
    if budget_phase:
        jira = budget_phase["jira"]
        rows.append((goal, f"{jira['rate_limited']} 429s, peak {jira['peak_calls_1s']}/s (allowed {jira['allowed_calls_1s']:g})",
                     _status(jira["rate_limited"] == 0 and budget_phase["drained"])))  # fmt: skip
    elif "rate_limit_rejected" in notes:
        rows.append((goal, "rate_limit not accepted by this tree", NOT_MET))
    return rows


def end_to_end_rate(phase: dict) -> float:
    """Return alerts acknowledged per second from the first alert to the drained queue; None when it did not drain."""
    return phase["intake"]["acknowledged"] / phase["drain_seconds"] if phase.get("drained") and phase.get("drain_seconds") else None


def header(result: dict) -> str:
    """Return the run's first line: workload, hub layout and machine."""
    opts = result["options"]
    tree = f", tree {opts['tree']}" if opts.get("tree") else ""
    bursts = any(not key.startswith("sustained") for key in result["phases"])
    load = f"{opts['alerts']:,} alerts over {opts['cases']:,} cases in bursts, " if bursts else ""
    return (f"alertbridge benchmark {result['name']}{tree}: {load}SQLite, one serve, "
            f"workers {opts['workers']}, sink concurrency {opts['sink_concurrency']}, Jira latency {opts['latency_ms']:g} ms, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, machine load average {_loads(result['phases'])}")  # fmt: skip


def _loads(phases: dict) -> str:
    values = [v for p in phases.values() for v in p.get("load_average", [])]
    return f"{min(values):.1f}-{max(values):.1f}" if values else "-"


def intake_table(phases: dict, opts: dict) -> str:
    """Compare intake of the no-op endpoint, the hub and the PostgreSQL layout under the same bursts."""
    columns = [(name, phases[key]) for name, key in (("no-op FastAPI", "noop"), ("alertbridge", "hub-open"),
                                                     ("PG 2 serve+2 worker", "pg-open")) if key in phases]  # fmt: skip
    noop = phases.get("noop", {}).get("intake")
    rows = [(f"intake, same bursts ({opts['burst']:,} alerts, {opts['concurrency']} in flight)", *(n for n, _ in columns), "ab / no-op")]
    hub = phases.get("hub-open", {}).get("intake")
    rows += [
        ("  acknowledged / sent", *(f"{p['intake']['acknowledged']:,} / {p['intake']['sent']:,}" for _, p in columns), ""),
        ("  intake (alerts/s)", *(num(p["intake"]["throughput"]) for _, p in columns), ratio(hub and hub["throughput"], noop and noop["throughput"])),
        ("  intake p50 / p99 (ms)", *(pair(p["intake"]["latency_ms"], 1) for _, p in columns),
         ratio(hub and hub["latency_ms"]["p99"], noop and noop["latency_ms"]["p99"])),
        ("  CPU ms / alert", *(f"{p['cpu_ms_per_alert']:.2f}" for _, p in columns), ""),
    ]
    return table(rows)


def sustained_table(phases: dict) -> str:
    """Lay out the sustained phases: offered rate, schedule slip, backlog over time, lag, tickets."""
    runs = [p for key, p in phases.items() if key.startswith("sustained")]
    if not runs:
        return ""
    rows = [("sustained (open loop, new cases " + f"{runs[0]['new_share']:.0%})", *(f"{p['offered_rate']:g}/s x {p['seconds']:g}s" for p in runs))]
    rows += [
        ("  offered / sent / acknowledged", *(f"{p['offered']:,} / {p['intake']['sent']:,} / {p['intake']['acknowledged']:,}" for p in runs)),
        ("  achieved send rate (alerts/s)", *(num(p["achieved_rate"]) for p in runs)),
        ("  schedule slip p50 / p99 (ms)", *(pair(p["intake"]["start_late_ms"]) for p in runs)),
        ("  intake p50 / p99 (ms)", *(pair(p["intake"]["latency_ms"], 1) for p in runs)),
        ("  backlog at end: inbox / jobs due / running", *(f"{p['backlog_at_end']['inbox_pending']:,} / {p['backlog_at_end']['jobs_due']:,} / {p['backlog_at_end']['jobs_running']}" for p in runs)),
        ("  drained after the load (s)", *(f"{p['drained_after_load_s']:.1f}" + ("" if p["drained"] else " NOT DRAINED") for p in runs)),
        ("  cases / tickets / without ticket", *(f"{p['tickets']['cases_sent']:,} / {p['tickets']['tickets']:,} / {p['tickets']['cases_without_ticket']:,}" for p in runs)),
        ("  duplicate tickets", *(str(p["tickets"]["duplicate_tickets"] + p["tickets"]["duplicate_labels"]) for p in runs)),
        ("  e2e to ticket p50 / p99 (ms)", *(pair(p["tickets"]["ticket_lag_ms"]) for p in runs)),
        ("  CPU ms / alert", *(f"{p['cpu_ms_per_alert']:.2f}" for p in runs)),
        ("  keeps up", *("yes" if p["keeps_up"] else "no" for p in runs)),
    ]
    lines = [table(rows)]
    for p in runs:
        if failed := [check for check, ok in p["keep_up_checks"].items() if not ok]:
            lines.append(f"  {p['phase']} does not keep up: not " + "; not ".join(failed))
        backlog = " ".join(f"{r['t']:.0f}s:{r['inbox_pending'] + r['jobs_due']:,}" for r in p["backlog_over_time"])
        lag = " ".join(f"{w['from_s']:.0f}s:{num(w['ticket_lag_p99_ms'])}" for w in p["tickets"]["lag_over_time"])
        lines += [f"  {p['phase']} backlog (inbox + jobs due) over time: {backlog}", f"  {p['phase']} ticket lag p99 (ms) by first alert's time: {lag}"]
    return "\n".join(lines)


def burst_table(result: dict) -> str:
    """Lay out the burst phases: alertbridge beside the usual integration script, open and rate limited."""
    opts, phases = result["options"], result["phases"]
    rows: list[tuple[str, ...]] = [("bursts", "alertbridge", "baseline", "ab / base")]
    sections = (("not rate limited", "hub-open", "base-open"),
                (f"sandbox limited to {opts['rate_limit']:g} req/s, hub not told", "hub-limited", "base-limited"),
                (f"sandbox limited to {opts['rate_limit']:g} req/s, hub rate_limit {opts['rate_limit']:g}/s", "hub-budget", ""))
    for label, hub_key, base_key in sections:
        hub = phases.get(hub_key)
        if hub is None:
            continue
        b = phases.get(base_key) or {}
        bi, bt, bj = b.get("intake", {}), b.get("tickets", {}), b.get("jira", {})
        hi, ht, hj = hub["intake"], hub["tickets"], hub["jira"]
        rows.append((f"{label}:", "", "", ""))
        rows += [
            ("  alerts sent / acknowledged", f"{hi['sent']:,} / {hi['acknowledged']:,}", f"{bi['sent']:,} / {bi['acknowledged']:,}" if bi else "-", ""),
            ("  intake throughput (alerts/s)", num(hi["throughput"]), num(bi.get("throughput")), ratio(hi["throughput"], bi.get("throughput"))),
            ("  intake latency p50 / p99 (ms)", pair(hi["latency_ms"], 1), pair(bi.get("latency_ms"), 1), ""),
            ("  e2e to ticket p50 / p99 (ms)", pair(ht["ticket_lag_ms"]), pair(bi["latency_ms"]) + " (sync)" if bi else "-", ""),
            ("  e2e to first repeat comment p50 / p99", pair(ht["comment_lag_ms"]), "-", ""),
            ("  drained (s) / jobs dead", f"{hub['drain_seconds']:.1f}{'' if hub['drained'] else ' NOT DRAINED'} / {hub['hub_stats'].get('jobs_dead', '-')}", "-", ""),
            ("  tickets created", f"{ht['tickets']:,}", num(bt.get("tickets")), ""),
            ("  tickets / alert", f"{ht['tickets'] / max(1, hi['acknowledged']):.3f}", f"{bt['tickets'] / max(1, bi['sent']):.3f}" if bi else "-",
             ratio(ht["tickets"] / max(1, hi["acknowledged"]), bt["tickets"] / max(1, bi["sent"])) if bi else "-"),
            ("  duplicate tickets", str(ht["duplicate_tickets"] + ht["duplicate_labels"]), num(bt.get("duplicate_tickets")), ""),
            ("  cases without a ticket / failed alerts", f"{ht['cases_without_ticket']} / 0",
             f"{bt['cases_sent'] - bt['cases_ticketed']} / {bt['failed_alerts']}" if bi else "-", ""),
            ("  comments", f"{ht['comments']:,}", "0" if bi else "-", ""),
            ("  Jira calls", f"{hj['calls']:,}", num(bj.get("calls")), ""),
            ("  Jira calls / alert", f"{hj['calls_per_alert']:.3f}", f"{bj['calls_per_alert']:.3f}" if bj else "-", ratio(hj["calls_per_alert"], bj.get("calls_per_alert"))),
            ("  Jira calls / ticket (create path)", f"{hj['create_path_calls_per_ticket']:.3f}", f"{bj['calls_per_ticket']:.3f}" if bj else "-", ""),
            ("  429s (hub's count by reason)", f"{hj['rate_limited']:,} " + _reasons(hj), num(bj.get("rate_limited")), ""),
            ("  peak calls in 1 s (accepted)", f"{hj['peak_calls_1s']} ({hj['peak_accepted_calls_1s']})",
             f"{bj['peak_calls_1s']} ({bj['peak_accepted_calls_1s']})" if bj else "-", ""),
            ("  CPU ms / alert", f"{hub['cpu_ms_per_alert']:.2f}", f"{b['cpu_ms_per_alert']:.2f}" if b else "-", ""),
            ("  peak RSS (MiB)", f"{hub['peak_rss_mib']:.0f}", f"{b['peak_rss_mib']:.0f}" if b else "-", ""),
        ]
    return table(rows) if len(rows) > 1 else ""


def _reasons(jira: dict) -> str:
    reasons = jira.get("rate_limited_by_reason") or {}
    return "(" + ", ".join(f"{k} {v:,.0f}" for k, v in reasons.items()) + ")" if reasons else ""


def scale_out_table(phases: dict) -> str:
    """Compare one SQLite `serve` with PostgreSQL's 2 `serve` + 2 `worker` under the same bursts, to drained."""
    sqlite, pg = phases.get("hub-open"), phases.get("pg-open")
    if not (sqlite and pg):
        return ""
    rows = [("scale-out, same bursts", "SQLite 1 serve", "PG 2 serve + 2 worker", "PG / SQLite"),
            ("  intake (alerts/s)", num(sqlite["intake"]["throughput"]), num(pg["intake"]["throughput"]), ratio(pg["intake"]["throughput"], sqlite["intake"]["throughput"])),
            ("  drained (s)", *(f"{p['drain_seconds']:.1f}" + ("" if p["drained"] else " NOT DRAINED") for p in (sqlite, pg)),
             ratio(pg["drain_seconds"], sqlite["drain_seconds"]) if pg["drained"] and sqlite["drained"] else "-"),
            ("  end to end (alerts/s to drained)", num(end_to_end_rate(sqlite)), num(end_to_end_rate(pg)), ratio(end_to_end_rate(pg), end_to_end_rate(sqlite))),
            ("  e2e to ticket p50 / p99 (ms)", pair(sqlite["tickets"]["ticket_lag_ms"]), pair(pg["tickets"]["ticket_lag_ms"]), ""),
            ("  hub CPU ms / alert (PostgreSQL server not counted)", f"{sqlite['cpu_ms_per_alert']:.2f}", f"{pg['cpu_ms_per_alert']:.2f}",
             ratio(pg["cpu_ms_per_alert"], sqlite["cpu_ms_per_alert"])),
            ("  duplicate tickets", str(sqlite["tickets"]["duplicate_tickets"]), str(pg["tickets"]["duplicate_tickets"]), "")]  # fmt: skip
    return table(rows)


def render(result: dict) -> str:
    """Lay the whole result out as text: header, bursts, intake, scale-out, sustained, goals, profile."""
    phases = result["phases"]
    parts = [header(result), burst_table(result), scale_out_table(phases), intake_table(phases, result["options"]) if "hub-open" in phases else "", sustained_table(phases)]
    if note := result["notes"].get("rate_limit_rejected"):
        parts.append(f"hub-side rate_limit: not run, this tree's config rejects it ({note})")
    parts.append(table([("goal (issue 10)", "measured", "met"), *result["goals"]]))
    if profile := phases.get("hub-open", {}).get("profile"):
        parts.append(profiling.render(profile))
    return "\n\n".join(part for part in parts if part)
