"""Waiting in the event loop for something another task or thread makes happen."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], what: str, rounds: int = 2000) -> None:
    """Return once `condition()` holds, checking every 5 ms; fail with `what` after `rounds` checks."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")
