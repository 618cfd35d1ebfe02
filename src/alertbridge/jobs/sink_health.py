"""How a sink is doing, as its jobs found it: the delay before a failed job runs again, and a pause while the sink is down.

A job's own streak of failures says little about the sink: under a busy site's
random 429s every job meets a few, and an exponential backoff per job grows to
minutes although the sink answers in a second. So the retry delay comes from
the sink, shared by all its jobs:

- the vendor's ``Retry-After``, when it gave one, and nothing longer;
- else a backoff on the *sink's* run of failures (reset by any success);
- while the sink is paused, not before the pause ends.

The sink is paused when nearly all of its recent jobs failed (an outage, not
bad luck: 18 of the last 20 fail far less than once an hour at a 50 % fault
rate). While paused its jobs stay in the queue unclaimed, so an outage costs
them no attempts; when the pause ends one job probes the sink. A probe that
fails doubles the pause (up to the retry policy's longest delay), one that
succeeds ends it. Each process keeps its own view.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from ..config import Retry
from ..errors import Permanent, Retryable
from .queue import after

log = structlog.get_logger("alertbridge.jobs")

WINDOW, DOWN_AT = 20, 18  # paused when DOWN_AT of the last WINDOW jobs failed transiently


@dataclass
class SinkHealth:
    """One sink's recent outcomes, its run of failures and its pause."""

    name: str
    retry: Retry
    clock: Callable[[], float]
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=WINDOW))  # True: the job's calls were answered
    failures: int = 0  # transient failures in a row, whichever jobs met them
    paused_until: float = 0.0
    pauses: int = 0  # pauses in a row without a success: the next one is twice as long
    probing: bool = False  # the pause is over and one job is trying the sink

    def succeeded(self) -> None:
        """Note a job whose calls were answered (a 4xx is an answer too: the sink is up)."""
        if self.pauses:
            log.info("sink answers again: pause over", sink=self.name)
        self.recent.append(True)
        self.failures = self.pauses = 0
        self.probing = False

    def failed(self, error: Retryable) -> None:
        """Note a transient failure; pause the sink if nearly all its recent jobs failed, or a probe did."""
        now = self.clock()
        self.recent.append(False)
        self.failures += 1
        if self.probing or (len(self.recent) == WINDOW and self.recent.count(False) >= DOWN_AT and now >= self.paused_until):
            self._pause(now, error)

    def delay(self, error: Retryable) -> float:
        """Return the delay before a job that met this transient failure runs again."""
        if error.retry_after is not None:
            delay = after(error.retry_after)
        else:
            ceiling = min(self.retry.max_delay, self.retry.base_delay * 2 ** min(max(self.failures, 1) - 1, 30))
            delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, self.paused_until - self.clock())

    def _pause(self, now: float, error: Retryable) -> None:
        self.pauses += 1
        pause = min(self.retry.max_delay, max(error.retry_after or 0.0, self.retry.base_delay * 2 ** min(self.pauses - 1, 30)))
        self.paused_until = now + pause
        self.probing = False
        self.recent.clear()
        log.warning("sink failing: its jobs wait", sink=self.name, seconds=round(pause, 1), error=str(error)[:300])

    def paused(self) -> bool:
        """Tell whether the sink's jobs must wait: paused, probing, or waiting for a probe since the pause ended."""
        return self.pauses > 0

    def wants_probe(self) -> bool:
        """Tell whether the pause is over and no job has tried the sink since."""
        return self.pauses > 0 and not self.probing and self.clock() >= self.paused_until

    def probe(self) -> None:
        """Note that one job now tries the sink after a pause."""
        self.probing = True


class SinkHealths:
    """The health of every sink this process calls."""

    def __init__(self, sinks: list[str], retry: Retry, clock: Callable[[], float]):
        self.by_sink = {name: SinkHealth(name, retry, clock) for name in sinks}

    def of(self, sink: str | None) -> SinkHealth | None:
        """Return a sink's health, None for a job without one."""
        return self.by_sink.get(sink) if sink is not None else None

    def note(self, sink: str | None, error: Exception | None) -> None:
        """Note how one call (or one job's calls) to a sink ended."""
        health = self.of(sink)
        if health is None:
            return
        if error is None or isinstance(error, Permanent):
            health.succeeded()
        elif isinstance(error, Retryable):
            health.failed(error)
        else:
            health.probing = False  # held, a bug or the database: it told nothing of the sink; another job probes

    def delay(self, sink: str | None, error: Exception) -> float | None:
        """Return the retry delay of a sink's job after a transient failure; None to use the job's own backoff."""
        health = self.of(sink)
        return health.delay(error) if health is not None and isinstance(error, Retryable) else None

    def paused(self) -> set[str]:
        """Return the sinks whose jobs must wait."""
        return {name for name, health in self.by_sink.items() if health.paused()}

    def probes_wanted(self) -> list[str]:
        """Return the sinks whose pause is over and that no job has tried since."""
        return [name for name, health in self.by_sink.items() if health.wants_probe()]
