"""The load generator: alerts with many repeats, sent over HTTP/1.1 keep-alive in bursts or at a fixed rate.

A small client on asyncio streams rather than an HTTP library, so that on a
2-core machine the generator costs little CPU next to the hub it measures.
Every connection, read and burst is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from dataclasses import dataclass, field

TITLE = "bench case {:05d}"
SEVERITIES = ("low", "medium", "high", "critical")


@dataclass
class Sent:
    """One alert as the generator saw it: its case, when it was sent and answered, and the status."""

    case: int
    started: float = 0.0  # time.monotonic() when the request was written
    latency: float = 0.0  # seconds until the status line came back
    acked_at: float = 0.0  # time.time() when the answer came back, comparable with the sandbox's timestamps
    status: int = 0  # 0 when no answer came (timeout or connection error)
    body: bytes = b""
    late: float = 0.0  # paced sending: seconds the first attempt started after its turn in the schedule
    attempts: int = 0


@dataclass
class LoadResult:
    """Everything a load run produced."""

    sent: list[Sent]
    active_seconds: float  # sum of the bursts' durations (pauses excluded)
    wall_seconds: float  # first request to last answer, pauses included
    bursts: int
    stopped_early: bool = False  # the deadline passed before every alert was sent
    errors: dict[str, int] = field(default_factory=dict)
    paced: bool = False  # sent at a fixed offered rate rather than in bursts
    attempts: int = 0  # requests written, resends included

    def acknowledged(self, status: int = 202) -> list[Sent]:
        """Return the alerts answered with `status`."""
        return [s for s in self.sent if s.status == status]


def make_alerts(count: int, cases: int, seed: int = 4, new_share: float | None = None) -> list[tuple[int, bytes]]:
    """Make `count` alert bodies over `cases` cases: every case appears early, repeats follow a skewed draw.

    With `new_share` the cases are not fixed in advance: each alert opens a new case with that probability
    (1.0: every alert distinct) and otherwise repeats one already seen, noisy cases more often.
    """
    rng = random.Random(seed)
    if new_share is not None:
        return _bodies(_open_stream(rng, count, new_share), rng)
    order = list(range(cases))
    rng.shuffle(order)
    # Each case's first alert comes in the first part of the stream; repeats are skewed (some cases are noisy).
    weights = [1.0 / (rank + 1) ** 0.6 for rank in range(cases)]
    repeats = rng.choices(range(cases), weights=weights, k=max(0, count - cases))
    stream = order[: min(cases, count)] + repeats
    head = min(len(stream), 2 * cases)
    mixed = stream[:head]
    rng.shuffle(mixed)
    # Keep first sightings in order of appearance but let repeats interleave with them.
    stream = mixed + stream[head:]
    return _bodies(stream, rng)


def _open_stream(rng: random.Random, count: int, new_share: float) -> list[int]:
    stream: list[int] = []
    seen = 0
    for _ in range(count):
        if seen == 0 or rng.random() < new_share:
            stream.append(seen)
            seen += 1
        else:  # 1/rank^0.6 over the cases seen so far, by inverse transform of its integral
            rank = int((rng.random() * seen**0.4) ** 2.5)
            stream.append(min(seen - 1, rank))
    return stream


def _bodies(stream: list[int], rng: random.Random) -> list[tuple[int, bytes]]:
    bodies = []
    for number, case in enumerate(stream):
        alert = {
            "id": f"bench-{number}",
            "title": TITLE.format(case),
            "severity": SEVERITIES[case % 4],
            "description": f"Generated alert {number} for case {case}.",
            "hosts": [f"ws-{rng.randint(1, 500):03d}"],
            "ips": [f"198.51.100.{rng.randint(1, 254)}"],
        }
        bodies.append((case, json.dumps(alert).encode()))
    return bodies


def case_of_title(title: str) -> int | None:
    """Return the case number in a generated title, or None for anything else."""
    prefix = TITLE.split("{")[0]
    if not title.startswith(prefix):
        return None
    try:
        return int(title[len(prefix):])
    except ValueError:
        return None


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends POSTs and reads the answers."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str], timeout: float):
        self.host, self.port, self.timeout = host, port, timeout
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{extra}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """POST one body; return (status, response body). Reconnects once if the server closed the connection."""
        for attempt in (1, 2):
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
                self.writer.write(f"{self.head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
                return await asyncio.wait_for(self._answer(), self.timeout)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                self.close()
                if attempt == 2:
                    raise ConnectionError(f"{type(exc).__name__}: {exc}") from exc
            except TimeoutError:
                self.close()
                raise
        raise AssertionError("unreachable")

    async def _answer(self) -> tuple[int, bytes]:
        assert self.reader is not None
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed before the answer")
        status = int(status_line.split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        body = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        """Close the socket (a new one opens on the next post)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _connections(urls: str | list[str], path: str, headers: dict[str, str] | None, timeout: float, count: int) -> list[_Connection]:
    """Open `count` lazy connections, spread round-robin over `urls` (several `serve` processes)."""
    targets = [url.removeprefix("http://").rstrip("/").rsplit(":", 1) for url in ([urls] if isinstance(urls, str) else urls)]
    return [_Connection(targets[n % len(targets)][0], int(targets[n % len(targets)][1]), path, headers or {}, timeout)
            for n in range(count)]  # fmt: skip


