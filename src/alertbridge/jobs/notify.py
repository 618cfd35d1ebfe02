"""notify: tell a notifier what happened to a case, with its ticket's link (the create ran first, per-case order)."""

from __future__ import annotations

from ..errors import Permanent
from ..model import CaseEvent, Severity, case_reference
from .context import JobContext
from .create_ticket import first_alerts, render, route_of
from .payloads import Notify
from .queue import Job


async def run(ctx: JobContext, job: Job, payload: Notify) -> None:
    """Send the notifier a CaseEvent built from the case and the config as they are when the job runs."""
    if payload.notifier not in ctx.notifiers:
        raise Permanent(f"notifier {payload.notifier!r} is not configured")
    case = await ctx.case(job.case_id)
    reference = case["reference"] or case_reference(await ctx.instance(), case["id"])
    # The title is the ticket's summary, rendered from the current config like the ticket itself.
    draft = render(route_of(ctx, case), case, (await first_alerts(ctx, [case["id"]])).get(case["id"]), reference)
    event = CaseEvent(
        case_id=case["id"], reference=reference, case_key=case["key"], route=case["route"], kind=payload.event,
        title=draft.summary, severity=Severity(case["severity"]),
        alert_count=case["alert_count"], ticket_key=case["ticket_key"], ticket_url=case["ticket_url"],
    )  # fmt: skip
    await ctx.notifiers[payload.notifier].notify(event)
    await ctx.finish(job)
