"""Smoke tests of the benchmark's helpers (bench/): the alert streams, the paced sender, the figures and the goals.

No timing is asserted: the paced sender is checked for what it sent and how it counted, not for how fast.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))  # the bench is scripts, not a package

import profiling  # noqa: E402
from hubs import jobs_overdue  # noqa: E402
from loadgen import case_of_title, make_alerts, send_paced  # noqa: E402
from measure import pct  # noqa: E402
from procs import peak_window  # noqa: E402
from report import MET, NOT_JUDGED, NOT_MET, goals  # noqa: E402


def test_fixed_cases_stream_covers_every_case_and_is_repeatable():
    alerts = make_alerts(300, 30)
    assert len(alerts) == 300
    assert {case for case, _ in alerts} == set(range(30))
    assert alerts == make_alerts(300, 30)


def test_open_stream_opens_new_cases_at_about_the_share_asked():
    alerts = make_alerts(5000, 0, seed=7, new_share=0.1)
    cases = [case for case, _ in alerts]
    opened = len(set(cases))
    assert 400 < opened < 600  # 10 % of 5,000, give or take the draw
    seen = -1
    for case in cases:  # a new case is always the next number: nothing repeats a case before it opened
        assert case <= seen + 1
        seen = max(seen, case)
    assert [case for case, _ in make_alerts(50, 0, new_share=1.0)] == list(range(50))


def test_titles_carry_the_case_number():
    case, body = make_alerts(1, 1)[0]
    assert case_of_title(__import__("json").loads(body)["title"]) == case
    assert case_of_title("something else") is None


def test_percentile_and_peak_window():
    assert pct([], 0.99) is None
    assert pct(list(range(1, 101)), 0.99) == 99
    samples = [(0.0, 0, 0), (0.5, 5, 1), (1.0, 12, 1), (2.5, 13, 1)]
    assert peak_window(samples) == (12, 11)


async def _server(answers: list[int]):
    """A tiny HTTP/1.1 server that answers each request with the next status of `answers` (then 202)."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            length = 0
            while (header := await reader.readline()) not in (b"\r\n", b""):
                if header.lower().startswith(b"content-length:"):
                    length = int(header.split(b":")[1])
            seen.append(await reader.readexactly(length))
            status = answers.pop(0) if answers else 202
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


@pytest.mark.parametrize("retry_for, acknowledged", [(0.0, 9), (30.0, 10)])
async def test_paced_sender_sends_every_alert_and_resends_a_5xx_when_asked(retry_for, acknowledged):
    server, seen = await _server([503])
    port = server.sockets[0].getsockname()[1]
    alerts = make_alerts(10, 2)
    async with server:
        load = await send_paced(f"http://127.0.0.1:{port}", "/hooks/x", alerts, rate=500, concurrency=2, timeout=10, retry_for=retry_for)
    assert len(load.sent) == 10 and not load.stopped_early
    assert len(load.acknowledged()) == acknowledged
    assert load.attempts == len(seen) == 10 + (1 if retry_for else 0)
    assert all(s.late >= -0.001 for s in load.sent)


def test_profile_summary_counts_self_inclusive_and_areas(tmp_path):
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "process 1;thread (0x1);main (a/alertbridge/service.py:10);execute (x/aiosqlite/core.py:5) 3\n"
        "process 1;thread (0x1);main (a/alertbridge/service.py:10) 1\n"
    )
    summary = profiling.summarize(raw)
    assert summary["samples"] == 4
    assert dict(summary["areas"]) == {"aiosqlite": 75.0, "alertbridge": 25.0}
    assert summary["self"][0] == ("execute (aiosqlite/core.py)", 75.0)
    assert dict(summary["inclusive"])["main (alertbridge/service.py)"] == 100.0
    assert "75.0%" in profiling.render(summary)


def _phase(throughput, p99, cpu=5.0, dupes=0):
    return {"system": "alertbridge", "intake": {"throughput": throughput, "latency_ms": {"p50": 1, "p99": p99}, "acknowledged": 100},
            "tickets": {"duplicate_tickets": dupes, "duplicate_labels": 0, "ticket_lag_ms": {"p50": 1, "p99": 300}},
            "cpu_ms_per_alert": cpu, "jira": {"create_path_calls_per_ticket": 0.1}, "drain_seconds": 10}


def test_goals_judge_against_the_noop_endpoint_and_say_when_a_key_is_missing():
    noop = {"intake": {"throughput": 1000, "latency_ms": {"p50": 1, "p99": 10}}}
    phases = {"noop": noop, "hub-open": _phase(900, 15, cpu=0.9)}
    rows = {goal: status for goal, _, status in goals({"latency_ms": 150, "rate_limit": 10}, phases, {"rate_limit_rejected": "no"})}
    assert rows["intake >= 0.8x the no-op endpoint"] == MET
    assert rows["intake >= 2,000 alerts/s (SQLite)"] == NOT_MET
    assert rows["intake p99 <= 2x the no-op's"] == MET
    assert rows["hub CPU <= 1 ms/alert"] == MET
    assert rows["never above rate_limit 10/s"] == NOT_MET


def test_a_short_sustained_run_that_keeps_up_is_not_judged():
    sustained = {"offered_rate": 1000, "seconds": 10, "achieved_rate": 1000, "backlog_end_total": 0, "keeps_up": True,
                 "tickets": {"cases_without_ticket": 0, "duplicate_tickets": 0, "duplicate_labels": 0}, "system": "alertbridge"}
    rows = {goal: status for goal, _, status in goals({"latency_ms": 150, "rate_limit": 10}, {"sustained": sustained}, {})}
    assert rows["sustained 1,000/s for 60s keeps up"] == NOT_JUDGED


def test_jobs_overdue_counts_only_pending_jobs_waiting_past_their_due_time(tmp_path):
    path = tmp_path / "hub.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, state TEXT, run_after REAL)")
        now = time.time()
        conn.executemany("INSERT INTO jobs (state, run_after) VALUES (?, ?)", [
            ("pending", now - 30), ("pending", now - 5),  # waited past their due time
            ("pending", now), ("pending", now + 60),  # just due, and scheduled for later: not late
            ("running", now - 30), ("done", now - 30),
        ])  # fmt: skip
    assert jobs_overdue(f"sqlite:///{path}", late=1.0) == 2
    assert jobs_overdue(f"sqlite:///{path}", late=10.0) == 1