async def send_bursts(
    url: str | list[str],
    path: str,
    alerts: list[tuple[int, bytes]],
    *,
    headers: dict[str, str] | None = None,
    concurrency: int = 32,
    burst: int = 1000,
    pause: float = 0.25,
    timeout: float = 30.0,
    deadline: float | None = None,
) -> LoadResult:
    """Send alerts in bursts of `burst`, `concurrency` at a time, pausing between bursts; start none after `deadline` seconds."""
    connections = _connections(url, path, headers, timeout, concurrency)
    sent = [Sent(case) for case, _ in alerts]
    errors: dict[str, int] = {}
    active, started, bursts = 0.0, time.monotonic(), 0
    stop_at = started + deadline if deadline is not None else math.inf
    try:
        for first in range(0, len(alerts), burst):
            if time.monotonic() > stop_at:
                break
            numbers = iter(range(first, min(first + burst, len(alerts))))
            burst_started = time.monotonic()
            await asyncio.gather(*(_drain(conn, numbers, alerts, sent, errors, stop_at) for conn in connections))
            active += time.monotonic() - burst_started
            bursts += 1
            if first + burst < len(alerts) and pause > 0:
                await asyncio.sleep(pause)
    finally:
        for conn in connections:
            conn.close()
    done = [s for s in sent if s.started]
    wall = max((s.started + s.latency for s in done), default=started) - started
    return LoadResult(sent=done, active_seconds=active, wall_seconds=wall, bursts=bursts, stopped_early=len(done) < len(sent), errors=errors)


async def _drain(conn: _Connection, numbers, alerts, sent: list[Sent], errors: dict[str, int], stop_at: float) -> None:
    for number in numbers:
        if time.monotonic() > stop_at:
            return
        record = sent[number]
        record.started = time.monotonic()
        record.attempts = 1
        try:
            record.status, record.body = await conn.post(alerts[number][1])
        except (ConnectionError, TimeoutError, OSError) as exc:
            kind = type(exc).__name__
            errors[kind] = errors.get(kind, 0) + 1
        record.latency = time.monotonic() - record.started
        record.acked_at = time.time()


async def send_paced(
    url: str | list[str],
    path: str,
    alerts: list[tuple[int, bytes]],
    *,
    rate: float,
    headers: dict[str, str] | None = None,
    concurrency: int = 64,
    timeout: float = 30.0,
    retry_for: float = 0.0,
    ok_status: int = 202,
    stop_after: float | None = None,
) -> LoadResult:
    """Send alert n at `n / rate` seconds (an open loop); with `retry_for`, resend an unanswered or 5xx one until then.

    At most `concurrency` requests are in flight: when all are busy, alerts start late, and `late` says by how much,
    so an offered rate the hub cannot take shows as a late schedule, not as a lower rate that looks fine. No alert
    starts after `stop_after` seconds: those are left out of the result (`stopped_early`).
    """
    connections = _connections(url, path, headers, timeout, concurrency)
    sent = [Sent(case) for case, _ in alerts]
    errors: dict[str, int] = {}
    numbers = iter(range(len(alerts)))
    started = time.monotonic()
    stop_at = started + stop_after if stop_after is not None else math.inf

    async def lane(conn: _Connection) -> None:
        for number in numbers:
            due = started + number / rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            if time.monotonic() > stop_at:
                return
            record = sent[number]
            record.started = time.monotonic()
            record.late = record.started - due
            while True:
                record.attempts += 1
                attempt_started = time.monotonic()
                try:
                    record.status, record.body = await conn.post(alerts[number][1])
                except (ConnectionError, TimeoutError, OSError) as exc:
                    record.status = 0
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                record.latency = time.monotonic() - attempt_started
                record.acked_at = time.time()
                resend = record.status == 0 or record.status >= 500
                if record.status == ok_status or not resend or time.monotonic() - due > retry_for:
                    break
                await asyncio.sleep(0.5)  # a sender's retry: the hub is restarting or overloaded

    try:
        await asyncio.gather(*(lane(conn) for conn in connections))
    finally:
        for conn in connections:
            conn.close()
    wall = time.monotonic() - started
    done = [s for s in sent if s.attempts]
    return LoadResult(sent=done, active_seconds=wall, wall_seconds=wall, bursts=0, errors=errors, paced=True,
                      stopped_early=len(done) < len(sent), attempts=sum(s.attempts for s in done))  # fmt: skip
