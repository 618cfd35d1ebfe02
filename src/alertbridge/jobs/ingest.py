"""ingest: run the pipeline again on a kept inbox body that failed (a replayed dead ingest job)."""

from __future__ import annotations

from ..errors import PayloadError, Permanent
from .context import JobContext
from .payloads import Ingest
from .queue import Job


async def run(ctx: JobContext, job: Job, payload: Ingest) -> None:
    """Process the inbox row and finish the job in one transaction; raise Permanent if it still fails to parse."""
    try:
        async with ctx.store.tx() as conn:
            await ctx.reprocess(conn, payload.inbox_id)
            await ctx.queue.complete(job, conn)
    except PayloadError as exc:
        raise Permanent(f"payload still fails to parse: {exc}") from None
