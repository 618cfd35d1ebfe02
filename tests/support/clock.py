"""One fake monotonic clock for a client under test and the sandbox it talks to."""

from __future__ import annotations

from alertbridge.connectors.jira.api import Clock


class FakeClock(Clock):
    """Time that moves only when someone sleeps, or when the test moves `time` itself.

    Give `clock` to a Jira client and `clock.now` to the sandbox (`JiraSandboxSettings(clock=...)`):
    the client's pacing and the sandbox's token bucket and search lag then read the same time.
    """

    def __init__(self) -> None:
        self.time = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += seconds
