"""Which time a report covers: a day, an ISO week or a calendar month, in UTC, start included and end excluded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

PERIODS = ("day", "week", "month")


@dataclass(frozen=True)
class Window:
    """The half-open time range [start, end) a report covers, as epoch seconds."""

    period: str
    start: float
    end: float

    @property
    def label(self) -> str:
        """Name the window for titles and file names: 2026-11-30, 2026-W48, 2026-11, or from_to."""
        start, end = _utc(self.start), _utc(self.end)
        if self.period == "day" and end - start == timedelta(days=1) and start == _midnight(start):
            return start.strftime("%Y-%m-%d")
        if self.period == "week" and end - start == timedelta(days=7) and start.weekday() == 0 and start == _midnight(start):
            year, week, _ = start.isocalendar()
            return f"{year}-W{week:02d}"
        if self.period == "month" and start == _month_start(start) and end == _add_months(start, 1):
            return start.strftime("%Y-%m")
        if start == _midnight(start) and end == _midnight(end):
            return f"{start:%Y-%m-%d}_{end - timedelta(days=1):%Y-%m-%d}"  # whole days, the last one included
        return f"{start:%Y-%m-%dT%H%M}_{end:%Y-%m-%dT%H%M}"


    @property
    def query(self) -> str:
        """Return the query string that shows this window on /ui/reports (whole days by date, else by time)."""
        start, end = _utc(self.start), _utc(self.end)
        if start == _midnight(start) and end == _midnight(end):
            first, last = f"{start:%Y-%m-%d}", f"{end - timedelta(days=1):%Y-%m-%d}"  # a plain end date includes its day
        else:
            first, last = f"{start:%Y-%m-%dT%H:%M}", f"{end:%Y-%m-%dT%H:%M}"
        return urlencode({"period": self.period, "from": first, "to": last})


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_start(moment: datetime) -> datetime:
    return _midnight(moment).replace(day=1)


def _add_months(moment: datetime, months: int) -> datetime:
    month = moment.month - 1 + months
    return moment.replace(year=moment.year + month // 12, month=month % 12 + 1)


def _step(moment: datetime, period: str, sign: int) -> datetime:
    if period == "month":
        return _add_months(moment, sign)
    return moment + sign * timedelta(days=1 if period == "day" else 7)


def parse_moment(text: str, *, end: bool = False) -> datetime:
    """Read a date (2026-11-30) or an ISO time (2026-11-30T08:00, UTC unless it says otherwise); a plain end date includes that day."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a date or time: {text!r} (use 2026-11-30 or 2026-11-30T08:00)") from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if end and len(text.strip()) == 10:
        moment += timedelta(days=1)
    return moment


def window(period: str, start: str | None = None, end: str | None = None, now: float | None = None) -> Window:
    """Return the window of a report: --from/--to when given, else the last complete period before `now`."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}; use one of {', '.join(PERIODS)}")
    if start and end:
        begin, finish = parse_moment(start), parse_moment(end, end=True)
    elif start:
        begin = parse_moment(start)
        finish = _step(begin, period, 1)
    elif end:
        finish = parse_moment(end, end=True)
        begin = _step(finish, period, -1)
    else:
        today = _midnight(_utc(now if now is not None else datetime.now(UTC).timestamp()))
        finish = {"day": today, "week": today - timedelta(days=today.weekday()), "month": _month_start(today)}[period]
        begin = _step(finish, period, -1)
    if finish <= begin:
        raise ValueError(f"the report would end ({finish:%Y-%m-%d %H:%M}) before it starts ({begin:%Y-%m-%d %H:%M})")
    return Window(period, begin.timestamp(), finish.timestamp())


def buckets(window: Window) -> tuple[float, list[str]]:
    """Return the chart bucket size in seconds and the bucket labels: hours for a day, days otherwise."""
    size = 3600.0 if window.end - window.start <= 2 * 86400 else 86400.0
    count = int(-(-(window.end - window.start) // size))
    fmt = "%H:00" if size == 3600 else "%m-%d"
    return size, [_utc(window.start + i * size).strftime(fmt) for i in range(count)]
