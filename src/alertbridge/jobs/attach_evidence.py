"""attach_evidence: put an alert's files (the reported .eml of a phishing case) on the case's ticket, and on each further
sink's ticket that follows `evidence` (config_sinks.py), in that sink's lane."""

from __future__ import annotations

from sqlalchemy import select

from ..connectors.roles import Attachments
from ..errors import PayloadError, Permanent
from ..model import Alert
from ..pipeline.process import decode
from ..store.tables import inbox
from .context import JobContext
from .payloads import AttachEvidence
from .queue import Job


async def run(ctx: JobContext, job: Job, payload: AttachEvidence) -> None:
    """Parse the kept inbox row again (parsing is pure: the same files) and attach what the ticket does not have yet."""
    case, key = await ctx.ticketed_case(job, payload.sink)  # the case's own ticket, or a further sink's that follows `evidence`
    sink = ctx.sink(case, payload.sink)
    if not isinstance(sink, Attachments):
        raise Permanent(f"sink {sink.name!r} takes no attachments; the evidence stays in inbox row {payload.inbox_id}")
    async with ctx.store.read() as conn:
        row = (await conn.execute(select(inbox.c.source, inbox.c.body).where(inbox.c.id == payload.inbox_id))).first()
    if row is None or row.source not in ctx.sources:
        raise Permanent(f"inbox row {payload.inbox_id} or its source is gone; nothing to attach")
    try:
        items = ctx.sources[row.source].parse(decode(row.body))
    except PayloadError as exc:  # it parsed when the case opened; a changed config may read it differently now
        raise Permanent(f"inbox row {payload.inbox_id} no longer parses: {exc}") from None
    files = [file for item in items if isinstance(item, Alert) and item.id == payload.alert_id for file in item.evidence]
    present = set(await sink.attachment_names(key))  # a retry after a crash must not attach twice
    for file in files:
        if file.filename not in present:
            await sink.attach(key, file.filename, file.content)
    await ctx.finish(job)
