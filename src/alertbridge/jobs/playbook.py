"""playbook_comment: comment the relevant playbook on a new case's ticket, once."""

from __future__ import annotations

import time

from .. import failpoints
from ..connectors.roles import TicketTimeline
from ..errors import ConnectorError
from ..store import notices
from .context import JobContext
from .notify import maybe_delivered
from .queue import Job
from .payloads import PlaybookComment


async def comment_once(ctx: JobContext, job: Job, case: dict, key: str, target: str, text: str, marker: str,
                       further: str | None = None) -> None:
    """Comment `text` on the ticket and finish the job, unless an attempt cut off by a crash already did.

    The claim (store/notices.py) says a comment may be on the ticket; a sink that can read its comments back is
    asked for one containing `marker` before commenting again. Others comment again (a possible duplicate).
    """
    async with ctx.store.read() as conn:
        notice = await notices.read(conn, case["id"], target)
    sink = ctx.sink(case, further)  # a further sink's ticket (jobs/tickets.py), else the case's own
    done = notice.state.get("commented") is not None
    if not done and notice.sending == marker and isinstance(sink, TicketTimeline):
        done = any(marker in comment.text for comment in (await sink.history(key)).comments)
    if not done:
        async with ctx.store.tx() as conn:
            await notices.claim(conn, case["id"], target, marker)
        try:
            await sink.comment(key, text)
        except ConnectorError as exc:
            if not maybe_delivered(exc):  # refused or never sent: nothing was written
                async with ctx.store.tx() as conn:
                    await notices.release(conn, case["id"], target)
            raise
        failpoints.hit("comment.after_call")
    async with ctx.store.tx() as conn:
        await notices.record(conn, case["id"], target, {**notice.state, "commented": notice.state.get("commented") or str(time.time())})
        await ctx.queue.complete(job, conn)


async def run(ctx: JobContext, job: Job, payload: PlaybookComment) -> None:
    """Comment 'Relevant playbook: …' on the case's ticket."""
    case, key = await ctx.ticketed_case(job)
    text = f"Relevant playbook: {payload.name} {payload.url}" if payload.name else f"Relevant playbook: {payload.url}"
    await comment_once(ctx, job, case, key, "playbook", text, payload.url)
