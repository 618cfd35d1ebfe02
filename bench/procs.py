"""The processes of a benchmark run and the Jira sandbox's admin API: start, watch, stop, measure.

Every process logs to a file under the run's folder and dies with the benchmark
(PR_SET_PDEATHSIG); every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hub_command(tree: Path | None, *args: str) -> tuple[list[str], dict[str, str]]:
    """Return the command line and environment of `alertbridge <args>`, from `tree`'s src/ when one is given."""
    env = {"ALERTBRIDGE_LOG_LEVEL": "WARNING"}
    if tree is not None:
        env["PYTHONPATH"] = str(Path(tree).resolve() / "src")  # ahead of the venv's editable install of this tree
    return [sys.executable, "-m", "alertbridge", *args], env


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no process outlives a killed benchmark


class Processes:
    """The subprocesses of one run, each logging to a file; `stop` ends them, SIGTERM first."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.running: dict[str, subprocess.Popen] = {}

    @classmethod
    def fresh(cls, logs: Path) -> Processes:
        """Return the processes of a run whose folder `logs` is emptied of an earlier run's files first."""
        logs.mkdir(parents=True, exist_ok=True)
        for old in logs.glob("*"):
            old.unlink()
        return cls(logs)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start one subprocess under `name`."""
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=ROOT, preexec_fn=_die_with_parent)  # fmt: skip
        self.running[name] = process
        return process

    def kill(self, name: str) -> None:
        """SIGKILL one subprocess and reap it (no cleanup, nothing flushed: a crash)."""
        process = self.running.pop(name)
        process.kill()
        process.wait(timeout=15)

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
        with contextlib.suppress(httpx2.TransportError, OSError):
            if result := await check():
                return result
        await asyncio.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


async def answers_ok(client: httpx2.AsyncClient, path: str) -> bool:
    """Tell whether GET `path` answers 200."""
    return (await client.get(path)).status_code == 200


async def listening(port: int) -> bool:
    """Tell whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


def load_average() -> float:
    """Return the machine's 1-minute load average: on shared cores, the context every figure needs."""
    with open("/proc/loadavg") as loadavg:
        return float(loadavg.read().split()[0])


def progress(message: str) -> None:
    """Print a progress line on stderr (the tables go to stdout)."""
    print(message, file=sys.stderr, flush=True)


# --- the sandbox ---------------------------------------------------------------------------------


class Sandbox:
    """The Jira sandbox subprocess, driven through its /_sandbox admin API."""

    def __init__(self, url: str, latency_ms: float):
        self.url, self.latency_ms = url, latency_ms
        self.client = httpx2.AsyncClient(base_url=url, timeout=60, auth=httpx2.BasicAuth("soc@example.com", "sandbox-token"))

    @classmethod
    async def start(cls, procs: Processes, latency_ms: float) -> Sandbox:
        """Start `alertbridge sandbox` (always this tree's: it is the instrument) and wait until it answers."""
        port = free_port()
        procs.start("sandbox", [sys.executable, "-m", "alertbridge", "sandbox", "--port", str(port), "--latency-ms", f"{latency_ms:g}"])
        sandbox = cls(f"http://127.0.0.1:{port}", latency_ms)
        await wait_for(lambda: answers_ok(sandbox.client, "/rest/api/3/serverInfo"), f"the sandbox ({procs.tail('sandbox')})", 60)
        return sandbox

    async def prepare(self, rate_limit: float | None, fail_rate: float = 0.0, hang_seconds: float = 30.0) -> None:
        """Forget every issue and call, and set the rate limit and injected faults for the next phase."""
        await self.client.post("/_sandbox/reset")
        knobs = {"latency_ms": self.latency_ms, "rate_limit": rate_limit, "fail_rate": fail_rate, "hang_seconds": hang_seconds}
        (await self.client.post("/_sandbox/faults", json=knobs)).raise_for_status()

    async def state(self) -> dict:
        """Return the sandbox's issue, call and 429 counts."""
        return (await self.client.get("/_sandbox/state")).json()

    async def issues(self) -> list[dict]:
        """Return every issue with its summary, labels, creation time and comments; turns the faults off first."""
        await self.client.post("/_sandbox/faults", json={"fail_rate": 0.0, "rate_limit": None, "latency_ms": 0})
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
    for moment, calls, limited in samples:
        while moment - samples[first][0] > window:
            first += 1
        calls_in = calls - samples[first][1]
        peak = max(peak, calls_in)
        peak_ok = max(peak_ok, calls_in - (limited - samples[first][2]))
    return peak, peak_ok


def jira_epoch(stamp: str) -> float:
    """Turn Jira's 2024-01-17T12:34:00.000+0000 into Unix seconds."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
