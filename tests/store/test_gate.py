"""The write gate's deferral to intake, on a clock the test moves: a burst is deferred to, a load that never pauses once."""

from __future__ import annotations

import contextlib
import types

import pytest

from alertbridge.store import gate as gate_module
from alertbridge.store.gate import CROWD, DEFER_AT_MOST, OPEN_FOR, QUIET, WriteGate


@pytest.fixture
def clock(monkeypatch):
    """The gate's time.monotonic(), moved by the test only."""
    fake = types.SimpleNamespace(now=1000.0)
    monkeypatch.setattr(gate_module, "time", types.SimpleNamespace(monotonic=lambda: fake.now))
    return fake


def waiting_requests(gate: WriteGate, requests: int) -> contextlib.ExitStack:
    """Open `requests` intake requests waiting for their commit."""
    stack = contextlib.ExitStack()
    for _ in range(requests):
        stack.enter_context(gate.request())
    return stack


def crowd(gate: WriteGate) -> contextlib.ExitStack:
    """Open a crowd of intake requests waiting for their commit, and a commit that leaves them waiting."""
    stack = waiting_requests(gate, CROWD)
    gate.committed()
    return stack


def test_a_crowd_that_never_ends_defers_the_others_at_most_a_while_and_once(clock):
    gate = WriteGate()
    with crowd(gate):
        assert gate.deferred_for() == pytest.approx(DEFER_AT_MOST)
        clock.now += DEFER_AT_MOST * 0.6
        gate.committed()  # the crowd goes on: the deferral does not start again
        assert gate.deferred_for() == pytest.approx(DEFER_AT_MOST * 0.4)
        clock.now += DEFER_AT_MOST * 0.4
        assert gate.deferred_for() == 0
        for _ in range(10):  # long after the debt is paid back (OPEN_FOR): the crowd has not paused
            clock.now += OPEN_FOR
            gate.committed()
            assert gate.deferred_for() == 0
    clock.now += QUIET * 1.5  # it pauses: the next crowd is a burst of its own
    with crowd(gate):
        assert gate.deferred_for() == pytest.approx(DEFER_AT_MOST)


def test_a_steady_load_that_keeps_a_crowd_waiting_is_deferred_to_once(clock):
    """A crowd that thins to a few requests and forms again, never pausing, is one load: its work must keep up with it."""
    gate = WriteGate()
    deferred = []
    with gate.request():  # one request always waits: 1,000 a second, a few at a time
        for _ in range(10):
            with crowd(gate):  # a unit ran long: a crowd formed meanwhile
                deferred.append(gate.deferred_for())
                clock.now += 0.1
            clock.now += 1.0  # the debt is paid back long since
            gate.committed()
    assert deferred == [pytest.approx(DEFER_AT_MOST)] + [0] * 9, deferred


def test_bursts_with_pauses_between_them_are_each_answered_before_the_others_write(clock):
    """A pause as long as the burst pays the burst's deferral back: the next burst is deferred from its first commit."""
    gate = WriteGate()
    for _ in range(20):  # 20 bursts of 0.3 s, 0.3 s apart: 12 s of crowds in a row would be far over the bound
        with crowd(gate):
            for _ in range(3):
                assert gate.deferred_for() > 0
                clock.now += 0.1
                gate.committed()
            assert gate.deferred_for() > 0
        clock.now += QUIET * 1.5  # every request answered: the others write after a quiet moment
        assert gate.deferred_for() == 0
        clock.now += 0.3 - QUIET * 1.5


def test_under_bursts_with_short_pauses_the_others_still_get_a_third_of_the_time(clock):
    """A pause too short to pay a burst back does not make the deferral endless: over a long storm the share holds."""
    gate = WriteGate()
    step, open_time, total = 0.01, 0.0, 0.0
    for _ in range(30):  # bursts of 0.9 s, then 0.06 s without a request
        with crowd(gate):
            for _ in range(90):
                gate.committed()
                open_time += step if gate.deferred_for() == 0 else 0.0
                clock.now += step
                total += step
        for _ in range(6):
            open_time += step if gate.deferred_for() == 0 else 0.0
            clock.now += step
            total += step
    assert open_time >= total * OPEN_FOR / (DEFER_AT_MOST + OPEN_FOR) * 0.95


def test_a_trickle_of_requests_builds_no_debt(clock):
    """Requests one at a time defer no one, so they leave the next burst its whole deferral."""
    gate = WriteGate()
    for _ in range(100):
        with gate.request():
            gate.committed()
            assert gate.deferred_for() == 0
        clock.now += 0.01
    with crowd(gate):
        assert gate.deferred_for() == pytest.approx(DEFER_AT_MOST)


# The sustained lane's tests of the pause rule (their 67f570c, folded in here with the rule itself).


def test_a_crowd_that_never_pauses_is_deferred_to_once(clock):
    """A steady load that always keeps a crowd waiting gets one deferral; then processing and jobs write beside it."""
    gate = WriteGate()
    with waiting_requests(gate, CROWD):
        gate.committed()
        assert gate.deferred_for() == DEFER_AT_MOST  # the crowd's first commit: a burst, as far as it can tell
        for _ in range(80):  # the same crowd goes on committing, never a moment without a request waiting
            clock.now += QUIET / 2
            with gate.request():
                gate.committed()
        assert clock.now > 1000.0 + DEFER_AT_MOST + OPEN_FOR  # past the bound and the open turn
        assert gate.deferred_for() == 0


def test_a_crowd_after_a_pause_is_deferred_to_again(clock):
    """Bursts with pauses between them (a storm in waves, the bench's bursts) each get their deferral."""
    gate = WriteGate()
    with waiting_requests(gate, CROWD):
        gate.committed()
    clock.now += DEFER_AT_MOST + OPEN_FOR  # a pause, as long as the deferral and the open turn
    assert gate.deferred_for() == 0
    with waiting_requests(gate, CROWD):  # the next burst
        gate.committed()
        assert gate.deferred_for() == DEFER_AT_MOST


def test_a_gap_shorter_than_quiet_is_no_pause(clock):
    """Every request answered for less than QUIET is the same load going on, not a new burst."""
    gate = WriteGate()
    with waiting_requests(gate, CROWD):
        gate.committed()
    clock.now += QUIET / 2
    with waiting_requests(gate, CROWD):
        clock.now += DEFER_AT_MOST + OPEN_FOR  # crowded past the bound and the open turn
        gate.committed()
        assert gate.deferred_for() == 0
