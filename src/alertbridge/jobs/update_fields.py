"""update_fields: set the route's fields, as rendered for a repeat alert, on the case's ticket."""

from __future__ import annotations

from .context import JobContext
from .payloads import UpdateFields
from .queue import Job


async def run(ctx: JobContext, job: Job, payload: UpdateFields) -> None:
    """Set the fields on the ticket."""
    case, key = await ctx.ticketed_case(job, payload.sink)
    await ctx.sink(case, payload.sink).update(key, payload.fields)
    await ctx.finish(job)
