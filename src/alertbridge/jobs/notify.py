"""notify: tell a notifier about a new case, with its ticket's link (the create ran first, per-case order)."""

from __future__ import annotations

from ..errors import Permanent
from ..model import Severity
from .context import JobContext
from .create_ticket import first_alerts, render, route_of
from .payloads import Notify
from .queue import Job


async def run(ctx: JobContext, job: Job, payload: Notify) -> None:
    """Send the case's summary and description to the notifier."""
    if payload.notifier not in ctx.notifiers:
        raise Permanent(f"notifier {payload.notifier!r} is not configured")
    case = await ctx.case(job.case_id)
    draft = render(route_of(ctx, case), case, (await first_alerts(ctx, [case["id"]])).get(case["id"]), case["reference"] or "")
    await ctx.notifiers[payload.notifier].notify(draft.summary, draft.description, Severity(case["severity"]), case["ticket_url"])
    await ctx.finish(job)
