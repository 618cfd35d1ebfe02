"""The load generator: alerts with many repeats, sent over HTTP/1.1 keep-alive in bursts with bounded concurrency.

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


@dataclass
class LoadResult:
    """Everything a load run produced."""

    sent: list[Sent]
    active_seconds: float  # sum of the bursts' durations (pauses excluded)
    wall_seconds: float  # first request to last answer, pauses included
    bursts: int
    stopped_early: bool = False  # the deadline passed before every alert was sent
    errors: dict[str, int] = field(default_factory=dict)


def make_alerts(count: int, cases: int, seed: int = 4) -> list[tuple[int, bytes]]:
    """Make `count` alert bodies over `cases` cases: every case appears early, repeats follow a skewed draw."""
    rng = random.Random(seed)
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


async def send_bursts(
    url: str,
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
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    connections = [_Connection(host, int(port), path, headers or {}, timeout) for _ in range(concurrency)]
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
        try:
            record.status, record.body = await conn.post(alerts[number][1])
        except (ConnectionError, TimeoutError, OSError) as exc:
            kind = type(exc).__name__
            errors[kind] = errors.get(kind, 0) + 1
        record.latency = time.monotonic() - record.started
        record.acked_at = time.time()
