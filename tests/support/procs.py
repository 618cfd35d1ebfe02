"""Run `alertbridge` CLI commands as real subprocesses, for the crash and scale-out tests.

Every process writes stdout and stderr to a log file in the test's tmp_path;
every wait is bounded and, when it times out, fails with the tail of the logs.
`ProcGroup` (the `procs` fixture) kills whatever is still running at teardown
and prints each log's tail, which pytest shows only when the test failed.

Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest

T = TypeVar("T")


def _prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the fixture's teardown is the only cleanup
        return None


_PRCTL = _prctl()  # looked up here, not in the forked child, where importing could deadlock on another thread's lock


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL it when the test process dies, so none outlives a killed run."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    """Return the last lines of a log file (empty if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Proc:
    """One `python -m alertbridge …` subprocess with its log file."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.name = name
        self.args = args
        self.log = log
        self._log_file = open(log, "ab")  # noqa: SIM115 - closed in wait()/kill()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "alertbridge", *args],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "ALERTBRIDGE_LOG_LEVEL": "INFO", **(env or {})},
            start_new_session=True,  # a Ctrl-C in the terminal is the test's business, not the child's
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, timeout: float = 10) -> int:
        """SIGKILL the process and reap it; return its exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        return self.wait(timeout)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM (graceful shutdown), then SIGKILL if it has not exited within `timeout`."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        return self._ended(timeout)

    def _ended(self, timeout: float) -> int:
        if self.alive():
            try:
                return self.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.kill()

    def wait(self, timeout: float) -> int:
        """Wait (bounded) for the process to exit; return its exit status."""
        code = self.popen.wait(timeout=timeout)
        self._log_file.close()
        return code

    def tail(self, lines: int = 40) -> str:
        return tail(self.log, lines)

    def describe(self, lines: int = 40) -> str:
        state = "running" if self.alive() else f"exited with {self.popen.returncode}"
        return f"--- {self.name} (pid {self.pid}, {state}), last lines of {self.log} ---\n{self.tail(lines)}"


def stop_together(procs: list[Proc], timeout: float = 15) -> list[int]:
    """SIGTERM every process at once, then wait for each as `Proc.stop` does; return their exit statuses.

    A graceful shutdown takes a second or two; several in turn would add up for nothing.
    """
    for proc in procs:
        if proc.alive():
            proc.popen.send_signal(signal.SIGTERM)
    return [proc._ended(timeout) for proc in procs]  # noqa: SLF001 - the second half of Proc.stop


class ProcGroup:
    """Start CLI subprocesses for one test; kill leftovers and show their logs at the end."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.procs: list[Proc] = []
        self._count = 0

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        """Start `alertbridge <args>`; its output goes to <tmp_path>/<name>-<n>.log."""
        self._count += 1
        proc = Proc(name, list(args), self.tmp_path / f"{name}-{self._count}.log", env)
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 60) -> str:
        """Run a short CLI command to completion (bounded); return its output, fail with it on a non-zero exit."""
        result = subprocess.run(
            [sys.executable, "-m", "alertbridge", *args], capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL, env={**os.environ, "ALERTBRIDGE_LOG_LEVEL": "WARNING"},
        )
        if result.returncode != 0:
            pytest.fail(f"`alertbridge {' '.join(args)}` exited with {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def logs(self, lines: int = 40) -> str:
        """The tail of every process's log, for failure messages."""
        return "\n".join(p.describe(lines) for p in self.procs)

    def fail(self, message: str) -> None:
        """Fail the test with `message` and the logs' tails."""
        pytest.fail(f"{message}\n{self.logs()}", pytrace=False)

    def close(self) -> None:
        """Kill every process still running (each by its own pid) and print the logs' tails."""
        for proc in self.procs:
            if proc.alive():
                try:
                    proc.kill()
                except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
                    print(f"{proc.name} (pid {proc.pid}) did not die on SIGKILL")
            elif not proc._log_file.closed:
                proc._log_file.close()
        # pytest shows captured teardown output only when the test failed.
        print(self.logs(60))


@pytest.fixture
def procs(tmp_path: Path):
    """A ProcGroup whose processes are all gone when the test ends."""
    group = ProcGroup(tmp_path)
    try:
        yield group
    finally:
        group.close()


def wait_until(check: Callable[[], T], *, timeout: float, interval: float = 0.1, what: str = "condition",
               group: ProcGroup | None = None, status: Callable[[], Any] | None = None) -> T:
    """Call `check` until it returns something truthy (and return that); fail after `timeout` seconds.

    The failure names `what`, shows `status()` (e.g. job counts) when given, and the processes' logs.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            message = f"timed out after {timeout}s waiting for {what} (last: {last!r}"
            message += f"; status: {status()!r})" if status is not None else ")"
            if group is not None:
                group.fail(message)
            pytest.fail(message, pytrace=False)
        time.sleep(interval)


async def wait_healthy(client: httpx2.AsyncClient, base_url: str, proc: Proc, group: ProcGroup, timeout: float = 30) -> dict:
    """Poll GET /healthz until it answers 200 (return its JSON); fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            group.fail(f"{proc.name} exited with {proc.popen.returncode} before it was healthy")
        try:
            response = await client.get(f"{base_url}/healthz", timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx2.TransportError:
            pass
        await asyncio.sleep(0.05)
    group.fail(f"{proc.name} not healthy at {base_url}/healthz after {timeout}s")
    raise AssertionError("unreachable")
