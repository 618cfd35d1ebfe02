"""A failed job's retry follows the sink, not its own streak: Retry-After, a backoff shared by the sink's jobs, a pause while down."""

from __future__ import annotations

from alertbridge.config import Retry
from alertbridge.errors import Permanent, RateLimited, Retryable
from alertbridge.jobs.sink_health import DOWN_AT, WINDOW, SinkHealths

RETRY = Retry(base_delay=1, max_delay=300)


class Clock:
    """Wall-clock seconds that move only when the test moves them."""

    def __init__(self) -> None:
        self.time = 1_000_000.0

    def __call__(self) -> float:
        return self.time


def healths(clock: Clock) -> SinkHealths:
    return SinkHealths(["jira"], RETRY, clock)


def test_retry_after_is_followed_however_many_times_the_job_failed():
    clock = Clock()
    sinks = healths(clock)
    busy = RateLimited("jira POST /issue -> 429", retry_after=1, cause="jira-burst-based")
    for _ in range(9):  # a job, or many, meeting 429 after 429 among successes: still one second, not minutes
        sinks.note("jira", busy)
        assert 1 <= sinks.delay("jira", busy) <= 1.2
        sinks.note("jira", None)
    assert not sinks.paused()


def test_without_retry_after_the_backoff_follows_the_sinks_run_of_failures_and_a_success_resets_it():
    clock = Clock()
    sinks = healths(clock)
    error = Retryable("jira POST /issue -> 502: bad gateway", status=502)
    for failures in range(1, 5):
        sinks.note("jira", error)
        assert 2 ** (failures - 1) / 2 <= sinks.delay("jira", error) <= 2 ** (failures - 1)
    sinks.note("jira", Permanent("jira POST /issue -> 400: summary: required", status=400))  # an answer: the sink is up
    sinks.note("jira", error)
    assert 0.5 <= sinks.delay("jira", error) <= 1


def test_a_sink_that_fails_almost_every_job_is_paused_then_probed_by_one_job():
    clock = Clock()
    sinks = healths(clock)
    down = Retryable("jira POST /issue -> 503: Service Unavailable", status=503)
    for _ in range(WINDOW - DOWN_AT + 1):
        sinks.note("jira", None)
    for _ in range(DOWN_AT - 1):
        sinks.note("jira", down)
    assert not sinks.paused()  # 17 of the last 20 failed: bad luck, not an outage
    sinks.note("jira", down)
    assert sinks.paused() == {"jira"} and not sinks.probes_wanted()
    assert sinks.delay("jira", down) >= 1  # a job failing now waits for the pause

    for pause in (1, 2, 4):  # each failed probe doubles the pause
        clock.time += pause - 0.01
        assert not sinks.probes_wanted()
        clock.time += 0.02
        assert sinks.probes_wanted() == ["jira"]
        sinks.of("jira").probe()
        assert sinks.paused() == {"jira"} and not sinks.probes_wanted()  # one probe at a time
        sinks.note("jira", down if pause < 4 else None)
    assert not sinks.paused() and not sinks.probes_wanted()  # the last probe got through: every job may run again


def test_a_pause_lasts_at_least_the_retry_after_the_sink_gave():
    clock = Clock()
    sinks = healths(clock)
    quota = RateLimited("jira: site quota", retry_after=30, cause="jira-quota-global-based")
    for _ in range(WINDOW):
        sinks.note("jira", quota)
    clock.time += 29
    assert sinks.paused() and not sinks.probes_wanted()
    assert sinks.delay("jira", Retryable("502")) >= 1


def test_jobs_without_a_sink_keep_their_own_backoff():
    sinks = healths(Clock())
    assert sinks.delay(None, Retryable("slack 503")) is None
    sinks.note(None, Retryable("slack 503"))
    assert not sinks.paused()
