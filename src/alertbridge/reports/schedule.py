"""Scheduled reports: after each period ends, make its report once (one node of many) and deliver it.

The claim is a row in `report_runs` keyed by (schedule name, period start):
the node whose insert succeeds makes the report, every other node skips it.
A delivery that fails for a reason worth retrying (a notifier's 429 or 5xx)
gives the claim back, so the next round tries again; any other failure is
recorded on the row and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path

import structlog
from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError

from ..config import ReportSchedule
from ..connectors.operator_roles import ReportPoster
from ..connectors.roles import Notifier
from ..errors import Retryable
from ..store import Store
from ..store.tables import report_runs
from .figures import build
from .output import render, summary
from .period import Window, window

log = structlog.get_logger("alertbridge.reports")


class ReportScheduler:
    """Make and deliver the configured reports as their periods end."""

    def __init__(self, store: Store, schedules: list[ReportSchedule], notifiers: dict[str, Notifier], *,
                 public_url: str | None = None, interval: float = 60.0):
        self.store = store
        self.schedules = schedules
        self.notifiers = notifiers
        self.public_url = public_url  # where people reach the console: a posted summary links to the whole report there
        self.interval = interval

    async def run_forever(self, stopping: asyncio.Event) -> None:
        """Check for due reports every `interval` seconds until `stopping` is set; never raise."""
        while not stopping.is_set():
            try:
                await self.run_due()
            except Exception:  # the database may be away: try again next round
                log.exception("scheduled reports failed; will try again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.interval)

    async def run_due(self, now: float | None = None) -> list[str]:
        """Make every report whose last complete period has not been made yet; return what was delivered."""
        delivered = []
        for schedule in self.schedules:
            span = window(schedule.period, now=now if now is not None else time.time())
            if await self._claim(schedule, span):
                outcome = await self._make(schedule, span)
                delivered.append(f"{schedule.name} {span.label}: {outcome}")
        return delivered

    async def _claim(self, schedule: ReportSchedule, span: Window) -> bool:
        try:
            async with self.store.tx() as conn:
                await conn.execute(insert(report_runs).values(
                    name=schedule.name, period_start=span.start, period_end=span.end, started_at=time.time()))
            return True
        except IntegrityError:
            return False  # made already, here or on another node

    async def _make(self, schedule: ReportSchedule, span: Window) -> str:
        report = await build(self.store, span)
        done = []
        try:
            if schedule.folder:
                done.append(f"written to {write_report(Path(schedule.folder), schedule.name, span, render(report, schedule.format), schedule.format)}")
            if schedule.notifier:
                notifier = self.notifiers[schedule.notifier]
                if not isinstance(notifier, ReportPoster):
                    raise TypeError(f"notifier {schedule.notifier!r} ({notifier.config.type}) cannot post reports")
                link = f"{self.public_url.rstrip('/')}/ui/reports?{span.query}" if self.public_url else None
                await notifier.post_report(f"alertbridge {schedule.period} report {span.label}", summary(report), link)
                done.append(f"posted to {schedule.notifier}")
        except Retryable as exc:
            log.warning("report delivery failed; will retry", report=schedule.name, period=span.label, error=str(exc))
            async with self.store.tx() as conn:
                await conn.execute(delete(report_runs).where(report_runs.c.name == schedule.name, report_runs.c.period_start == span.start))
            return f"retry: {exc}"
        except Exception as exc:  # noqa: BLE001 — record why, so the operator sees it; the report is not lost, it can be rerun
            done.append(f"failed: {type(exc).__name__}: {exc}")
            log.error("report delivery failed", report=schedule.name, period=span.label, error=str(exc))
        outcome = "; ".join(done)
        async with self.store.tx() as conn:
            await conn.execute(update(report_runs).where(report_runs.c.name == schedule.name, report_runs.c.period_start == span.start)
                               .values(outcome=outcome[:2000]))
        log.info("report made", report=schedule.name, period=span.label, outcome=outcome)
        return outcome


def write_report(folder: Path, name: str, span: Window, content: str, fmt: str) -> Path:
    """Write a report file atomically (a reader never sees half a file); return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"alertbridge-{name}-{span.label}.{fmt}"
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".report-", suffix=f".{fmt}")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(content)
    os.replace(temporary, path)
    return path
