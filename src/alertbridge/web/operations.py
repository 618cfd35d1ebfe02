"""What an operator does to dead letters and stuck cases: one function each, called by the CLI, the admin API and the console.

Each runs in one write transaction and then wakes the workers of this process
(other processes find the jobs on their next poll), so the three ways in
cannot drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..jobs import queue
from ..jobs.recovery import Retried, retry_case

if TYPE_CHECKING:
    from ..service import Hub


async def replay(hub: Hub, job_id: int | None = None, *, kind: str | None = None) -> int:
    """Put one dead job, every dead job of a kind, or every dead job back in the queue; return how many."""
    async with hub.store.tx() as conn:
        count = await queue.replay(conn, job_id, kind=kind)
    hub.jobs_ready.set()
    return count


async def discard(hub: Hub, job_id: int) -> int:
    """Drop one dead job for good; return how many (0 when it is not dead)."""
    async with hub.store.tx() as conn:
        return await queue.discard(conn, job_id)


async def retry(hub: Hub, case_id: int) -> Retried:
    """Replay a case's dead jobs, or queue a fresh create for a case whose create was discarded (NothingToRetry otherwise)."""
    async with hub.store.tx() as conn:
        retried = await retry_case(conn, case_id)
    hub.jobs_ready.set()
    return retried
