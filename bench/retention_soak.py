"""Soak: the database size over simulated days of traffic, with retention on and, as the reference, off.

Each simulated day stores `--per-day` alerts the way the hub does (a raw inbox body, an alert row, a done job),
opens a case per 20 alerts and closes the cases of two days ago, then runs the pruner at that day's clock. Both
databases get exactly the same rows; only the pruner differs. With retention on, the SQLite file should stop growing
once the longest horizon has passed; with it off it grows every day. Results go to bench/results/retention-soak.json.

    .venv/bin/python bench/retention_soak.py               # 45 days × 2,000 alerts, horizons 7d/21d/14d/14d
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, update

from alertbridge.logs import configure_logging
from alertbridge.store import Store, upgrade
from alertbridge.store.retention import Horizons, Pruner
from alertbridge.store.tables import alerts, cases, inbox, jobs

DAY = 86400.0
START = 1_800_000_000.0
BODY = json.dumps({"result": {"host": "web-01", "user": "svc", "message": "x" * 1500}}).encode()


async def simulate_day(store: Store, day: int, per_day: int, pruner: Pruner | None) -> dict[str, int]:
    now = START + day * DAY
    per_case = 20
    async with store.tx() as conn:
        first_inbox = (await conn.execute(insert(inbox).returning(inbox.c.id), [
            dict(source="splunk", received_at=now, body=BODY, state="done") for _ in range(per_day)
        ])).scalars().first()
        case_ids = (await conn.execute(insert(cases).returning(cases.c.id), [
            dict(route="soak", key=f"d{day}-{i}", key_hash=f"d{day}-{i}", state="open", title="soak", severity="high",
                 source="splunk", first_seen=now, last_seen=now, observables={"hosts": ["web-01"]})
            for i in range(per_day // per_case)
        ])).scalars().all()
        await conn.execute(insert(alerts), [
            dict(case_id=case_ids[i // per_case], inbox_id=first_inbox + i, alert_id=f"{day}-{i}", source="splunk",
                 severity="high", title="soak", received_at=now, data={"raw": {"message": "x" * 500}})
            for i in range(per_day)
        ])
        await conn.execute(insert(jobs), [
            dict(case_id=case_ids[i // per_case], kind="comment_repeats", payload={}, state="done", run_after=now,
                 created_at=now, finished_at=now) for i in range(per_day)
        ])
        await conn.execute(update(cases).where(cases.c.state == "open", cases.c.first_seen <= now - 2 * DAY)
                           .values(state="closed", closed_at=now))
    if pruner is not None:
        # The pruner's lease is taken at the real clock: renew it each simulated day by releasing it first.
        pruner.lease = 0.0
        await pruner.prune(now=now)
    return {}


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def run(days: int, per_day: int, horizons: Horizons, folder: Path) -> dict:
    series = {}
    for label, prune in (("retention on", True), ("retention off (reference)", False)):
        path = folder / f"{'on' if prune else 'off'}.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        store = Store(url)
        pruner = Pruner(store, horizons, "soak") if prune else None
        sizes = []
        started = time.perf_counter()
        for day in range(days):
            await simulate_day(store, day, per_day, pruner)
            with sqlite3.connect(path) as raw:  # measure the file, not the WAL's slack
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            sizes.append(size(path))
        await store.aclose()
        series[label] = {"bytes_by_day": sizes, "seconds": round(time.perf_counter() - started, 1)}
    return series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=45)
    parser.add_argument("--per-day", type=int, default=2000)
    args = parser.parse_args()
    horizons = Horizons(inbox_bodies=7 * DAY, inbox_rows=21 * DAY, closed_case_alerts=14 * DAY, finished_jobs=14 * DAY, batch=1000)
    with tempfile.TemporaryDirectory() as tmp:
        series = asyncio.run(run(args.days, args.per_day, horizons, Path(tmp)))
    longest = int(max(horizons.inbox_rows, horizons.closed_case_alerts, horizons.finished_jobs) / DAY)
    on, off = series["retention on"]["bytes_by_day"], series["retention off (reference)"]["bytes_by_day"]
    after = on[longest + 1:]
    result = {
        "days": args.days, "alerts_per_day": args.per_day, "longest_horizon_days": longest,
        "on_mib_at_horizon": round(on[longest] / 2**20, 1), "on_mib_last_day": round(on[-1] / 2**20, 1),
        "on_growth_after_horizon_pct": round(100 * (max(after) - min(after)) / min(after), 1) if after else None,
        "off_mib_last_day": round(off[-1] / 2**20, 1), "series": series,
    }
    out = Path(__file__).parent / "results" / "retention-soak.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"{'day':>4} {'retention on MiB':>17} {'off (reference) MiB':>20}")
    for day in range(0, args.days, 5):
        print(f"{day:>4} {on[day] / 2**20:>17.1f} {off[day] / 2**20:>20.1f}")
    print(f"after the {longest}-day horizon the file with retention varies by {result['on_growth_after_horizon_pct']}% "
          f"({min(after) / 2**20:.1f}–{max(after) / 2**20:.1f} MiB); without it: {result['off_mib_last_day']} MiB and growing")
    print(f"written to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")


if __name__ == "__main__":
    configure_logging("WARNING")
    main()
