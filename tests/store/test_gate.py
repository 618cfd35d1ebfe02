"""The write gate's deferral to intake: a burst is deferred to, a load that never pauses is not deferred to again."""

from __future__ import annotations

import contextlib
import types

import pytest

from alertbridge.store import gate as gate_module
from alertbridge.store.gate import WriteGate


@pytest.fixture
def clock(monkeypatch):
    """Make the gate's monotonic clock one the test moves (`clock.now`), starting at 1000 s."""
    fake = types.SimpleNamespace(now=1000.0)
    monkeypatch.setattr(gate_module, "time", types.SimpleNamespace(monotonic=lambda: fake.now))
    return fake


def waiting_requests(gate: WriteGate, requests: int) -> contextlib.ExitStack:
    """Open `requests` intake requests waiting for their commit."""
    stack = contextlib.ExitStack()
    for _ in range(requests):
        stack.enter_context(gate.request())
    return stack


def test_a_crowd_that_never_pauses_is_deferred_to_once(clock):
    """A steady load that always keeps a crowd waiting gets one deferral; then processing and jobs write beside it."""
    gate = WriteGate()
    with waiting_requests(gate, gate_module.CROWD):
        gate.committed()
        assert gate.deferred_for() == gate_module.DEFER_AT_MOST  # the crowd's first commit: a burst, as far as it can tell
        for _ in range(80):  # the same crowd goes on committing, never a moment without a request waiting
            clock.now += gate_module.QUIET / 2
            with gate.request():
                gate.committed()
        assert clock.now > 1000.0 + gate_module.DEFER_AT_MOST + gate_module.OPEN_FOR  # past the bound and the open turn
        assert gate.deferred_for() == 0


def test_a_crowd_after_a_pause_is_deferred_to_again(clock):
    """Bursts with pauses between them (a storm in waves, the bench's bursts) each get their deferral."""
    gate = WriteGate()
    with waiting_requests(gate, gate_module.CROWD):
        gate.committed()
    clock.now += gate_module.DEFER_AT_MOST + gate_module.OPEN_FOR  # a pause, as long as the deferral and the open turn
    assert gate.deferred_for() == 0
    with waiting_requests(gate, gate_module.CROWD):  # the next burst
        gate.committed()
        assert gate.deferred_for() == gate_module.DEFER_AT_MOST


def test_a_gap_shorter_than_quiet_is_no_pause(clock):
    """Every request answered for less than QUIET is the same load going on, not a new burst."""
    gate = WriteGate()
    with waiting_requests(gate, gate_module.CROWD):
        gate.committed()
    clock.now += gate_module.QUIET / 2
    with waiting_requests(gate, gate_module.CROWD):
        clock.now += gate_module.DEFER_AT_MOST + gate_module.OPEN_FOR  # crowded past the bound and the open turn
        gate.committed()
        assert gate.deferred_for() == 0
