"""The hub's say over when a connector's call may leave: a call budget (jobs/budget.py) admits each call in turn.

Connectors know nothing of the hub, and every vendor call goes through ``HttpClient``:
so the gate is a context variable. The dispatcher sets it in each job's task, with the
job's place in line; ``HttpClient`` awaits ``admit`` before every request it sends.
Outside a job (a `check --live`, a test calling a sink directly) no gate is set and
calls leave at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextvars import ContextVar


class CallGate(ABC):
    """Decides when the next call of a connector may be sent."""

    @abstractmethod
    async def admit(self, connector: str) -> None:
        """Wait until a call by the connector named `connector` may leave."""


CALL_GATE: ContextVar[CallGate | None] = ContextVar("alertbridge_call_gate", default=None)


async def wait_turn(connector: str) -> None:
    """Wait for the current task's gate, if it has one, to admit a call of `connector`."""
    gate = CALL_GATE.get()
    if gate is not None:
        await gate.admit(connector)
